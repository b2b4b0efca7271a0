"""The rooms open on this node: bus subscription lifecycle, ticks, online counts.

A room opens (its bus channel is subscribed) when its first local viewer joins and closes a
linger period after its last one leaves, so a quick reconnect does not churn subscriptions.
One tick task serves every room of the node.
"""

from __future__ import annotations

import structlog
import trio

from engine.bus.bus import Bus
from engine.config import Config
from engine.errors import StoreUnavailable
from engine.fanout.broadcaster import RoomBroadcaster
from engine.fanout.room import LocalRoom, Sink
from engine.metrics import Metrics
from engine.stats import NodeStats
from engine.store.store import Store

log = structlog.get_logger("engine.rooms")

ONLINE_REFRESH_S = 2.0


class RoomRegistry:
    def __init__(self, config: Config, store: Store, stats: NodeStats, metrics: Metrics) -> None:
        self.config = config
        self.store = store
        self.stats = stats
        self.metrics = metrics
        self.rooms: dict[str, LocalRoom] = {}
        self.bus = Bus(store.redis, self._on_bus_message)
        chat_tick = config.chat_tick_ms / 1000
        self.tick_s = chat_tick if chat_tick > 0 else 0.1  # counters still tick when chat doesn't

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.bus.run)
            nursery.start_soon(self._tick_loop)
            nursery.start_soon(self._maintenance_loop)
            task_status.started()

    # --- membership ----------------------------------------------------------------------

    async def join(self, room_id: str, sink: Sink) -> LocalRoom:
        """Add `sink` to the room, opening the room on this node if needed. Deliveries start at
        once (the sink queues them until it has sent its welcome)."""
        room = self.rooms.get(room_id)
        if room is None:
            broadcaster = RoomBroadcaster(
                tick_s=self.config.chat_tick_ms / 1000,
                max_messages=self.config.chat_frame_max_messages,
                max_bytes=self.config.chat_frame_max_bytes,
            )
            room = self.rooms[room_id] = LocalRoom(room_id, broadcaster, self.stats)
            self.metrics.rooms.set(len(self.rooms))
        room.add(sink)
        try:
            async with room.lock:
                if not room.subscribed:
                    await self.bus.subscribe(room_id)
                    room.subscribed = True
                    await self.store.index_room(room_id)
        except BaseException:
            room.remove(sink)
            raise
        return room

    def leave(self, room: LocalRoom, sink: Sink) -> None:
        room.remove(sink)

    def _on_bus_message(self, room_id: str, payload: bytes) -> None:
        room = self.rooms.get(room_id)
        if room is not None:
            room.on_bus(payload)

    # --- background ----------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        tick, histogram = self.tick_s, self.metrics.tick_duration
        deadline = trio.current_time()
        while True:
            deadline = max(deadline + tick, trio.current_time())  # behind: no catch-up burst
            await trio.sleep_until(deadline)
            started = trio.current_time()
            for room in self.rooms.values():
                if room.size:
                    room.tick()
            histogram.observe(trio.current_time() - started)

    async def _maintenance_loop(self) -> None:
        """Refresh online counts and close rooms whose linger period has passed."""
        while True:
            await trio.sleep(ONLINE_REFRESH_S)
            now = trio.current_time()
            for room in list(self.rooms.values()):
                if room.size:
                    try:
                        room.broadcaster.set_online(await self.store.online(room.id))
                    except StoreUnavailable as exc:
                        log.warning("online refresh failed", room=room.id, error=str(exc))
                elif now - room.empty_since >= self.config.room_linger_s:
                    await self._close_room(room)

    async def _close_room(self, room: LocalRoom) -> None:
        async with room.lock:
            if room.size:  # somebody joined while we waited for the lock
                return
            if room.subscribed:
                try:
                    await self.bus.unsubscribe(room.id)
                except StoreUnavailable as exc:
                    log.warning("unsubscribe failed", room=room.id, error=str(exc))
                room.subscribed = False
            if not room.size and self.rooms.get(room.id) is room:
                del self.rooms[room.id]
                self.metrics.rooms.set(len(self.rooms))
