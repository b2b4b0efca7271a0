"""Who is in a room, at the level of people, over all nodes.

A person is present while some node refreshes them: each node holds, per room, how many of its
connections each user has, and every `refresh_s` tells Redis "these users are still here" (one
script call per room, batched). A person whose deadline passes (their last connection closed and
no quick reconnect came, or their node died) is swept by whichever node gets there first, with
exactly one `viewer.left`. Several tabs or devices of one user are one person; a reconnect within
the grace period is not a leave. Online counts are people with a deadline ahead.

Rooms that no node serves any more are still swept: every refresh (and every last-connection
close) puts the room in a global due-set, and every node's sweeper takes due rooms from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
import trio

from engine.errors import StoreUnavailable
from engine.store.store import Store, now_ms

log = structlog.get_logger("engine.presence")

SWEEP_EVERY_S = 1.0


class Presence:
    def __init__(
        self,
        store: Store,
        *,
        grace_s: float,
        refresh_s: float,
        on_online: Callable[[str, int], None],
    ) -> None:
        self._store = store
        self.grace_s = grace_s
        self._refresh_s = refresh_s
        self._on_online = on_online  # (room, online people): the room shows the new count
        self.local: dict[str, dict[str, int]] = {}  # room -> user -> connections on this node

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._refresh_loop)
            nursery.start_soon(self._sweep_loop)
            task_status.started()

    async def join(self, room: str, user: str, data: dict[str, Any]) -> int:
        """A connection of `user` joined on this node; the room's online count."""
        users = self.local.setdefault(room, {})
        users[user] = users.get(user, 0) + 1
        try:
            online, _entered = await self._store.enter(room, user, self.grace_s, data)
        except BaseException:
            self.leave(room, user)
            raise
        # the room hears the new count with the next refresh, not at every join: during a join
        # storm a count per join would be a frame to every viewer at every tick
        return online

    def leave(self, room: str, user: str) -> bool:
        """A connection closed; True when it was the user's last one on this node (the person
        stays present for the grace period, then is swept unless they came back)."""
        users = self.local.get(room)
        if users is None or user not in users:
            return False
        users[user] -= 1
        if users[user] > 0:
            return False
        del users[user]
        if not users:
            del self.local[room]
        return True

    async def gone_from_node(self, room: str, user: str) -> None:
        """The user's last connection on this node closed: mark them seen now (their watch
        time ends here unless they come back) and make sure some node sweeps the room after
        the grace, even if none serves it then."""
        await self._store.refresh(room, [user], self.grace_s)
        await self._store.schedule_sweep(room, now_ms() + int(self.grace_s * 1000) + 500)

    async def refresh_all(self) -> None:
        """One heartbeat: every room this node serves, and a sweep of their gone."""
        deadline = now_ms() + int(self.grace_s * 1000)
        for room, users in list(self.local.items()):
            try:
                online, earliest = await self._store.refresh(room, list(users), self.grace_s)
                await self._store.schedule_sweep(room, (earliest or deadline) + 500)
            except StoreUnavailable as exc:
                log.debug("presence refresh failed", room=room, error=str(exc))
                continue
            self._on_online(room, online)

    async def sweep_due(self) -> None:
        """Sweep rooms whose presence deadlines have come, whoever serves them (or nobody)."""
        for room in await self._store.rooms_due():
            online, earliest = await self._store.refresh(room, [], self.grace_s)
            if earliest:
                await self._store.schedule_sweep(room, earliest + 500, earlier_only=False)
            elif room not in self.local:
                await self._store.unschedule_sweep(room)
            self._on_online(room, online)

    async def _refresh_loop(self) -> None:
        while True:
            await trio.sleep(self._refresh_s)
            await self.refresh_all()

    async def _sweep_loop(self) -> None:
        while True:
            await trio.sleep(SWEEP_EVERY_S)
            try:
                await self.sweep_due()
            except StoreUnavailable as exc:
                log.debug("presence sweep failed", error=str(exc))
