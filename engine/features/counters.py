"""Counters that change often (coupons left, lottery entrants) reach viewers at most once per
tick: the node keeps the newest version of each counter it has seen and, once per tick, publishes
the ones that changed as `counter` room messages, the mechanism the flash-sale stock uses
(engine/fanout/broadcaster.py: each node's broadcaster keeps the newest version per key and sends
it once per tick, so a viewer gets at most one frame per counter and tick whatever the rate).
"""

from __future__ import annotations

from typing import Any

import structlog
import trio

from engine.errors import StoreUnavailable
from engine.store.store import Store

log = structlog.get_logger("engine.counters")

CounterKey = tuple[str, str]  # (room, counter key)


class TickCounters:
    def __init__(self, store: Store, interval_s: float) -> None:
        self._store = store
        self._interval_s = max(0.01, interval_s)
        self._latest: dict[CounterKey, tuple[int, dict[str, Any]]] = {}
        self._published: dict[CounterKey, int] = {}
        self._due: set[CounterKey] = set()
        self.published = 0

    def observe(self, room: str, key: str, version: int, message: dict[str, Any]) -> None:
        """A counter read from Redis: viewers get it at the next tick if it is news."""
        ck = (room, key)
        current = self._latest.get(ck)
        if current is None or version > current[0]:
            self._latest[ck] = (version, message)
            self._due.add(ck)

    def forget(self, room: str, key: str) -> None:
        """The counter is over (its batch ended, its lottery was drawn)."""
        self._latest.pop((room, key), None)
        self._published.pop((room, key), None)
        self._due.discard((room, key))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self._interval_s)
            await self.publish_due()

    async def publish_due(self) -> None:
        due, self._due = self._due, set()
        for ck in due:
            latest = self._latest.get(ck)
            if latest is None or self._published.get(ck, -1) >= latest[0]:
                continue
            version, message = latest
            room, key = ck
            try:
                await self._store.publish(room, {"k": "counter", "key": key, "v": version,
                                                 "m": message})  # fmt: skip
            except StoreUnavailable as exc:
                self._due.add(ck)
                log.warning("counter not published", room=room, key=key, error=str(exc))
                continue
            self._published[ck] = version
            self.published += 1
