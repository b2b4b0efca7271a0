"""The swarm's invariant checks, run after every spike: against Redis (the state every node
shares) and the room's host event stream (what the host acts on), and for the lottery against
what the control API publishes.

* no oversell: stock = left + held + sold, units granted <= stock, no user over the sale's limit;
  and no `sold_out` answer while units were left;
* no double coupon: quantity = left + granted, one coupon per user and batch, each coupon granted
  once, one `coupon.granted` per coupon; and no `all_claimed` answer while coupons were left;
* every success a client saw is recorded: each hold a viewer was answered exists in Redis for
  that user and has its `seckill.reserved` event; each coupon a viewer was answered is the
  user's coupon in Redis and has its `coupon.granted` event;
* the lottery: min(N, entrants) distinct winners, all entrants, one `lottery.won` each, the draw
  reproduced from the revealed seed (`engine.features.lottery_draw.verify`), and the winners
  popup the probes saw names them;
* after a reconnect storm: no chat message reached a probe twice (a resume replays only what
  was missed).

Without a Redis URL (a deployed engine whose Redis the load tester cannot reach) the counters
come from the control API (`seckill_status`, `coupon_status`) and the per-success checks are
reported as not checked.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import trio

from engine.features.lottery_draw import verify
from engine.store import keys
from loadtest.control import Control

KEPT = ("seckill.", "coupon.", "lottery.")  # event types the checks read


@dataclass
class Check:
    name: str
    ok: bool | None  # None: could not be checked
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "not checked"}[self.ok]

    def line(self) -> str:
        return f"{self.verdict}  {self.name}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"verdict": self.verdict}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_key(ident: str) -> tuple[int, int]:
    ms, _, n = ident.partition("-")
    return int(ms), int(n or 0)


class EventTail:
    """The room's host event stream (`live:{room}:events`), read from the swarm's start with
    XREAD, the way a host would; keeps the promo events and a count of every type."""

    def __init__(self, redis: Any, room: str) -> None:
        self.redis, self.key = redis, keys.events(room)
        self.last = "0-0"
        self.types: Counter[str] = Counter()
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.trimmed = False  # events were trimmed from the stream before we read them
        self.lock = trio.Lock()  # one reader at a time: `run` in the background, `catch_up`
        self.failed = ""  # why `run` stopped

    async def start(self) -> None:
        newest = await self.redis.xrevrange(self.key, count=1)
        self.last = _text(newest[0].identifier) if newest else "0-0"

    async def run(self) -> None:
        """Read as events come (so none is trimmed away before a check reads it). If Redis
        fails, stop: the next check's `catch_up` meets the same error and reports it."""
        try:
            while True:
                if not await self.read(block_ms=1000):
                    await trio.sleep(0)
        except Exception as exc:  # coredis' errors: the checks report them
            self.failed = repr(exc)

    async def read(self, block_ms: int | None = None) -> int:
        async with self.lock:
            return await self._read(block_ms)

    async def _read(self, block_ms: int | None) -> int:
        got = await self.redis.xread({self.key: self.last}, count=2000, block=block_ms)
        n = 0
        for entries in (got or {}).values():
            for entry in entries:
                self.last = _text(entry.identifier)
                fields = {_text(k): v for k, v in entry.field_values.items()}
                kind = _text(fields.get("type", b"?"))
                self.types[kind] += 1
                n += 1
                if kind.startswith(KEPT):
                    data = orjson.loads(fields.get("data", b"{}"))
                    self.events[kind].append(data | {"_id": _text(fields.get("id", b""))})
        return n

    async def catch_up(self) -> None:
        """Everything written so far (call before a check)."""
        first = await self.redis.xrange(self.key, count=1)
        if first and self.last != "0-0":
            if _id_key(_text(first[0].identifier)) > _id_key(self.last):
                self.trimmed = True
        while await self.read():
            pass


async def _hgetall(redis: Any, key: str) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in (await redis.hgetall(key)).items()}


def _trimmed(tail: EventTail) -> str:
    return " (event stream trimmed before it was read)" if tail.trimmed else ""


