"""Redis side of coupons: one method per script (`scripts/lua/coupon_*.lua`), behind the same
`translate_errors` boundary as `Store`. Scripts read Redis's clock unless a `clock` is given
(tests pass one to play with time)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Final

import coredis

from engine.features.coupons import BatchSpec
from engine.store import keys
from engine.store.store import Clock, ScriptStore, new_event_id, text, translate_errors

SCRIPTS: Final = ("coupon_create", "coupon_drop", "coupon_schedule", "coupon_claim", "coupon_end")
RETENTION_MS: Final = 7 * 86400 * 1000  # a batch's keys live this long after its validity


class CouponStore(ScriptStore):
    def __init__(
        self, redis: coredis.Redis[bytes], *, event_maxlen: int, clock: Clock | None = None
    ) -> None:
        super().__init__(redis, SCRIPTS, event_maxlen=event_maxlen, clock=clock)

    async def create(
        self, room: str, spec: BatchSpec, *, state: str, drop_at: int = 0
    ) -> tuple[str, int]:
        """(code, claim_until) of coupon_create; `state` created | scheduled | live."""
        code, claim_until = await self._run(
            "coupon_create",
            [keys.coupon_batch(room, spec.batch), keys.coupons(room), keys.events(room),
             keys.state(room)],
            [self._now(), self._maxlen, secrets.token_hex(12), spec.batch, spec.kind, spec.value,
             spec.threshold, spec.quantity, spec.valid_until, spec.claim_ms, spec.title, state,
             drop_at, spec.valid_until + RETENTION_MS, spec.product],
        )  # fmt: skip
        return text(code), int(claim_until)

    async def drop(self, room: str, batch: str) -> tuple[str, bool, int]:
        """(code, already live, claim_until) of coupon_drop."""
        code, already, claim_until = await self._run(
            "coupon_drop",
            [keys.coupon_batch(room, batch), keys.state(room), keys.events(room)],
            [self._now(), self._maxlen, new_event_id(), batch],
        )
        return text(code), already == 1, int(claim_until)

    async def schedule(self, room: str, batch: str, drop_at: int) -> str:
        code, _state = await self._run(
            "coupon_schedule",
            [keys.coupon_batch(room, batch), keys.events(room)],
            [self._now(), self._maxlen, new_event_id(), batch, drop_at],
        )
        return text(code)

    async def claim(self, room: str, batch: str, items: Sequence[Any]) -> Any:
        """Decide a batch of claims; `items` is the flat ARGV tail (user, request key, source,
        ...). The raw reply goes to `coupons.parse_claim_reply`."""
        return await self._run(
            "coupon_claim",
            [keys.coupon_batch(room, batch), keys.coupon_requests(room, batch),
             keys.coupon_users(room, batch), keys.banned(room), keys.events(room),
             keys.state(room)],
            [self._now(), self._maxlen, secrets.token_hex(12), batch, *items],
        )  # fmt: skip

    async def end(self, room: str, batch: str, reason: str) -> tuple[str, bool, int, int, int]:
        """(code, already ended, left, quantity, claim_until) of coupon_end."""
        code, already, left, quantity, claim_until = await self._run(
            "coupon_end",
            [keys.coupon_batch(room, batch), keys.state(room), keys.events(room)],
            [self._now(), self._maxlen, new_event_id(), batch, reason],
        )
        return text(code), already == 1, int(left), int(quantity), int(claim_until)

    async def info(self, room: str, batch: str) -> dict[str, str]:
        with translate_errors("hgetall"):
            raw = await self.redis.hgetall(keys.coupon_batch(room, batch))
        return {text(k): text(v) for k, v in raw.items()}

    async def batches(self, room: str) -> list[str]:
        with translate_errors("smembers"):
            return sorted(text(b) for b in await self.redis.smembers(keys.coupons(room)))

    async def forget(self, room: str, batch: str) -> None:
        """Take a batch whose keys expired out of the room's list."""
        with translate_errors("srem"):
            await self.redis.srem(keys.coupons(room), [batch])

    async def holder(self, room: str, batch: str, user: str) -> str | None:
        with translate_errors("hget"):
            raw = await self.redis.hget(keys.coupon_users(room, batch), user)
        return None if raw is None else text(raw)

    async def share_batch(self, room: str) -> str | None:
        with translate_errors("get"):
            raw = await self.redis.get(keys.share_coupon(room))
        return None if raw is None else text(raw)

    async def set_share_batch(self, room: str, batch: str | None) -> None:
        with translate_errors("set share coupon"):
            if batch is None:
                await self.redis.delete([keys.share_coupon(room)])
            else:
                await self.redis.set(keys.share_coupon(room), batch)
