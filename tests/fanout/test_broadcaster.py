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


def broadcaster(
    tick_s: float = 0.1, max_messages: int = 100, max_bytes: int = 10_000
) -> RoomBroadcaster:
    return RoomBroadcaster(tick_s=tick_s, max_messages=max_messages, max_bytes=max_bytes)


def test_chat_is_coalesced_into_one_frame_per_tick() -> None:
    b = broadcaster()
    assert all(b.add_chat(item(i), 50, seq=i + 1) == [] for i in range(10))
    out = b.tick()
    assert len(out) == 1 and out[0].kind is FrameKind.CHAT
    assert [m["text"] for m in out[0].message["msgs"]] == [f"m{i}" for i in range(10)]
    assert [m["seq"] for m in out[0].message["msgs"]] == list(range(1, 11))
    assert out[0].message["seq"] == 10 and b.sent_seq == 10  # the position the frame reaches
    assert b.tick() == []  # nothing new, nothing sent


def test_a_full_batch_goes_out_early_by_count_or_size() -> None:
    by_count = broadcaster(max_messages=3)
    assert by_count.add_chat(item(1), 10, 1) == []
    assert by_count.add_chat(item(2), 10, 2) == []
    (early,) = by_count.add_chat(item(3), 10, 3)
    assert len(early.message["msgs"]) == 3 and early.message["seq"] == 3
    by_size = broadcaster(max_bytes=100)
    assert by_size.add_chat(item(1), 60, 1) == []
    assert by_size.add_chat(item(2), 60, 2) != []


def test_tick_zero_sends_every_chat_message_at_once() -> None:
    b = broadcaster(tick_s=0)
    (out,) = b.add_chat(item(1), 10, 1)
    assert out.message["msgs"] == [{**item(1), "seq": 1}] and out.message["seq"] == 1


def test_likes_become_one_update_per_tick_with_the_largest_total() -> None:
    b = broadcaster()
    for seq, total in enumerate((5, 12, 9, 11), start=1):  # totals from several nodes
        b.set_likes(total, seq)
    (out,) = b.tick()
    assert out.message == {"type": "likes", "total": 12, "seq": 4}
    assert out.kind is FrameKind.COUNTER and out.key == "likes"
    assert b.tick() == []
    b.set_likes(12, 5)
    assert b.tick() == []


def test_seeded_likes_are_not_announced() -> None:
    b = broadcaster()
    b.seed_likes(40)
    assert b.tick() == []
    b.set_likes(41, 1)
    assert b.tick()[0].message["total"] == 41


def test_popups_are_not_delayed_and_what_was_pending_goes_first() -> None:
    b = broadcaster(tick_s=10)
    b.add_chat(item(1), 10, seq=1)
    b.set_likes(3, seq=2)
    outs = b.popup({"id": "p1", "kind": "coupon", "data": {}, "ts": 1}, seq=3)
    assert [o.message["type"] for o in outs] == ["chat", "likes", "popup"]
    assert [o.message.get("seq") for o in outs] == [1, 2, 3]  # each frame says where it got
    assert outs[-1].kind is FrameKind.CRITICAL
    assert b.pinned(None, seq=4)[-1].message == {"type": "pinned", "msg": None, "seq": 4}


def test_the_online_count_is_never_the_frame_that_carries_the_position() -> None:
    b = broadcaster()
    b.note(7)
    b.set_online(3)
    (online,) = b.tick()
    assert online.message == {"type": "online", "count": 3} and b.sent_seq == 0
    b.set_online(4)
    b.add_chat(item(1), 10, seq=8)
    outs = b.tick()
    assert [o.message["type"] for o in outs] == ["online", "chat"] and outs[-1].message["seq"] == 8


class FakeSink:
    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.frames: list[tuple[bytes, FrameKind, str | None]] = []

    def deliver(self, frame: bytes, kind: FrameKind, key: str | None) -> None:
        self.frames.append((frame, kind, key))

    def deliver_all(self, frames: list[tuple[bytes, FrameKind, str | None]], joined: bytes) -> None:
        assert joined == b"".join(frame for frame, _, _ in frames)
        self.frames += frames


