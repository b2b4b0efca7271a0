"""A big room's frames go out `per_pass` members per scheduler pass (engine/fanout/room.py): each
frame reaches exactly the members the room had when it was sent, in order, and the node's other
tasks run in between."""

from __future__ import annotations

import msgpack
import orjson
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fanout.broadcaster import Outgoing, RoomBroadcaster
from engine.fanout.outbox import FrameKind
from engine.fanout.room import LocalRoom
from engine.protocol.codec import JSON, MSGPACK, Codec
from engine.stats import NodeStats
from tests.fanout.test_broadcaster import FakeSink, payload


def big_room(nursery: trio.Nursery | None, per_pass: int) -> LocalRoom:
    broadcaster = RoomBroadcaster(tick_s=0.1, max_messages=10, max_bytes=1 << 16)
    spawn = None if nursery is None else nursery.start_soon
    room = LocalRoom("r", broadcaster, NodeStats(), history_size=100, spawn=spawn,
                     per_pass=per_pass)  # fmt: skip
    room.sequencer.start("e1", 0)
    return room


def joined(room: LocalRoom, n: int, codec: Codec = JSON) -> list[FakeSink]:
    """`n` new members of `room`."""
    sinks = [FakeSink(codec) for _ in range(n)]
    for sink in sinks:
        room.add(sink)
    return sinks


def popup(n: int) -> Outgoing:
    return Outgoing({"type": "popup", "n": n}, FrameKind.CRITICAL)


def numbers(sink: FakeSink) -> list[int]:
    out = []
    for frame, _, _ in sink.frames:
        body = payload(frame)
        message = msgpack.unpackb(body) if sink.codec is MSGPACK else orjson.loads(body)
        out.append(message["n"])
    return out


async def test_a_big_room_is_written_a_few_members_per_pass_while_other_tasks_run() -> None:
    passes: list[int] = []  # how many members had the frame at each turn of another task
    async with trio.open_nursery() as nursery:
        room = big_room(nursery, per_pass=3)
        sinks = joined(room, 10)

        async def watcher() -> None:
            while len(passes) < 6:
                passes.append(sum(1 for s in sinks if s.frames))
                await trio.lowlevel.checkpoint()

        nursery.start_soon(watcher)
        room.send(popup(1))
        assert not any(s.frames for s in sinks) and room.backlogged  # nothing written inline
        await trio.testing.wait_all_tasks_blocked()
        assert all(numbers(s) == [1] for s in sinks) and not room.backlogged
    # the watcher ran while the frame was part way out (trio orders a pass's tasks at random)
    assert any(0 < n < 10 for n in passes) and passes == sorted(passes)
    assert all(n % 3 == 0 or n == 10 for n in passes)  # whole passes of 3 members


async def test_a_small_room_is_written_at_once() -> None:
    async with trio.open_nursery() as nursery:
        room = big_room(nursery, per_pass=3)
        sinks = joined(room, 3)
        room.send(popup(1))
        assert all(numbers(s) == [1] for s in sinks) and not room.backlogged


async def test_members_get_what_was_sent_while_they_were_members_in_order() -> None:
    async with trio.open_nursery() as nursery:
        room = big_room(nursery, per_pass=2)
        early = joined(room, 5) + joined(room, 2, MSGPACK)
        room.send(popup(1))
        late = FakeSink(JSON)  # joins after frame 1 was sent: its replay has it, not the room
        room.add(late)
        leaver = early[4]
        room.send(popup(2))
        room.remove(leaver)  # leaves before its turn came: skipped from then on
        room.send_all([popup(3), popup(4)])
        await trio.testing.wait_all_tasks_blocked()
    for sink in early:
        if sink is not leaver:
            assert numbers(sink) == [1, 2, 3, 4]
    assert numbers(late) == [2, 3, 4]
    assert numbers(leaver) == []


async def test_without_a_running_nursery_frames_are_written_at_once() -> None:
    room = big_room(None, per_pass=2)
    sinks = joined(room, 5)
    room.send(popup(1))
    assert all(numbers(s) == [1] for s in sinks)


async def test_a_closed_nursery_gets_the_waiting_frames_written_at_once() -> None:
    async with trio.open_nursery() as nursery:
        room = big_room(nursery, per_pass=2)
    sinks = joined(room, 5)
    room.send(popup(1))  # the drain task cannot start any more
    assert all(numbers(s) == [1] for s in sinks) and not room.backlogged


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.integers(1, 3)),
            st.tuples(st.just("join"), st.integers(0, 1)),
            st.tuples(st.just("leave"), st.integers(0, 30)),
            st.tuples(st.just("pass"), st.integers(1, 3)),
        ),
        max_size=40,
    ),
    per_pass=st.integers(1, 4),
)
def test_every_member_gets_exactly_the_frames_sent_while_it_was_in_the_room(
    ops: list[tuple[str, int]], per_pass: int
) -> None:
    """Model: a member gets every frame sent between its join and its leave, in send order."""

    async def run() -> None:
        expected: dict[FakeSink, list[int]] = {}
        members: list[FakeSink] = []
        n = 0
        async with trio.open_nursery() as nursery:
            room = big_room(nursery, per_pass)
            for op, arg in ops:
                if op == "send":
                    outs = []
                    for _ in range(arg):
                        n += 1
                        outs.append(popup(n))
                    if arg > 1:
                        room.send_all(outs)
                    else:
                        room.send(outs[0])
                    for sink in members:
                        expected[sink] += [o.message["n"] for o in outs]
                elif op == "join":
                    sink = FakeSink(JSON if arg == 0 else MSGPACK)
                    room.add(sink)
                    members.append(sink)
                    expected[sink] = []
                elif op == "leave" and members:
                    sink = members.pop(arg % len(members))
                    room.remove(sink)
                    # a leaver may or may not have had its turn for frames still going out:
                    # it must have a prefix of what it was sent
                    expected[sink] = ("prefix", expected[sink])  # type: ignore[assignment]
                elif op == "pass":
                    for _ in range(arg):
                        await trio.lowlevel.checkpoint()
            await trio.testing.wait_all_tasks_blocked()
        for sink, want in expected.items():
            got = numbers(sink)
            if isinstance(want, tuple):
                assert got == want[1][: len(got)]
            else:
                assert got == want

    trio.run(run)
