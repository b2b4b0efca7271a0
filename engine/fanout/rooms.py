"""The rooms open on this node: bus subscription lifecycle, message order, ticks, online counts,
resumes.

A room opens (its bus channel is subscribed, its position read from Redis) when its first local
viewer joins, and closes a linger period after its last one leaves, so a quick reconnect does not
churn subscriptions. One tick task serves every room of the node. What the room sequencer asks
for (fill a gap from the history, resync after an epoch change) runs as tasks here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
import trio

from engine.bus.bus import Bus
from engine.config import Config
from engine.errors import StoreUnavailable
from engine.fanout.broadcaster import RoomBroadcaster
from engine.fanout.room import LocalRoom, PopupHook, Sink
from engine.fanout.sequencer import Step, Verdict
from engine.features.coupons import coupon_views
from engine.features.lottery import lottery_views
from engine.features.popups import current_popup
from engine.features.products import cards_view
from engine.features.seckill import sale_views
from engine.metrics import Metrics
from engine.protocol import server
from engine.stats import NodeStats
from engine.store.store import Store, now_ms

log = structlog.get_logger("engine.rooms")

LINGER_CHECK_S = 0.5
RETRY_S = 0.5
CATCH_UP_WAIT_S = 2.0  # how long a viewer resuming from a node that was ahead may wait for us


@dataclass(frozen=True, slots=True)
class Joined:
    room: LocalRoom
    epoch: str
    position: int  # the member was added when the room had sent up to here
    replay: bytes | None  # frames it missed (resumes), None when it must resync
    recovery: str  # fresh | resumed | resync
    reason: str | None = None


class RoomRegistry:
    def __init__(self, config: Config, store: Store, stats: NodeStats, metrics: Metrics) -> None:
        self.config = config
        self.store = store
        self.stats = stats
        self.metrics = metrics
        self.rooms: dict[str, LocalRoom] = {}
        self.bus = Bus(store.redis, self._on_bus_message, self._on_bus_state)
        self.on_popup: PopupHook | None = None  # given to every room this node opens
        chat_tick = config.chat_tick_ms / 1000
        self.tick_s = chat_tick if chat_tick > 0 else 0.1  # counters still tick when chat doesn't
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.bus.run)
            nursery.start_soon(self._tick_loop)
            nursery.start_soon(self._maintenance_loop)
            task_status.started()

    # --- membership ----------------------------------------------------------------------

    async def join(
        self, room_id: str, sink: Sink, *, since: int | None = None, epoch: str | None = None
    ) -> Joined:
        """Add `sink` to the room (opening it on this node if needed) and work out what it
        missed. Deliveries start at once: the sink queues them until it has sent its welcome
        and the replay."""
        room = await self._open(room_id)
        if since is not None and epoch == room.epoch and since > room.position:
            await room.wait_position(since, CATCH_UP_WAIT_S)
        room.add(sink)  # no await between this and reading the position: nothing is missed
        position, room_epoch = room.position, room.epoch or ""
        try:
            if since is None or epoch is None:
                return Joined(room, room_epoch, position, b"", "fresh")
            if epoch != room_epoch:
                return Joined(room, room_epoch, position, None, "resync", "epoch_changed")
            if since > position:
                return Joined(room, room_epoch, position, None, "resync", "ahead")
            replay = await self.replay(room, since, position, sink.codec)
            if replay is None:
                return Joined(room, room_epoch, position, None, "resync", "too_old")
            return Joined(room, room_epoch, position, replay, "resumed")
        except BaseException:
            room.remove(sink)
            raise

    def leave(self, room: LocalRoom, sink: Sink) -> None:
        room.remove(sink)

    async def _open(self, room_id: str) -> LocalRoom:
        """The room, open and in step with the bus. While a join is opening it, the room is
        not closed under it (`joining`)."""
        room = self.rooms.get(room_id)
        if room is None:
            broadcaster = RoomBroadcaster(
                tick_s=self.config.chat_tick_ms / 1000,
                max_messages=self.config.chat_frame_max_messages,
                max_bytes=self.config.chat_frame_max_bytes,
            )
            room = LocalRoom(room_id, broadcaster, self.stats, self.config.replay_cache_size,
                             self.on_popup, spawn=self._spawn,
                             per_pass=self.config.fanout_members_per_pass)  # fmt: skip
            self.rooms[room_id] = room
            self.metrics.rooms.set(len(self.rooms))
        room.joining += 1
        try:
            async with room.lock:
                if not room.subscribed:
                    await self.bus.subscribe(room_id)
                    room.subscribed = True
                    epoch, seq = await self.store.meta(room_id)
                    room.restart(seq)
                    self._act(room, room.sequencer.start(epoch, seq))
                    await self.store.index_room(room_id)
        finally:
            room.joining -= 1
            room.empty_since = trio.current_time()  # closable later if this join fails
        return room

    async def replay(self, room: LocalRoom, after: int, upto: int, codec: object) -> bytes | None:
        """Frames for (after, upto] from the node's memory, reading older ones from Redis once
        for everyone who needs them; None if the history no longer has them (resync)."""
        history = room.history
        if not history.covers(after, upto):
            if after <= room.too_old_upto:  # a storm after the history expired: one read, not
                return None  # one per viewer
            async with room.history_lock:
                if not history.covers(after, upto):
                    if after <= room.too_old_upto:
                        return None
                    first = history.first
                    end = upto if first is None else first - 1
                    epoch = room.epoch
                    entries = await self._history_range(room, after, end)
                    if entries is None:
                        if room.epoch == epoch:  # Redis no longer has (after, end]: nor older
                            room.too_old_upto = max(room.too_old_upto, after)
                        return None
                    history.prepend(entries)
        if history.covers(after, upto):
            return history.replay(after, upto, codec)  # type: ignore[arg-type]
        # live traffic (or a resync) moved the memory while we read: read the whole range
        entries = await self._history_range(room, after, upto)
        return None if entries is None else history.frames_of(entries, codec)  # type: ignore[arg-type]

    async def _history_range(
        self, room: LocalRoom, after: int, upto: int
    ) -> list[tuple[int, bytes]] | None:
        """(after, upto] from Redis, complete and of the room's epoch, or None."""
        self.stats.history_reads += 1
        epoch, entries = await self.store.history(room.id, after, upto)
        if epoch != room.epoch or [seq for seq, _ in entries] != list(range(after + 1, upto + 1)):
            return None
        return entries

    # --- message order -------------------------------------------------------------------

    def _on_bus_message(self, room_id: str, epoch: str, seq: int, payload: bytes) -> None:
        room = self.rooms.get(room_id)
        if room is not None:
            self._act(room, room.sequencer.offer(epoch, seq, payload))

    def _act(self, room: LocalRoom, verdict: Verdict) -> None:
        if verdict.messages:
            room.deliver_messages(verdict.messages)
        if verdict.step is Step.FILL:
            self._spawn(self._fill, room, verdict.after, verdict.upto)
        elif verdict.step is Step.RESYNC:
            reason = "epoch_changed" if verdict.epoch != room.epoch else "too_old"
            self._spawn(self._resync, room, verdict.epoch, reason)

    def _spawn(self, fn: object, *args: object) -> None:
        if self._nursery is None:
            raise RuntimeError("the room registry is not running")
        self._nursery.start_soon(fn, *args)  # type: ignore[arg-type]

    async def _fill(self, room: LocalRoom, after: int, upto: int) -> None:
        """Read a gap from the history (retrying while Redis is away) and deliver it."""
        while True:
            try:
                self.stats.history_reads += 1
                epoch, entries = await self.store.history(room.id, after, upto)
                break
            except StoreUnavailable as exc:
                log.warning("history fill failed, retrying", room=room.id, error=str(exc))
                await trio.sleep(RETRY_S)
        if epoch != room.epoch:
            entries = []  # the history is another epoch's: the gap stays, a resync follows
        self._act(room, room.sequencer.filled(entries, upto))

    async def _resync(self, room: LocalRoom, new_epoch: str | None, reason: str) -> None:
        """Members can no longer follow the room's history: tell them, with a fresh snapshot."""
        while True:
            try:
                epoch, seq = await self.store.meta(room.id)
                online, state = await self.store.snapshot(room.id)
                break
            except StoreUnavailable as exc:
                log.warning("resync failed, retrying", room=room.id, error=str(exc))
                await trio.sleep(RETRY_S)
        # a new epoch is followed from its start (its history holds it); an old one from now
        start = 0 if reason == "epoch_changed" else seq
        log.warning("room resync", room=room.id, reason=reason, epoch=epoch, seq=start)
        room.restart(start)
        room.send_to_all(
            server.resync(epoch=epoch, seq=start, reason=reason,
                          snapshot=self.snapshot_of(room, online, state))
        )  # fmt: skip
        self._act(room, room.sequencer.restart(epoch, start))
        room.degraded = False

    def snapshot_of(self, room: LocalRoom, online: int, state: dict[str, Any]) -> dict[str, Any]:
        """The snapshot a viewer gets (welcome, resync) from what Redis holds."""
        likes = int(state.get("likes", 0))
        room.seed(likes, state.get("phrases"))
        room.broadcaster.set_online(online)
        now = now_ms()
        return server.snapshot(
            online=online,
            likes=max(room.broadcaster.likes, likes),
            pinned=state.get("pinned"),
            popup=current_popup(state.get("popup"), now),
            phrases=state.get("phrases") or [],
            cards=cards_view(state.get("cards")),
            sales=sale_views(state, now),
            coupons=coupon_views(state, now),
            lotteries=lottery_views(state),
        )

    def _on_bus_state(self, up: bool) -> None:
        for room in list(self.rooms.values()):
            room.degraded = not up
            room.send_to_all(server.status(degraded=not up, reason=None if up else "redis"))
            if up and room.subscribed:
                self._spawn(self._check_position, room)

    async def _check_position(self, room: LocalRoom) -> None:
        """After the bus reconnects: fill whatever was published while it was away."""
        while True:
            try:
                epoch, seq = await self.store.meta(room.id)
                break
            except StoreUnavailable:
                await trio.sleep(RETRY_S)
        if room.sequencer.busy:
            return  # a fill or resync is already under way
        if epoch != room.epoch:
            room.sequencer.busy = True
            await self._resync(room, epoch, "epoch_changed")
        elif seq > room.sequencer.last:
            room.sequencer.busy = True
            await self._fill(room, room.sequencer.last, seq)

    # --- background ----------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        tick, histogram = self.tick_s, self.metrics.tick_duration
        deadline = trio.current_time()
        while True:
            deadline = max(deadline + tick, trio.current_time())  # behind: no catch-up burst
            await trio.sleep_until(deadline)
            started = trio.current_time()
            for room in self.rooms.values():
                if room.backlogged:  # last frames still going out: chat gathers a tick more
                    continue
                room.tick()  # empty (lingering) rooms too: their position must keep moving
            histogram.observe(trio.current_time() - started)

    def set_online(self, room_id: str, online: int) -> None:
        """The room's online count (people, all nodes) as presence last saw it."""
        room = self.rooms.get(room_id)
        if room is not None:
            room.broadcaster.set_online(online)

    async def _maintenance_loop(self) -> None:
        """Close rooms whose linger period has passed."""
        while True:
            await trio.sleep(LINGER_CHECK_S)
            now = trio.current_time()
            for room in list(self.rooms.values()):
                if not room.size and now - room.empty_since >= self.config.room_linger_s:
                    await self._close_room(room)

    async def _close_room(self, room: LocalRoom) -> None:
        async with room.lock:
            if room.size or room.joining:  # somebody is joining
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
