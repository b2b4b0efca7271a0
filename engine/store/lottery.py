"""Redis side of lotteries: one method per script (`scripts/lua/lottery_*.lua`), behind the
same `translate_errors` boundary as `Store`. Scripts read Redis's clock unless a `clock` is
given (tests pass one)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Final

import coredis
import orjson

from engine.store import keys
from engine.store.store import Clock, ScriptStore, new_event_id, text, translate_errors

SCRIPTS: Final = ("lottery_create", "lottery_enter", "lottery_freeze", "lottery_draw",
                  "lottery_claim", "lottery_expire", "lottery_cancel")  # fmt: skip
RETENTION_MS: Final = 30 * 86400 * 1000  # a lottery's keys live this long (after its claims)
PAGE: Final = 10_000  # entrants read per call


class LotteryStore(ScriptStore):
    def __init__(
        self, redis: coredis.Redis[bytes], *, event_maxlen: int, clock: Clock | None = None
    ) -> None:
        super().__init__(redis, SCRIPTS, event_maxlen=event_maxlen, clock=clock)

    async def create(
        self,
        room: str,
        lottery: str,
        *,
        prize: str,
        wanted: int,
        entry: str,
        keyword: str,
        keyword_key: str,
        draw_at: int,
        claim_ms: int,
        seed: str,
        commitment: str,
    ) -> tuple[str, int]:
        """(code, created_at) of lottery_create."""
        code, created = await self._run(
            "lottery_create",
            [keys.lottery(room, lottery), keys.lotteries(room), keys.events(room),
             keys.state(room)],
            [self._now(), self._maxlen, new_event_id(), lottery, prize, wanted, entry, keyword,
             keyword_key, draw_at, claim_ms, seed, commitment, RETENTION_MS],
        )  # fmt: skip
        return text(code), int(created)

    async def enter(
        self, room: str, lottery: str, user: str, how: str, name: str = ""
    ) -> tuple[str, bool, int, int]:
        """(code, new entrant, count, ver) of lottery_enter for one entry."""
        [(code, new)], count, ver = await self.enter_batch(room, lottery, [(user, how, name)])
        return code, new, count, ver

    async def enter_batch(
        self, room: str, lottery: str, entries: Sequence[tuple[str, str, str]]
    ) -> tuple[list[tuple[str, bool]], int, int]:
        """lottery_enter for a batch of (user, how, name) in order, in one script call:
        ([(code, new entrant)] per entry, count, ver after the batch)."""
        args: list[Any] = [self._now(), lottery]
        for user, how, name in entries:
            args += (user, how, name)
        reply = await self._run(
            "lottery_enter",
            [keys.lottery(room, lottery), keys.lottery_entrants(room, lottery),
             keys.lottery_names(room, lottery), keys.state(room), keys.followers(room),
             keys.banned(room)],
            args,
        )  # fmt: skip
        count, ver, *flat = reply
        answers = [(text(flat[i]), flat[i + 1] == 1) for i in range(0, len(flat), 2)]
        return answers, int(count), int(ver)

    async def freeze(self, room: str, lottery: str) -> tuple[str, int, str]:
        """(code, entrants, state) of lottery_freeze."""
        code, count, state = await self._run(
            "lottery_freeze",
            [keys.lottery(room, lottery), keys.lottery_entrants(room, lottery),
             keys.lotteries(room)],
            [self._now(), lottery],
        )  # fmt: skip
        return text(code), int(count), text(state)

    async def entrants(self, room: str, lottery: str) -> list[str]:
        """Every entrant, in byte order (the set's scores are all 0)."""
        out: list[str] = []
        key = keys.lottery_entrants(room, lottery)
        with translate_errors("zrange"):
            while True:
                page = await self.redis.zrange(key, len(out), len(out) + PAGE - 1)
                out += [text(u) for u in page]
                if len(page) < PAGE:
                    return out

    async def entrants_page(self, room: str, lottery: str, offset: int, limit: int) -> list[str]:
        with translate_errors("zrange"):
            page = await self.redis.zrange(
                keys.lottery_entrants(room, lottery), offset, offset + limit - 1
            )
        return [text(u) for u in page]

    async def draw(
        self, room: str, lottery: str, *, key: str, digest: str, count: int
    ) -> tuple[str, bool, int, int, list[str]]:
        """(code, drawn before, drawn_at, claim_until, winners in rank order) of lottery_draw."""
        reply = await self._run(
            "lottery_draw",
            [keys.lottery(room, lottery), keys.lottery_entrants(room, lottery),
             keys.lottery_winners(room, lottery), keys.lottery_names(room, lottery),
             keys.events(room), keys.state(room), keys.lotteries(room)],
            [self._now(), self._maxlen, secrets.token_hex(12), lottery, key, digest, count,
             RETENTION_MS],
        )  # fmt: skip
        code, already, drawn_at, claim_until, *winners = reply
        return text(code), already == 1, int(drawn_at), int(claim_until), [text(w) for w in winners]

    async def claim(
        self, room: str, lottery: str, user: str, ref: str
    ) -> tuple[str, bool, int, int]:
        """(code, claimed before, rank, claim_until) of lottery_claim."""
        code, already, rank, until = await self._run(
            "lottery_claim",
            [keys.lottery(room, lottery), keys.lottery_winners(room, lottery), keys.events(room)],
            [self._now(), self._maxlen, new_event_id(), lottery, user, ref],
        )
        return text(code), already == 1, int(rank), int(until)

    async def expire(self, room: str, lottery: str) -> tuple[int, int]:
        """(prizes expired now, next claim deadline or 0) of lottery_expire."""
        expired, next_due = await self._run(
            "lottery_expire",
            [keys.lottery(room, lottery), keys.lottery_winners(room, lottery), keys.events(room)],
            [self._now(), self._maxlen, secrets.token_hex(12), lottery],
        )
        return int(expired), int(next_due)

    async def cancel(self, room: str, lottery: str, reason: str) -> tuple[str, bool]:
        code, already = await self._run(
            "lottery_cancel",
            [keys.lottery(room, lottery), keys.events(room), keys.state(room),
             keys.lotteries(room)],
            [self._now(), self._maxlen, new_event_id(), lottery, reason],
        )  # fmt: skip
        return text(code), already == 1

    async def info(self, room: str, lottery: str) -> dict[str, str]:
        with translate_errors("hgetall"):
            raw = await self.redis.hgetall(keys.lottery(room, lottery))
        return {text(k): text(v) for k, v in raw.items()}

    async def winners(self, room: str, lottery: str) -> dict[str, str]:
        """winner -> "rank\\tstate\\tclaim_until\\tref"."""
        with translate_errors("hgetall"):
            raw = await self.redis.hgetall(keys.lottery_winners(room, lottery))
        return {text(k): text(v) for k, v in raw.items()}

    async def names(self, room: str, lottery: str, users: Sequence[str]) -> list[str | None]:
        if not users:
            return []
        with translate_errors("hmget"):
            raw = await self.redis.hmget(keys.lottery_names(room, lottery), list(users))
        return [None if v is None else text(v) for v in raw]

    async def room_lotteries(self, room: str) -> dict[str, dict[str, Any]]:
        """lottery id -> {entry, keyword (normalized), draw_at, state}."""
        with translate_errors("hgetall"):
            raw = await self.redis.hgetall(keys.lotteries(room))
        out = {}
        for k, v in raw.items():
            try:
                out[text(k)] = dict(orjson.loads(v))
            except (orjson.JSONDecodeError, TypeError):
                continue
        return out

    async def forget(self, room: str, lottery: str) -> None:
        with translate_errors("hdel"):
            await self.redis.hdel(keys.lotteries(room), [lottery])
