"""Redis side of the anti-fraud layer: rate limits (`ratelimit.lua`), accounts seen per IP and
device (`antifraud_seen.lua`), sanctions with their expiry and host events
(`antifraud_sanction.lua`, `antifraud_expire.lua`), word lists, limit and bot rule overrides
(plain hash commands: one key each, atomic by themselves), and the node-to-node signal channel.

A scope is a room id, or None for the global scope (keys in the `{af}` slot). No call mixes the
two: global rules are read and written apart from any room's.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import coredis
import orjson

from engine.store import keys
from engine.store.store import ScriptStore, new_event_id, now_ms, text, translate_errors

SCRIPTS: Final = ("ratelimit", "antifraud_seen", "antifraud_sanction", "antifraud_expire")

Scope = str | None  # a room id, or None: global


@dataclass(frozen=True, slots=True)
class LimitRequest:
    """One request of a rate-limit batch: `cost` units on every (key, interval_us, burst)."""

    cost: int
    checks: Sequence[tuple[str, int, int]]


@dataclass(frozen=True, slots=True)
class LimitAnswer:
    allowed: bool
    retry_after_ms: int  # -1: never at this cost
    refused_by: int  # index into the request's checks, or -1


@dataclass(frozen=True, slots=True)
class ScopeState:
    """Everything the anti-fraud layer keeps for one scope."""

    sanctions: dict[str, dict[str, Any]]  # "<kind>:<user>" -> record
    keywords: dict[str, str]
    limits: dict[str, str]  # room scope only
    rules: dict[str, str]


def _sanction_keys(scope: Scope) -> list[str]:
    if scope is None:
        return [keys.AF_SANCTIONS, keys.AF_SANCTION_EXPIRY]
    return [keys.sanctions(scope), keys.sanction_expiry(scope), keys.banned(scope),
            keys.events(scope)]  # fmt: skip


def _decoded(pairs: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in pairs.items()}


def _keywords_key(scope: Scope) -> str:
    return keys.AF_KEYWORDS if scope is None else keys.keywords(scope)


def _rules_key(scope: Scope) -> str:
    return keys.AF_BOT_RULES if scope is None else keys.bot_rules(scope)


class AntiFraudStore(ScriptStore):
    def __init__(self, redis: coredis.Redis[bytes], *, event_maxlen: int) -> None:
        super().__init__(redis, SCRIPTS, event_maxlen=event_maxlen)

    # --- rate limits -----------------------------------------------------------------------

    async def limit(
        self, requests: Sequence[LimitRequest], *, now_ms: float | None = None
    ) -> list[LimitAnswer]:
        """Decide a batch of requests in order (all keys of one room: one hash slot).
        `now_ms` None uses the Redis clock (one clock for every node)."""
        index: dict[str, int] = {}
        args: list[Any] = ["" if now_ms is None else repr(float(now_ms))]
        for request in requests:
            args += [request.cost, len(request.checks)]
            for key, interval_us, burst in request.checks:
                position = index.setdefault(key, len(index) + 1)
                args += [position, interval_us, burst]
        flat = await self._run("ratelimit", list(index), args)
        return [
            LimitAnswer(bool(flat[i]), int(flat[i + 1]), int(flat[i + 2]) - 1)
            for i in range(0, len(flat), 3)
        ]

    async def seen(
        self, room: str, user: str, ip: str, device: str | None, window_ms: int
    ) -> tuple[int, int]:
        """Record a join; (accounts seen from the IP, accounts seen on the device) in the window."""
        keys_ = [keys.seen_accounts(room, "ip", ip)]
        if device is not None:
            keys_.append(keys.seen_accounts(room, "device", device))
        by_ip, by_device = await self._run("antifraud_seen", keys_, [user, "", window_ms])
        return int(by_ip), int(by_device)

    async def seen_by(self, room: str, dimension: str, ident: str, limit: int) -> list[str]:
        """The accounts seen from one IP or device (most recent first, at most `limit`)."""
        with translate_errors("zrange"):
            raw = await self.redis.zrange(
                keys.seen_accounts(room, dimension, ident), 0, limit - 1, rev=True
            )
        return [text(u) for u in raw]

    # --- sanctions -------------------------------------------------------------------------

    async def sanction(
        self,
        scope: Scope,
        kind: str,
        user: str,
        record: dict[str, Any] | None,
        *,
        event_type: str,
        event: dict[str, Any],
    ) -> bool:
        """Impose (`record`) or lift (None) a sanction; True if anything changed."""
        until = int(record.get("until") or 0) if record else 0
        args = [kind, user, b"" if record is None else orjson.dumps(record), until, self._maxlen,
                new_event_id(), now_ms(), event_type, orjson.dumps(event)]  # fmt: skip
        return bool(await self._run("antifraud_sanction", _sanction_keys(scope), args))

    async def expire(self, scope: Scope, *, max_items: int = 500) -> tuple[list[str], int]:
        """Lift what has expired in a scope: (lifted "<kind>:<user>", next expiry ms or 0)."""
        reply = await self._run(
            "antifraud_expire",
            _sanction_keys(scope),
            ["", max_items, self._maxlen, secrets.token_hex(12)],
        )
        return [text(v) for v in reply[:-1]], int(reply[-1])

    # --- word lists, overrides -------------------------------------------------------------

    async def set_keywords(
        self, scope: Scope, add: Mapping[str, str], remove: Sequence[str]
    ) -> None:
        key = _keywords_key(scope)
        with translate_errors("keywords"):
            if remove:
                await self.redis.hdel(key, list(remove))
            if add:
                await self.redis.hset(key, dict(add))

    async def set_limit(self, room: str, field: str, value: str | None) -> None:
        with translate_errors("limits"):
            if value is None:
                await self.redis.hdel(keys.limit_overrides(room), [field])
            else:
                await self.redis.hset(keys.limit_overrides(room), {field: value})

    async def set_rule(self, scope: Scope, rule: str, value: str | None) -> None:
        key = _rules_key(scope)
        with translate_errors("bot rules"):
            if value is None:
                await self.redis.hdel(key, [rule])
            else:
                await self.redis.hset(key, {rule: value})

    async def state(self, scope: Scope) -> ScopeState:
        """Sanctions, words, limit overrides and rule overrides of a scope (one round trip)."""
        sanctions_key = keys.AF_SANCTIONS if scope is None else keys.sanctions(scope)
        with translate_errors("antifraud state"):
            async with self.redis.pipeline(transaction=False) as pipe:
                sanctions = pipe.hgetall(sanctions_key)
                words = pipe.hgetall(_keywords_key(scope))
                limits = pipe.hgetall(keys.limit_overrides(scope)) if scope is not None else None
                rules = pipe.hgetall(_rules_key(scope))
            records: dict[str, dict[str, Any]] = {}
            for field, raw in (await sanctions).items():
                try:
                    records[text(field)] = dict(orjson.loads(raw))
                except (orjson.JSONDecodeError, TypeError, ValueError):
                    continue
            return ScopeState(
                sanctions=records,
                keywords=_decoded(await words),
                limits={} if limits is None else _decoded(await limits),
                rules=_decoded(await rules),
            )

    # --- host events, signals --------------------------------------------------------------

    async def event(self, room: str, kind: str, data: dict[str, Any]) -> None:
        """A host event that reports no state change (e.g. `danmaku.flagged`): one XADD."""
        fields: dict[str, str | bytes] = {"id": new_event_id(), "type": kind, "ts": str(now_ms()),
                  "data": orjson.dumps(data)}  # fmt: skip
        with translate_errors("xadd"):
            await self.redis.xadd(
                keys.events(room), fields, trim_strategy=coredis.PureToken.MAXLEN,
                threshold=int(self._maxlen), trim_operator=coredis.PureToken.APPROXIMATELY,
            )  # fmt: skip

    async def signal(self, message: dict[str, Any]) -> None:
        """Tell every node (they apply it to what they keep in memory)."""
        with translate_errors("publish"):
            await self.redis.publish(keys.AF_SIGNALS, orjson.dumps(message))
