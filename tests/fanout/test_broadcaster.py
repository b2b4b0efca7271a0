"""The room broadcaster and a room's delivery, as pure units (no sockets: fake sinks)."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson

from engine.fanout.broadcaster import RoomBroadcaster
from engine.fanout.outbox import FrameKind
from engine.fanout.room import LocalRoom
from engine.protocol.codec import JSON, MSGPACK, Codec
from engine.stats import NodeStats


def payload(frame: bytes) -> bytes:
    """The payload of one unmasked server frame."""
    n = frame[1] & 0x7F
    start = 2 if n < 126 else 4 if n == 126 else 10
    return frame[start:]


def item(i: int) -> dict[str, Any]:
    return {"id": str(i), "user": "u", "name": "u", "text": f"m{i}", "ts": i}


def test_chat_is_coalesced_into_one_frame_per_tick() -> None:
    b = RoomBroadcaster(tick_s=0.1, max_messages=100, max_bytes=10_000)
    assert all(b.add_chat(item(i), 50) is None for i in range(10))
    out = b.tick()
    assert len(out) == 1 and out[0].kind is FrameKind.CHAT
    assert [m["text"] for m in out[0].message["msgs"]] == [f"m{i}" for i in range(10)]
    assert b.tick() == []  # nothing new, nothing sent


def test_a_full_batch_goes_out_early_by_count_or_size() -> None:
    by_count = RoomBroadcaster(tick_s=0.1, max_messages=3, max_bytes=10_000)
    assert by_count.add_chat(item(1), 10) is None
    assert by_count.add_chat(item(2), 10) is None
    early = by_count.add_chat(item(3), 10)
    assert early is not None and len(early.message["msgs"]) == 3
    by_size = RoomBroadcaster(tick_s=0.1, max_messages=100, max_bytes=100)
    assert by_size.add_chat(item(1), 60) is None
    assert by_size.add_chat(item(2), 60) is not None


def test_tick_zero_sends_every_chat_message_at_once() -> None:
    b = RoomBroadcaster(tick_s=0, max_messages=100, max_bytes=10_000)
    out = b.add_chat(item(1), 10)
    assert out is not None and out.message["msgs"] == [item(1)]


def test_likes_become_one_update_per_tick_with_the_largest_total() -> None:
    b = RoomBroadcaster(tick_s=0.1, max_messages=100, max_bytes=10_000)
    for total in (5, 12, 9, 11):  # totals from several nodes, out of order
        b.set_likes(total)
    (out,) = b.tick()
    assert out.message == {"type": "likes", "total": 12}
    assert out.kind is FrameKind.COUNTER and out.key == "likes"
    assert b.tick() == []
    b.set_likes(12)
    assert b.tick() == []


def test_seeded_likes_are_not_announced() -> None:
    b = RoomBroadcaster(tick_s=0.1, max_messages=100, max_bytes=10_000)
    b.seed_likes(40)
    assert b.tick() == []
    b.set_likes(41)
    assert b.tick()[0].message["total"] == 41


def test_popups_and_pins_are_not_delayed() -> None:
    b = RoomBroadcaster(tick_s=10, max_messages=100, max_bytes=10_000)
    b.add_chat(item(1), 10)
    popup = b.popup({"id": "p1", "kind": "coupon", "data": {}, "ts": 1})
    assert popup.kind is FrameKind.CRITICAL and popup.message["popup"]["id"] == "p1"
    assert b.pinned(None).message == {"type": "pinned", "msg": None}


class FakeSink:
    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.frames: list[tuple[bytes, FrameKind, str | None]] = []

    def deliver(self, frame: bytes, kind: FrameKind, key: str | None) -> None:
        self.frames.append((frame, kind, key))


def test_room_encodes_once_per_codec_and_sends_the_same_bytes_to_all() -> None:
    stats = NodeStats()
    room = LocalRoom("r", RoomBroadcaster(tick_s=0.1, max_messages=10, max_bytes=10_000), stats)
    json_sinks = [FakeSink(JSON) for _ in range(3)]
    mp_sinks = [FakeSink(MSGPACK) for _ in range(2)]
    for s in json_sinks + mp_sinks:
        room.add(s)
    room.on_bus(msgpack.packb({"k": "popup", "m": {"id": "p", "kind": "k", "data": {}, "ts": 1}}))
    frames_json = {s.frames[0][0] for s in json_sinks}
    frames_mp = {s.frames[0][0] for s in mp_sinks}
    assert len(frames_json) == 1 and len(frames_mp) == 1
    (fj,), (fm,) = frames_json, frames_mp
    assert all(a is fj for a in (s.frames[0][0] for s in json_sinks))  # the very same object
    assert orjson.loads(payload(fj))["type"] == "popup"
    assert msgpack.unpackb(payload(fm))["type"] == "popup"
    assert stats.frames_sent == 5


def test_room_dispatches_bus_messages_to_the_broadcaster() -> None:
    room = LocalRoom(
        "r", RoomBroadcaster(tick_s=0.1, max_messages=10, max_bytes=10_000), NodeStats()
    )
    sink = FakeSink(JSON)
    room.add(sink)
    for i in range(3):
        room.on_bus(msgpack.packb({"k": "chat", "m": item(i)}))
    room.on_bus(msgpack.packb({"k": "likes", "n": 7}))
    room.on_bus(msgpack.packb({"k": "phrases", "m": [{"id": 0, "text": "hi"}]}))
    room.on_bus(msgpack.packb({"k": "from-the-future"}))  # ignored
    assert sink.frames == []  # chat and likes wait for the tick
    room.tick()
    kinds = [orjson.loads(payload(f[0]))["type"] for f in sink.frames]
    assert kinds == ["chat", "likes"]
    assert room.phrases == {0: "hi"}


def test_membership_counts_and_removal() -> None:
    room = LocalRoom(
        "r", RoomBroadcaster(tick_s=0.1, max_messages=10, max_bytes=10_000), NodeStats()
    )
    a, b = FakeSink(JSON), FakeSink(MSGPACK)
    room.add(a)
    room.add(a)
    room.add(b)
    assert room.size == 2
    room.remove(a)
    room.remove(a)
    assert room.size == 1 and room.members() == [b]
