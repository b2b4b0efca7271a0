"""Follows: a viewer follows the room's anchor over the gateway (`follow`).

Idempotent per room and user: the first follow writes a `follow` event (the host updates its
follow graph and may notify the anchor) and counts as a new follow of the session (the live
numbers' `new_follows`, reset when the room starts); repeats change nothing. A follow also
enters the room's open lotteries that take follows (docs/lottery.md).
"""

from __future__ import annotations

from typing import Any

from engine.store.follows import FollowStore


class Follows:
    def __init__(self, store: FollowStore) -> None:
        self._store = store

    async def follow(self, room: str, user: str) -> tuple[bool, int]:
        """(new follow, new follows this session)."""
        return await self._store.follow(room, user)

    async def follows(self, room: str, user: str) -> bool:
        return await self._store.follows(room, user)

    async def numbers(self, room: str) -> dict[str, Any]:
        """`new_follows` (this session) and `followers` (ever, from this room)."""
        total, session = await self._store.counts(room)
        return {"new_follows": session, "followers": total}