async def check_sale(
    redis: Any | None,
    admin: Control,
    tail: EventTail | None,
    room: str,
    sale: str,
    limit: int,
    seen: list[tuple[str, str, str]],
    sold_out_answers: int,
) -> list[Check]:
    """After a flash sale: `seen` = (user, sale, hold) of every granted grab a viewer saw;
    `sold_out_answers`: grabs of it answered `sold_out`."""
    status = await admin.call("seckill_status", room, sale=sale)
    stock, left, held, sold = (int(status.get(k) or 0) for k in ("stock", "left", "held", "sold"))
    figures = {
        "stock": stock,
        "left": left,
        "held": held,
        "sold": sold,
        "holds_created": status.get("granted"),
        "granted_seen": len(seen),
    }
    conserved = stock == left + held + sold and left >= 0 and held + sold <= stock
    out = [
        Check(
            "no oversell",
            conserved,
            f"stock {stock} = left {left} + held {held} + sold "
            f"{sold}; {held + sold} units granted <= stock {stock}",
            figures,
        ),
        Check(
            "sold_out only when sold out",
            left == 0 or sold_out_answers == 0,
            f"{sold_out_answers:,} grabs answered sold_out, {left} units left after the sale",
        ),
    ]
    if redis is None or tail is None:
        enough = int(status.get("granted") or 0) >= len(seen)
        out.append(
            Check(
                "every granted grab recorded",
                None if enough else False,
                f"{len(seen)} grants seen, {status.get('granted')} holds in the sale "
                "(counts only: give --redis-url to check each hold and its event)",
            )
        )
        return out
    holds = await _hgetall(redis, keys.sale_holds(room, sale))
    users = await _hgetall(redis, keys.sale_users(room, sale))
    over = [u for u, n in users.items() if int(n) > limit]
    out.append(
        Check(
            "per-user limit",
            not over,
            f"{len(users)} buyers, {len(over)} over the limit of {limit}",
        )
    )
    await tail.catch_up()
    mine = [e for e in tail.events["seckill.reserved"] if e.get("sale") == sale]
    reserved = Counter(e["hold"] for e in mine)
    event_user = {e["hold"]: e.get("user") for e in mine}
    no_hold = wrong_user = no_event = 0
    for user, _, hold in seen:
        record = holds.get(hold)
        if record is None:
            no_hold += 1
            continue
        state, _qty, _exp, owner = record.split("\t")[:4]
        if owner != user or state not in ("held", "sold"):
            wrong_user += 1
        if reserved.get(hold, 0) < 1 or event_user.get(hold) != user:
            no_event += 1
    bad = no_hold + wrong_user + no_event
    out.append(
        Check(
            "every granted grab recorded",
            bad == 0 and not tail.trimmed,
            f"{len(seen)} grants seen by viewers: {no_hold} without a hold in Redis, "
            f"{wrong_user} held for someone else, {no_event} without their seckill.reserved "
            f"event{_trimmed(tail)}",
            {"no_hold": no_hold, "wrong_user": wrong_user, "no_event": no_event},
        )
    )
    twice = sum(1 for n in reserved.values() if n > 1)
    records = [r.split("\t") for r in holds.values()]
    units = sum(int(r[1]) for r in records if r[0] in ("held", "sold"))
    one_each = twice == 0 and set(reserved) == set(holds) and units == held + sold
    out.append(
        Check(
            "one seckill.reserved per hold",
            one_each and not tail.trimmed,
            f"{len(holds)} holds ({units} units held or sold), {len(reserved)} holds with an "
            f"event, {twice} with two or more{_trimmed(tail)}",
        )
    )
    return out


async def check_coupon(
    redis: Any | None,
    admin: Control,
    tail: EventTail | None,
    room: str,
    batch: str,
    seen: list[tuple[str, str, str]],
    all_claimed_answers: int,
) -> list[Check]:
    """After a coupon drop: `seen` = (user, batch, coupon) of every coupon a viewer was given;
    `all_claimed_answers`: claims of it answered `all_claimed`."""
    status = await admin.call("coupon_status", room, batch=batch)
    quantity, left, granted = (int(status.get(k) or 0) for k in ("quantity", "left", "granted"))
    figures = {"quantity": quantity, "left": left, "granted": granted, "granted_seen": len(seen)}
    counted = quantity == left + granted and 0 <= granted <= quantity
    detail = f"quantity {quantity} = left {left} + granted {granted}; granted <= quantity"
    early = Check(
        "all_claimed only when all claimed",
        left == 0 or all_claimed_answers == 0,
        f"{all_claimed_answers:,} claims answered all_claimed, {left} coupons left after the drop",
    )
    if redis is None or tail is None:
        return [
            Check("no double coupon", counted, detail + " (counts only: no --redis-url)", figures),
            early,
            Check(
                "every claimed coupon recorded",
                None if granted >= len(seen) else False,
                f"{len(seen)} coupons seen, {granted} granted (counts only)",
            ),
        ]
    holders = await _hgetall(redis, keys.coupon_users(room, batch))
    await tail.catch_up()
    events = [e for e in tail.events["coupon.granted"] if e.get("batch") == batch]
    per_user = Counter(e.get("user") for e in events)
    per_coupon = Counter(e.get("coupon") for e in events)
    shared = len(holders) - len(set(holders.values()))
    doubles = sum(1 for n in [*per_user.values(), *per_coupon.values()] if n > 1)
    single = counted and len(holders) == granted == len(events) and shared == 0 and doubles == 0
    out = [
        Check(
            "no double coupon",
            single and not tail.trimmed,
            f"{detail}; {len(holders)} holders, {len(events)} coupon.granted events, "
            f"{shared} coupons shared, {doubles} users or coupons granted twice"
            f"{_trimmed(tail)}",
            figures,
        ),
        early,
    ]
    event_of = {(e.get("user"), e.get("coupon")) for e in events}
    wrong = sum(1 for user, _, coupon in seen if holders.get(user) != coupon)
    no_event = sum(1 for user, _, coupon in seen if (user, coupon) not in event_of)
    out.append(
        Check(
            "every claimed coupon recorded",
            wrong + no_event == 0 and not tail.trimmed,
            f"{len(seen)} coupons seen by viewers: {wrong} not the user's coupon in Redis, "
            f"{no_event} without their coupon.granted event{_trimmed(tail)}",
            {"not_in_redis": wrong, "no_event": no_event},
        )
    )
    return out


