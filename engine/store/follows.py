"""Redis side of follows (`scripts/lua/follow.lua`)."""

from __future__ import annotations

from typing import Any

import coredis

from engine.store import keys
from engine.store.scripts import script_sources
from engine.store.store import new_event_id, now_ms, translate_errors


class FollowStore:
    def __init__(self, redis: coredis.Redis[bytes], *, event_maxlen: int) -> None:
        self.redis = redis
        self._maxlen = str(event_maxlen)
        self._script = redis.register_script(script_sources()["follow"])

    async def follow(self, room: str, user: str) -> tuple[bool, int]:
        """(new follow, new follows this session); a `follow` event when new."""
        with translate_errors("follow"):
            reply: Any = await self._script(
                keys=[keys.followers(room), keys.numbers(room), keys.events(room),
                      keys.info(room)],
                args=[now_ms(), self._maxlen, new_event_id(), user],
            )  # fmt: skip
        new, count = reply
        return new == 1, int(count)

    async def follows(self, room: str, user: str) -> bool:
        with translate_errors("hexists"):
            return bool(await self.redis.hexists(keys.followers(room), user))

    async def counts(self, room: str) -> tuple[int, int]:
        """(followers from this room, new follows this session)."""
        with translate_errors("follow counts"):
            total = await self.redis.hlen(keys.followers(room))
            session: Any = await self.redis.hget(keys.numbers(room), "follows")
        return int(total), int(session or 0)
