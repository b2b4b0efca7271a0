"""A room's viewers on this node: membership grouped by codec, and delivery.

Hot path: `send` encodes a message once per codec in use and hands the same bytes to every
member; a member's `deliver` is synchronous (a non-blocking socket write or a queue append), so
fan-out never awaits per connection.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgpack
import structlog
import trio

from engine.fanout.broadcaster import Outgoing, RoomBroadcaster
from engine.fanout.outbox import FrameKind
from engine.protocol.codec import Codec
from engine.protocol.wsframe import encode_frame
from engine.stats import NodeStats

log = structlog.get_logger("engine.fanout")


class Sink(Protocol):
    """What a room delivers to: a viewer connection (or a test double)."""

    codec: Codec

    def deliver(self, frame: bytes, kind: FrameKind, key: str | None) -> None: ...


class LocalRoom:
    __slots__ = (
        "_by_codec",
        "broadcaster",
        "empty_since",
        "id",
        "lock",
        "phrases",
        "size",
        "stats",
        "subscribed",
    )

    def __init__(self, room_id: str, broadcaster: RoomBroadcaster, stats: NodeStats) -> None:
        self.id = room_id
        self.broadcaster = broadcaster
        self.stats = stats
        self._by_codec: dict[Codec, dict[Sink, None]] = {}
        self.size = 0
        self.phrases: dict[int, str] = {}
        self.lock = trio.Lock()  # serialises subscribe/unsubscribe of this room's channel
        self.subscribed = False
        self.empty_since = 0.0

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

    def send(self, out: Outgoing) -> None:
        # Hot path: one encode per codec, then a flat loop of synchronous deliveries.
        kind, key, stats = out.kind, out.key, self.stats
        for codec, members in self._by_codec.items():
            if not members:
                continue
            frame = encode_frame(codec, out.message)
            for sink in members:
                sink.deliver(frame, kind, key)
            stats.frames_sent += len(members)
            stats.bytes_sent += len(members) * len(frame)

    def tick(self) -> None:
        for out in self.broadcaster.tick():
            self.send(out)

    def seed(self, likes: int, phrases: list[dict[str, Any]] | None) -> None:
        """State read from Redis after subscribing (later bus messages apply on top)."""
        self.broadcaster.seed_likes(likes)
        if phrases is not None and not self.phrases:
            self.phrases = phrases_by_id(phrases)

    def on_bus(self, payload: bytes) -> None:
        """One message from the room's bus channel."""
        message = msgpack.unpackb(payload)
        kind = message.get("k")
        broadcaster = self.broadcaster
        if kind == "chat":
            out = broadcaster.add_chat(message["m"], len(payload))
            if out is not None:
                self.send(out)
        elif kind == "likes":
            broadcaster.set_likes(int(message["n"]))
        elif kind == "popup":
            self.send(broadcaster.popup(message["m"]))
        elif kind == "pinned":
            self.send(broadcaster.pinned(message["m"]))
        elif kind == "phrases":
            self.phrases = phrases_by_id(message["m"] or [])
        else:
            log.debug("unknown bus message kind", room=self.id, kind=kind)


def phrases_by_id(phrases: list[dict[str, Any]]) -> dict[int, str]:
    return {int(p["id"]): str(p["text"]) for p in phrases}


def make_sink_frame(codec: Codec, message: dict[str, Any]) -> tuple[bytes, FrameKind]:
    """A message for one viewer only (its own result or error): never dropped."""
    return encode_frame(codec, message), FrameKind.CRITICAL