async def entrants(admin: Control, room: str, lottery: str) -> list[str]:
    """Every entrant, page by page (`lottery_entrants`)."""
    users: list[str] = []
    while True:
        page = await admin.call("lottery_entrants", room, lottery=lottery, offset=len(users))
        users += page["users"]
        if not page["users"] or len(users) >= int(page["entrants"]):
            return users


async def check_lottery(
    admin: Control,
    tail: EventTail | None,
    room: str,
    lottery: str,
    commitment: str,
    entered: set[str],
    popups: list[tuple[str, list[str]]],
) -> list[Check]:
    """After a draw: `entered` = the users the swarm entered (keyword danmaku or
    `lottery_enter`); `popups` = the winner lists in the `lottery_winners` popups the probes
    received."""
    status = await admin.call("lottery_status", room, lottery=lottery)
    users = await entrants(admin, room, lottery)
    winners = [str(w["user"]) for w in status.get("winners") or []]
    wanted = int(status["winners_wanted"])
    verdict = verify(
        seed=str(status.get("seed") or ""),
        committed=commitment,
        entrants=users,
        wanted=wanted,
        published_digest=status.get("digest"),
        published_winners=winners,
    )
    figures = {
        "entrants": len(users),
        "entered_by_swarm": len(entered),
        "winners": len(winners),
        "wanted": wanted,
    }
    strangers = len(set(users) - entered)
    right = (
        len(winners) == min(wanted, len(users)) == len(set(winners))
        and set(winners) <= set(users)
        and strangers == 0
    )
    ok = {True: "ok", False: "WRONG", None: "not given"}
    out = [
        Check(
            "lottery winners",
            right,
            f"{len(winners)} distinct winners of {len(users):,} entrants (N = {wanted}); "
            f"{strangers} entrants the swarm did not enter",
            figures,
        ),
        Check(
            "lottery draw verifiable",
            verdict.ok,
            f"commitment {ok[verdict.commitment_ok]}, digest {ok[verdict.digest_ok]}, "
            f"winners {'reproduced' if verdict.winners_ok else 'NOT reproduced'} from the seed",
        ),
    ]
    shown = [w for lot, w in popups if lot == lottery]
    out.append(
        Check(
            "winners popup",
            bool(shown) and all(w == winners for w in shown),
            f"{len(shown)} probes got the lottery_winners popup, "
            f"{sum(1 for w in shown if w != winners)} with another list",
        )
    )
    if tail is not None:
        await tail.catch_up()
        won = [e.get("user") for e in tail.events["lottery.won"] if e.get("lottery") == lottery]
        drawn = [e for e in tail.events["lottery.drawn"] if e.get("lottery") == lottery]
        same = len(drawn) == 1 and sorted(map(str, won)) == sorted(winners)
        out.append(
            Check(
                "lottery events",
                same and not tail.trimmed,
                f"{len(drawn)} lottery.drawn, {len(won)} lottery.won for {len(winners)} "
                f"winners{_trimmed(tail)}",
            )
        )
    return out


def check_resume(delivery: dict[str, Any]) -> list[Check]:
    """After a reconnect storm, from the probes (`swarm_phases.delivery_at_probes`): no chat
    message reached a probe twice or out of order (a resume replays only what was missed, in
    order). Messages missing at a probe are figures, not judged here: a viewer that falls behind
    loses chat by design (docs/protocol.md, slow viewers), and a resync starts over."""
    dups, chat_back = delivery["dups"], delivery.get("chat_regress", 0)
    return [
        Check(
            "no chat message twice",
            dups == 0 and chat_back == 0,
            f"{delivery['probes']} probes: {dups} chat messages delivered twice, {chat_back} chat "
            f"items behind a position already reached; content positions going back "
            f"{delivery['regress']} times in all (popups shown again after a resume are allowed)",
            {"dups": dups, "chat_regress": chat_back, "regress": delivery["regress"]},
        )
    ]