def room() -> LocalRoom:
    r = LocalRoom("r", broadcaster(max_messages=10), NodeStats(), history_size=100)
    r.sequencer.start("e1", 0)
    return r


def bus(seq: int, message: dict[str, Any]) -> tuple[int, bytes]:
    return seq, msgpack.packb(message)


def test_room_encodes_once_per_codec_and_sends_the_same_bytes_to_all() -> None:
    r = room()
    json_sinks = [FakeSink(JSON) for _ in range(3)]
    mp_sinks = [FakeSink(MSGPACK) for _ in range(2)]
    for s in json_sinks + mp_sinks:
        r.add(s)
    r.deliver_messages([bus(1, {"k": "popup", "m": {"id": "p", "kind": "k", "data": {}, "ts": 1}})])
    frames_json = {s.frames[0][0] for s in json_sinks}
    frames_mp = {s.frames[0][0] for s in mp_sinks}
    assert len(frames_json) == 1 and len(frames_mp) == 1
    (fj,), (fm,) = frames_json, frames_mp
    assert all(a is fj for a in (s.frames[0][0] for s in json_sinks))  # the very same object
    assert orjson.loads(payload(fj))["type"] == "popup"
    assert msgpack.unpackb(payload(fm))["type"] == "popup"
    assert r.stats.frames_sent == 5


def test_room_dispatches_bus_messages_to_the_broadcaster() -> None:
    r = room()
    sink = FakeSink(JSON)
    r.add(sink)
    r.deliver_messages([bus(i + 1, {"k": "chat", "m": item(i)}) for i in range(3)])
    r.deliver_messages([bus(4, {"k": "likes", "n": 7})])
    r.deliver_messages([bus(5, {"k": "from-the-future"})])  # not shown, still a position
    assert sink.frames == []  # chat and likes wait for the tick
    r.tick()
    frames = [orjson.loads(payload(f[0])) for f in sink.frames]
    assert [f["type"] for f in frames] == ["chat", "likes"]
    assert [f["seq"] for f in frames] == [5, 5]  # chat completes 1-3 and the unseen 5
    r.deliver_messages([bus(6, {"k": "phrases", "m": [{"id": 0, "text": "hi"}]})])
    assert r.phrases == {0: "hi"}
    assert orjson.loads(payload(sink.frames[-1][0])) == {
        "type": "phrases", "phrases": [{"id": 0, "text": "hi"}], "seq": 6,
    }  # fmt: skip


def test_a_resuming_member_gets_exactly_what_it_missed_from_memory() -> None:
    r = room()
    r.deliver_messages([bus(s, {"k": "chat", "m": item(s)}) for s in range(1, 6)])
    r.tick()
    assert r.position == 5 and r.history.covers(2, 5)
    replay = r.history.replay(2, 5, JSON)
    frames, rest = [], replay
    while rest:
        n = rest[1] & 0x7F
        size, start = (n, 2) if n < 126 else (int.from_bytes(rest[2:4], "big"), 4)
        frames.append(orjson.loads(rest[start : start + size]))
        rest = rest[start + size :]
    assert [f["seq"] for f in frames] == [3, 4, 5]
    assert [f["msgs"][0]["text"] for f in frames] == ["m3", "m4", "m5"]
    assert r.history.replay(2, 5, JSON) == replay  # cached frames, same bytes


def test_membership_counts_and_removal() -> None:
    r = room()
    a, b = FakeSink(JSON), FakeSink(MSGPACK)
    r.add(a)
    r.add(a)
    r.add(b)
    assert r.size == 2
    r.remove(a)
    r.remove(a)
    assert r.size == 1 and r.members() == [b]


def test_items_of_one_message_share_a_frame_even_past_the_caps() -> None:
    b = RoomBroadcaster(tick_s=0.1, max_messages=3, max_bytes=10_000)
    assert b.add_chats([item(1)], 10, seq=1) == []
    (out,) = b.add_chats([item(2), item(3), item(4), item(5)], 40, seq=2)  # over 3 messages
    assert [m["seq"] for m in out.message["msgs"]] == [1, 2, 2, 2, 2]
    assert out.message["seq"] == 2
