"""Every Redis key and channel name, in one place.

Each key of a room carries the hash tag `{room}`, so one script only ever touches one hash slot
and the same scripts run unchanged on Redis Cluster. Room ids cannot contain braces
(`identity.valid_id`), so the tag is always the whole room id.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "live"
ROOMS_INDEX: Final = f"{PREFIX}:rooms"  # set of room ids that ever had a viewer (event consumers)


def _room(room: str, name: str) -> str:
    return f"{PREFIX}:{{{room}}}:{name}"


def state(room: str) -> str:
    """Hash: likes (total), pinned, popup, phrases (msgpack values)."""
    return _room(room, "state")


def present(room: str) -> str:
    """Sorted set: user -> presence deadline (ms); online = members whose deadline is ahead."""
    return _room(room, "present")


def entered(room: str) -> str:
    """Hash: user -> when the person entered (ms), for watch time."""
    return _room(room, "entered")


def unique(room: str) -> str:
    """HyperLogLog of the users seen in the room's current session (reset when it starts)."""
    return _room(room, "unique")


PRESENCE_DUE: Final = f"{PREFIX}:presence-due"  # sorted set: room -> when to sweep its presence


def events(room: str) -> str:
    """Stream: the room's host events (capped)."""
    return _room(room, "events")


def meta(room: str) -> str:
    """Hash: epoch, seq (the room's message sequence)."""
    return _room(room, "meta")


def history(room: str) -> str:
    """Stream: the room's recent messages, entry id <seq>-0 (capped, expires when idle)."""
    return _room(room, "history")


def bus(room: str) -> str:
    """Pub/sub channel of the room's messages."""
    return _room(room, "bus")


def room_of(name: str | bytes) -> str:
    """The room id inside a room key or channel name."""
    if isinstance(name, bytes):
        name = name.decode()
    start, end = name.index("{"), name.index("}")
    return name[start + 1 : end]


# --- products and flash sales (seckill) ------------------------------------------------------

SECKILL_INDEX: Final = f"{PREFIX}:seckill:sales"  # set of "<room>\n<sale>" not yet finished
SECKILL_SWEEP_LEASE: Final = f"{PREFIX}:seckill:sweeper"  # node id holding the sweeper lease


def products(room: str) -> str:
    """Hash: product id -> product (msgpack), the room's preset product list."""
    return _room(room, "products")


def product_clicks(room: str) -> str:
    """Hash: product id -> clicks on its card."""
    return _room(room, "clicks")


def product_clickers(room: str) -> str:
    """Set: "<product>\\n<user>" for every user who clicked a product's card."""
    return _room(room, "clickers")


def banned(room: str) -> str:
    """Set: user ids banned in this room. Anti-fraud writes it; a flash-sale grab from a member
    is refused with `banned`. (Per room so the grab script stays in one hash slot: a global ban
    is written into the rooms it applies to.)"""
    return _room(room, "banned")


def sales(room: str) -> str:
    """Set: the room's flash sales that are not finished (ended with no hold left)."""
    return _room(room, "sales")


def _sale(room: str, sale: str, name: str) -> str:
    return f"{PREFIX}:{{{room}}}:sale:{sale}:{name}"


def sale(room: str, sale: str) -> str:
    """Hash: one flash sale's settings and counters (stock = left + held + sold)."""
    return _sale(room, sale, "info")


def sale_requests(room: str, sale: str) -> str:
    """Hash: "<user>\\n<request id>" -> the first answer (idempotent retries)."""
    return _sale(room, sale, "req")


def sale_users(room: str, sale: str) -> str:
    """Hash: user -> units held or sold (the per-user limit)."""
    return _sale(room, sale, "users")


def sale_holds(room: str, sale: str) -> str:
    """Hash: hold id -> "state\\tqty\\texpires\\tuser\\trid" (held, sold, cancelled, released)."""
    return _sale(room, sale, "holds")


def sale_expiry(room: str, sale: str) -> str:
    """Sorted set: hold id -> expiry (ms) of the holds not yet confirmed."""
    return _sale(room, sale, "expiry")


def sale_winners(room: str, sale: str) -> str:
    """Set: users ever granted a hold in the sale (the sold-out shortcut asks Redis for them)."""
    return _sale(room, sale, "winners")


# --- control plane: room lifecycle, reservations, shares, live numbers -----------------------


def info(room: str) -> str:
    """Hash: the room's record: title, anchor, status, starts_at, rehearsal, ... (create_room)."""
    return _room(room, "info")


def reservations(room: str) -> str:
    """Sorted set: user -> when they reserved (ms)."""
    return _room(room, "reservations")


def reminded(room: str) -> str:
    """Set: users whose reminder.due was written for the room's current start time."""
    return _room(room, "reminded")


def reminder_queue(room: str) -> str:
    """Sorted set: the reservations a reminder pass still has to go through."""
    return _room(room, "reminder-queue")


def shares(room: str) -> str:
    """Hash: the host's share id -> when it was recorded (ms); share_recorded is idempotent."""
    return _room(room, "shares")


