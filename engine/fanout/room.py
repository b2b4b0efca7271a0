"""A room's viewers on this node: membership grouped by codec, the order of its messages, its
recent history, and delivery.

Hot path: `send` encodes a message once per codec in use and hands the same bytes to every
member; a member's `deliver` is synchronous (a non-blocking socket write or a queue append), so
fan-out never awaits per connection.

With `per_pass` > 0 (config `fanout_members_per_pass`, off by default), a room bigger than
`per_pass` members is written `per_pass` members per scheduler pass by a drain task, so one
frame to 10,000 viewers (a sold-out popup, a hot room's tick) does not stop the node's reads and
Redis replies for the 100-200 ms its writes take. Each frame goes to the members the room had
when it was sent (a later joiner has it in its replay: the position moved then), in order: while
frames wait, later ones queue behind them; a member that left meanwhile is skipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgpack
import structlog
import trio

from engine.fanout.broadcaster import Outgoing, RoomBroadcaster
from engine.fanout.history import RoomHistory
from engine.fanout.outbox import FrameKind
from engine.fanout.sequencer import Sequencer
from engine.features.chat import chat_items
from engine.protocol.codec import Codec
from engine.protocol.wsframe import encode_frame
from engine.stats import NodeStats

log = structlog.get_logger("engine.fanout")


Frame = tuple[bytes, FrameKind, "str | None"]  # encoded frame, drop policy, counter key
PopupHook = Callable[[str, dict[str, Any]], None]  # (room, popup item)
Spawn = Callable[[Callable[[], Awaitable[None]]], None]  # start a task (the registry's nursery)


class Sink(Protocol):
    """What a room delivers to: a viewer connection (or a test double)."""

    codec: Codec

    def deliver(self, frame: bytes, kind: FrameKind, key: str | None) -> None: ...

    def deliver_all(self, frames: list[Frame], joined: bytes) -> None:
        """Several frames at once (`joined`: their bytes end to end, for one write)."""


class _Pending:
    """Frames of one codec waiting for the members they were sent to (from `done` on)."""

    __slots__ = ("codec", "done", "frames", "joined", "sinks")

    def __init__(self, codec: Codec, sinks: list[Sink], frames: list[Frame], joined: bytes) -> None:
        self.codec, self.sinks, self.frames, self.joined = codec, sinks, frames, joined
        self.done = 0


def _write(sinks: Any, frames: list[Frame], joined: bytes) -> None:
    if len(frames) == 1:
        frame, kind, key = frames[0]
        for sink in sinks:
            sink.deliver(frame, kind, key)
    else:
        for sink in sinks:
            sink.deliver_all(frames, joined)


class LocalRoom:
    __slots__ = (
        "_backlog",
        "_by_codec",
        "_draining",
        "broadcaster",
        "changed",
        "degraded",
        "empty_since",
        "history",
        "history_lock",
        "id",
        "joining",
        "lock",
        "on_popup",
        "per_pass",
        "phrases",
        "sequencer",
        "size",
        "spawn",
        "stats",
        "subscribed",
        "too_old_upto",
    )

    def __init__(
        self,
        room_id: str,
        broadcaster: RoomBroadcaster,
        stats: NodeStats,
        history_size: int,
        on_popup: PopupHook | None = None,
        *,
        spawn: Spawn | None = None,
        per_pass: int = 0,
    ) -> None:
        self.id = room_id
        self.spawn = spawn  # None or per_pass 0: every frame written at once, whatever the size
        self.per_pass = per_pass
        self._backlog: deque[_Pending] = deque()
        self._draining = False
        self.on_popup = on_popup  # told of each popup delivered (anti-fraud: when a sale showed)
        self.broadcaster = broadcaster
        self.stats = stats
        self._by_codec: dict[Codec, dict[Sink, None]] = {}
        self.size = 0
        self.joining = 0
        self.phrases: dict[int, str] = {}
        self.lock = trio.Lock()  # serialises opening/closing this room's subscription
        self.history_lock = trio.Lock()  # one Redis history read at a time (resume storms)
        self.subscribed = False
        self.empty_since = 0.0
        self.sequencer = Sequencer()
        self.history = RoomHistory(history_size)
        self.degraded = False
        self.too_old_upto = 0  # resumes from at or below this seq are known to be too old
        self.changed = trio.Event()  # set (and replaced) whenever the position moves

    @property
    def epoch(self) -> str | None:
        return self.sequencer.epoch

    @property
    def position(self) -> int:
        """What every member has been sent up to: a new member's replay ends here."""
        return self.broadcaster.sent_seq

    # --- membership ----------------------------------------------------------------------

    def add(self, sink: Sink) -> None:
        members = self._by_codec.setdefault(sink.codec, {})
        if sink not in members:
            members[sink] = None
            self.size += 1

    def remove(self, sink: Sink) -> None:
        members = self._by_codec.get(sink.codec)
        if members is not None and members.pop(sink, 0) is None:
            self.size -= 1
            if not self.size:
                self.empty_since = trio.current_time()

    def members(self) -> list[Sink]:
        return [sink for members in self._by_codec.values() for sink in members]

    # --- delivery ------------------------------------------------------------------------

    @property
    def backlogged(self) -> bool:
        """Frames are still being written to members (its tick waits: chat keeps gathering)."""
        return bool(self._backlog)

    def send(self, out: Outgoing) -> None:
        self._send([out])

    def send_all(self, outs: list[Outgoing]) -> None:
        """A tick's frames (online, chat, likes, counters...): one write per member for all of
        them, since a send costs the kernel about the same whatever its size."""
        if outs:
            self._send(outs)
            self._moved()

    def _send(self, outs: list[Outgoing]) -> None:
        # Hot path: one encode per codec, then a flat loop of synchronous deliveries (now, or
        # per_pass members per scheduler pass in a big room).
        stats = self.stats
        later = bool(self._backlog) or (self.spawn is not None and 0 < self.per_pass < self.size)
        for codec, members in self._by_codec.items():
            if not members:
                continue
            if len(outs) == 1:
                out = outs[0]
                frame = encode_frame(codec, out.message)
                frames: list[Frame] = [(frame, out.kind, out.key)]
                joined = frame
            else:
                frames = [(encode_frame(codec, out.message), out.kind, out.key) for out in outs]
                joined = b"".join(frame for frame, _, _ in frames)
            stats.frames_sent += len(members) * len(frames)
            stats.bytes_sent += len(members) * len(joined)
            if later:
                self._backlog.append(_Pending(codec, list(members), frames, joined))
            else:
                _write(members, frames, joined)
        if self._backlog and not self._draining:
            self._start_drain()

    def _start_drain(self) -> None:
        assert self.spawn is not None
        self._draining = True
        try:
            self.spawn(self._drain)
        except RuntimeError:  # the node is stopping (its nursery is closed): write them now
            self._draining = False
            while self._backlog:
                self._write_next(len(self._backlog[0].sinks))

    async def _drain(self) -> None:
        try:
            while self._backlog:
                self._write_next(self.per_pass)
                await trio.lowlevel.checkpoint()  # reads and Redis replies run in between
        finally:
            self._draining = False

    def _write_next(self, count: int) -> None:
        """The oldest waiting frames to their next `count` members (those still in the room)."""
        pending = self._backlog[0]
        current = self._by_codec.get(pending.codec, {})
        end = pending.done + count
        chunk = [sink for sink in pending.sinks[pending.done : end] if sink in current]
        _write(chunk, pending.frames, pending.joined)
        pending.done = end
        if end >= len(pending.sinks):
            self._backlog.popleft()

    def tick(self) -> None:
        self.send_all(self.broadcaster.tick())

    def deliver_messages(self, messages: list[tuple[int, bytes]]) -> None:
        """Messages in seq order, each exactly once (the sequencer's output)."""
        for seq, payload in messages:
            self.history.add(seq, payload)
            self._apply(seq, payload)

    def _apply(self, seq: int, payload: bytes) -> None:
        message = msgpack.unpackb(payload)
        kind = message.get("k")
        broadcaster = self.broadcaster
        if kind == "chat":
            self.send_all(broadcaster.add_chats(chat_items(message), len(payload), seq))
        elif kind == "likes":
            broadcaster.set_likes(int(message["n"]), seq)
        elif kind == "popup":
            self.send_all(broadcaster.popup(message["m"], seq))
            if self.on_popup is not None:
                self.on_popup(self.id, message["m"])
        elif kind == "pinned":
            self.send_all(broadcaster.pinned(message["m"], seq))
        elif kind == "phrases":
            self.phrases = phrases_by_id(message["m"] or [])
            self.send_all(broadcaster.phrases(message["m"] or [], seq))
        elif kind == "counter":
            broadcaster.counter(str(message["key"]), int(message["v"]), message["m"], seq)
        else:
            broadcaster.note(seq)
            if kind != "popup_cleared":
                log.debug("unknown bus message kind", room=self.id, kind=kind)

    def _moved(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def restart(self, seq: int) -> None:
        """A resync: forget the local history and pending frames; members are at `seq`."""
        self.history.clear()
        self.too_old_upto = 0
        self.broadcaster.reset(seq)
        self._moved()

    def seed(self, likes: int, phrases: list[dict[str, Any]] | None) -> None:
        """State read from Redis after subscribing (later bus messages apply on top)."""
        self.broadcaster.seed_likes(likes)
        if phrases is not None and not self.phrases:
            self.phrases = phrases_by_id(phrases)

    def send_to_all(self, message: dict[str, Any]) -> None:
        """A frame for every member that is not a room message (status, resync): never dropped."""
        self.send(Outgoing(message, FrameKind.CRITICAL))

    async def wait_position(self, seq: int, timeout_s: float) -> bool:
        """Wait until members have been sent everything up to `seq` (a viewer resuming here
        from a node that was a little ahead). False on timeout."""
        with trio.move_on_after(timeout_s):
            while self.position < seq:
                await self.changed.wait()
            return True
        return False


def phrases_by_id(phrases: list[dict[str, Any]]) -> dict[int, str]:
    return {int(p["id"]): str(p["text"]) for p in phrases}
