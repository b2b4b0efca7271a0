"""Likes: any number per viewer, one live total per room.

Each node adds up its viewers' likes per room and, once per tick, adds the sum to the room total
in Redis (one script call per room and tick, however many taps) which announces the new total to
every node. A sum that could not be written is kept and retried: likes are not lost while Redis
is away.
"""

from __future__ import annotations

import structlog
import trio

from engine.errors import StoreUnavailable
from engine.store.store import Store

log = structlog.get_logger("engine.likes")


class LikeCounter:
    def __init__(self, store: Store, flush_s: float) -> None:
        self._store = store
        self._flush_s = flush_s
        self._pending: dict[str, int] = {}

    def add(self, room: str, count: int) -> None:
        self._pending[room] = self._pending.get(room, 0) + count

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self._flush_s)
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for room, count in pending.items():
            try:
                await self._store.add_likes(room, count)
            except StoreUnavailable as exc:
                self.add(room, count)
                log.warning("likes not flushed, will retry", room=room, likes=count, error=str(exc))