def numbers(room: str) -> str:
    """Hash: live numbers of the session: peak, danmaku total, a ring of per-second counts."""
    return _room(room, "numbers")


# --- durable scheduler: global, in one hash slot of its own (tag {jobs}) ----------------------

JOBS_DUE: Final = f"{PREFIX}:{{jobs}}:due"  # sorted set: job id -> due (ms)
JOBS_LEASED: Final = f"{PREFIX}:{{jobs}}:leased"  # sorted set: job id -> lease end (ms)
JOBS_SPECS: Final = f"{PREFIX}:{{jobs}}:specs"  # hash: job id -> spec (JSON)


# --- anti-fraud (docs/antifraud.md) ----------------------------------------------------------
# Room-scoped state carries the room tag like every room key; global rules (global bans and
# mutes, global keyword list and bot rule overrides) live in one slot of their own ({af}) and a
# script never touches both.

AF_SIGNALS: Final = f"{PREFIX}:af:signals"  # pub/sub channel: node-to-node anti-fraud changes
AF_SANCTIONS: Final = f"{PREFIX}:{{af}}:sanctions"  # hash: global "<kind>:<user>" -> record
AF_SANCTION_EXPIRY: Final = f"{PREFIX}:{{af}}:sanction-expiry"  # zset: global field -> until
AF_KEYWORDS: Final = f"{PREFIX}:{{af}}:keywords"  # hash: global word -> block | mask | flag
AF_BOT_RULES: Final = f"{PREFIX}:{{af}}:bot-rules"  # hash: rule -> "mode@threshold" override


def rate_limit(room: str, action: str, dimension: str, ident: str) -> str:
    """String: a GCRA theoretical arrival time (µs) of one limit, e.g. danmaku per user."""
    return _room(room, f"rl:{action}:{dimension}:{ident}")


def seen_accounts(room: str, dimension: str, ident: str) -> str:
    """Sorted set: accounts that joined the room from one IP or device -> last join (ms)."""
    return _room(room, f"af:seen:{dimension}:{ident}")


def sanctions(room: str) -> str:
    """Hash: "<kind>:<user>" -> JSON record of the room's bans, mutes and grab refusals."""
    return _room(room, "af:sanctions")


def sanction_expiry(room: str) -> str:
    """Sorted set: "<kind>:<user>" -> until (ms) for the room's sanctions that expire."""
    return _room(room, "af:sanction-expiry")


def keywords(room: str) -> str:
    """Hash: the room's filtered words -> block | mask | flag."""
    return _room(room, "af:keywords")


def limit_overrides(room: str) -> str:
    """Hash: "<action>:<dimension>" -> "<rate>/<period ms>/<burst>" or "off" (room overrides)."""
    return _room(room, "af:limits")


def bot_rules(room: str) -> str:
    """Hash: bot rule -> "mode@threshold" (the room's overrides)."""
    return _room(room, "af:bot-rules")


# --- coupons, follows and lotteries (docs/coupons.md, docs/lottery.md) -------------------------


def coupons(room: str) -> str:
    """Set: the room's coupon batch ids."""
    return _room(room, "coupons")


def share_coupon(room: str) -> str:
    """String: the batch a share of the room grants (set_share_coupon)."""
    return _room(room, "coupon-share")


def _coupon(room: str, batch: str, name: str) -> str:
    return f"{PREFIX}:{{{room}}}:coupon:{batch}:{name}"


def coupon_batch(room: str, batch: str) -> str:
    """Hash: a coupon batch's terms, state and counters (quantity = left + granted)."""
    return _coupon(room, batch, "info")


def coupon_requests(room: str, batch: str) -> str:
    """Hash: "<user>\\n<request key>" -> the first answer (idempotent retries)."""
    return _coupon(room, batch, "req")


def coupon_users(room: str, batch: str) -> str:
    """Hash: user -> the coupon id granted (one per user and batch)."""
    return _coupon(room, batch, "users")


def followers(room: str) -> str:
    """Hash: user -> when they followed the anchor from this room (ms)."""
    return _room(room, "followers")


def lotteries(room: str) -> str:
    """Hash: lottery id -> JSON summary (entry mode, keyword, draw time, state)."""
    return _room(room, "lotteries")


def _lottery(room: str, lottery: str, name: str) -> str:
    return f"{PREFIX}:{{{room}}}:lottery:{lottery}:{name}"


def lottery(room: str, lottery: str) -> str:
    """Hash: a lottery's settings, seed, commitment, state and counters."""
    return _lottery(room, lottery, "info")


def lottery_entrants(room: str, lottery: str) -> str:
    """Sorted set, every score 0: the entrants, so ZRANGE gives them in byte order."""
    return _lottery(room, lottery, "entrants")


def lottery_names(room: str, lottery: str) -> str:
    """Hash: entrant -> display name at entry (for the winners popup)."""
    return _lottery(room, lottery, "names")


def lottery_winners(room: str, lottery: str) -> str:
    """Hash: winner -> "rank\\tstate\\tclaim_until\\tref" (state won, claimed or expired)."""
    return _lottery(room, lottery, "winners")
