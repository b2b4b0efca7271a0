"""Redis side of products and flash sales: one method per script (`scripts/lua/product_*.lua`,
`products_set.lua`, `seckill_*.lua`), behind the same `translate_errors` boundary as `Store`.

Scripts read the time from Redis (one clock for every node, so a sale opens at the same instant
everywhere) unless a `clock` is given: tests and the benchmark pass one to play with time.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Final

import coredis
import msgpack
import orjson
from coredis.tokens import PureToken

from engine.store import keys
from engine.store.store import Clock, ScriptStore, new_event_id, text, translate_errors

SCRIPTS: Final = (
    "products_set",
    "product_card",
    "product_click",
    "seckill_start",
    "seckill_grab",
    "seckill_release",
    "seckill_confirm",
    "seckill_cancel",
    "seckill_restock",
    "seckill_end",
    "seckill_peek",
)


def grab_keys(room: str, sale: str) -> list[str]:
    """KEYS of seckill_grab, in its order (also what the benchmark's EVALSHA passes)."""
    return [
        keys.sale(room, sale),
        keys.sale_requests(room, sale),
        keys.sale_users(room, sale),
        keys.sale_holds(room, sale),
        keys.sale_expiry(room, sale),
        keys.sale_winners(room, sale),
        keys.banned(room),
        keys.events(room),
        keys.state(room),
    ]


def _hold_keys(room: str, sale: str) -> list[str]:
    return [
        keys.sale(room, sale),
        keys.sale_users(room, sale),
        keys.sale_holds(room, sale),
        keys.sale_expiry(room, sale),
        keys.events(room),
        keys.state(room),
    ]


class SeckillStore(ScriptStore):
    def __init__(
        self, redis: coredis.Redis[bytes], *, event_maxlen: int, clock: Clock | None = None
    ) -> None:
        super().__init__(redis, SCRIPTS, event_maxlen=event_maxlen, clock=clock)

    # --- products ------------------------------------------------------------------------

    async def set_products(self, room: str, products: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Replace the product list; returns the refreshed `cards` state."""
        args: list[Any] = []
        for product in products:
            args += [product["id"], msgpack.packb(product)]
        packed = await self._run("products_set", [keys.products(room), keys.state(room)], args)
        return cards_state(packed)

    async def products(self, room: str) -> list[dict[str, Any]]:
        with translate_errors("hvals"):
            values = await self.redis.hvals(keys.products(room))
        items = [msgpack.unpackb(v) for v in values]
        items.sort(key=lambda p: (p["order"], p["id"]))
        return items

    async def product(self, room: str, product: str) -> dict[str, Any] | None:
        with translate_errors("hget"):
            raw = await self.redis.hget(keys.products(room), product)
        return None if raw is None else dict(msgpack.unpackb(raw))

    async def card(
        self, room: str, action: str, product: str
    ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        """(code, cards state, the product's card) after mount/unmount/pin/unpin."""
        code, packed, card = await self._run(
            "product_card", [keys.products(room), keys.state(room)], [action, product]
        )
        return text(code), cards_state(packed), msgpack.unpackb(card) if card else None

    async def click(self, room: str, product: str, user: str) -> tuple[int, bool]:
        """(product's clicks, first click of this user) or (-1, False): unknown product."""
        clicks, first = await self._run(
            "product_click",
            [keys.products(room), keys.product_clicks(room), keys.product_clickers(room),
             keys.events(room)],
            [product, user, self._maxlen, new_event_id(), self.now_ms()],
        )  # fmt: skip
        return int(clicks), first == 1

    async def clicks(self, room: str) -> dict[str, int]:
        with translate_errors("hgetall"):
            raw = await self.redis.hgetall(keys.product_clicks(room))
        return {text(k): int(v) for k, v in raw.items()}

    # --- flash sales ---------------------------------------------------------------------

    async def start(
        self,
        room: str,
        spec: Any,
        view: dict[str, Any],
        event: dict[str, Any],
        event_id: str | None = None,
    ) -> tuple[str, int, int, int]:
        """(code, left, stock, ver) of seckill_start."""
        reply = await self._run(
            "seckill_start",
            [keys.sale(room, spec.sale), keys.products(room), keys.events(room), keys.state(room),
             keys.sales(room)],
            [self._now(), self._maxlen, event_id or new_event_id(), spec.sale, spec.product,
             spec.price, spec.stock, spec.limit, spec.start_ms, spec.end_ms, spec.hold_ms,
             msgpack.packb(view), orjson.dumps(event)],
        )  # fmt: skip
        return text(reply[0]), int(reply[1]), int(reply[2]), int(reply[3])

    async def grab(self, room: str, sale: str, items: Sequence[Any]) -> Any:
        """Run a batch of grabs; `items` is the flat ARGV tail (user, request key, qty, ...).
        The raw reply goes to `seckill.parse_grab_reply`."""
        args = [self._now(), self._maxlen, secrets.token_hex(12), sale, *items]
        return await self._run("seckill_grab", grab_keys(room, sale), args)

    async def release(
        self, room: str, sale: str, *, max_holds: int, retention_s: int
    ) -> tuple[int, int, int, int, bool, bool]:
        """(released, left, stock, ver, more, finished) of one sweep step."""
        reply = await self._run(
            "seckill_release",
            [keys.sale(room, sale), keys.sale_users(room, sale), keys.sale_holds(room, sale),
             keys.sale_expiry(room, sale), keys.events(room), keys.state(room), keys.sales(room),
             keys.sale_requests(room, sale), keys.sale_winners(room, sale)],
            [self._now(), self._maxlen, secrets.token_hex(12), sale, max_holds, retention_s],
        )  # fmt: skip
        released, left, stock, ver, more, finished = (int(v) for v in reply)
        return released, left, stock, ver, more == 1, finished == 1

    async def settle(
        self, room: str, sale: str, hold: str, *, confirm: bool, note: str, event_id: str | None
    ) -> tuple[str, bool, str, int, int, int, int]:
        """Confirm (note = the host's order id) or cancel (note = reason) a hold:
        (code, already, user, qty, left, stock, ver)."""
        reply = await self._run(
            "seckill_confirm" if confirm else "seckill_cancel",
            _hold_keys(room, sale),
            [self._now(), self._maxlen, event_id or new_event_id(), sale, hold, note],
        )
        code, already, user, qty, left, stock, ver = reply
        return text(code), already == 1, text(user), int(qty), int(left), int(stock), int(ver)

    async def restock(
        self, room: str, sale: str, count: int, event_id: str | None = None
    ) -> tuple[str, int, int, int]:
        reply = await self._run(
            "seckill_restock",
            [keys.sale(room, sale), keys.events(room), keys.state(room)],
            [self._now(), self._maxlen, event_id or new_event_id(), sale, count],
        )
        return text(reply[0]), int(reply[1]), int(reply[2]), int(reply[3])

    async def end(
        self, room: str, sale: str, event_id: str | None = None
    ) -> tuple[str, bool, int, int, int]:
        reply = await self._run(
            "seckill_end",
            [keys.sale(room, sale), keys.events(room), keys.state(room)],
            [self._now(), self._maxlen, event_id or new_event_id(), sale],
        )
        return text(reply[0]), reply[1] == 1, int(reply[2]), int(reply[3]), int(reply[4])

    async def peek(self, room: str, sale: str) -> Any:
        return await self._run(
            "seckill_peek", [keys.sale(room, sale), keys.sale_winners(room, sale)], []
        )

    async def sale_info(self, room: str, sale: str) -> dict[str, str]:
        with translate_errors("hgetall"):
            raw = await self.redis.hgetall(keys.sale(room, sale))
        return {text(k): text(v) for k, v in raw.items()}

    async def hold_record(self, room: str, sale: str, hold: str) -> str | None:
        with translate_errors("hget"):
            raw = await self.redis.hget(keys.sale_holds(room, sale), hold)
        return None if raw is None else text(raw)

    async def room_sales(self, room: str) -> list[str]:
        with translate_errors("smembers"):
            return sorted(text(s) for s in await self.redis.smembers(keys.sales(room)))

    # --- the sweeper's index -------------------------------------------------------------

    async def index_sale(self, room: str, sale: str) -> None:
        with translate_errors("sadd"):
            await self.redis.sadd(keys.SECKILL_INDEX, [f"{room}\n{sale}"])

    async def unindex_sale(self, room: str, sale: str) -> None:
        with translate_errors("srem"):
            await self.redis.srem(keys.SECKILL_INDEX, [f"{room}\n{sale}"])

    async def indexed_sales(self) -> list[tuple[str, str]]:
        with translate_errors("smembers"):
            members = await self.redis.smembers(keys.SECKILL_INDEX)
        out = []
        for member in members:
            room, _, sale = text(member).partition("\n")
            out.append((room, sale))
        return sorted(out)

    async def take_sweep_lease(self, node: str, ttl_ms: int) -> bool:
        """The sweeper runs on one node at a time: whoever holds this lease (renewed each
        round by its holder; taken over by another node when it lapses)."""
        with translate_errors("sweeper lease"):
            if await self.redis.set(
                keys.SECKILL_SWEEP_LEASE, node, condition=PureToken.NX, px=ttl_ms
            ):
                return True
            holder = await self.redis.get(keys.SECKILL_SWEEP_LEASE)
            if holder is not None and text(holder) == node:
                await self.redis.pexpire(keys.SECKILL_SWEEP_LEASE, ttl_ms)
                return True
        return False


def cards_state(packed: Any) -> dict[str, Any]:
    """The `cards` state field as viewers get it: {mounted: [card...], pinned: id or None}."""
    raw = msgpack.unpackb(packed) if packed else {}
    mounted = raw.get("mounted") or []
    if not isinstance(mounted, list):
        mounted = []
    pinned = raw.get("pinned") or None
    return {"mounted": mounted, "pinned": pinned}
