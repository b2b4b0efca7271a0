"""A node's room history in memory (pure): it answers a range only when it holds every seq of it,
and stays one contiguous run of seqs whatever order live traffic and Redis reads arrive in."""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fanout.history import RoomHistory
from engine.protocol.codec import JSON


def payload(seq: int) -> bytes:
    return msgpack.packb({"k": "chat", "ms": [{"id": f"m{seq}", "text": f"t{seq}"}]})


def entries(first: int, last: int) -> list[tuple[int, bytes]]:
    return [(seq, payload(seq)) for seq in range(first, last + 1)]


def test_a_read_that_no_longer_joins_the_memory_is_not_kept() -> None:
    history = RoomHistory(size=3)
    for seq in range(1, 6):
        history.add(seq, payload(seq))  # keeps 3, 4, 5
    # a resume asked for (0, 5]: Redis gave 1..2 while live traffic pushed 3 out
    history.add(6, payload(6))  # keeps 4, 5, 6
    history.prepend(entries(1, 2))
    assert history.first == 4
    assert not history.covers(0, 6) and history.covers(3, 6)


def test_a_read_that_joins_the_memory_is_kept_in_order() -> None:
    history = RoomHistory(size=3)
    for seq in range(4, 7):
        history.add(seq, payload(seq))
    history.prepend(entries(1, 3))
    assert history.first == 1 and history.covers(0, 6)
    replay = history.replay(0, 6, JSON)
    assert [replay.count(f'"t{seq}"'.encode()) for seq in range(1, 7)] == [1] * 6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "read"]), st.integers(0, 12)), max_size=40),
       st.integers(1, 6))  # fmt: skip
def test_covers_is_true_only_when_every_seq_is_there(
    steps: list[tuple[str, int]], size: int
) -> None:
    history = RoomHistory(size=size)
    live = 0
    for action, arg in steps:
        if action == "add":
            live += 1
            history.add(live, payload(live))
        else:  # a Redis read of (after, first - 1], as RoomRegistry.replay asks for, while
            first = history.first or live + 1  # live traffic goes on (arg % 4 messages)
            after = max(0, first - 1 - arg)
            for _ in range(arg % 4):
                live += 1
                history.add(live, payload(live))
            history.prepend(entries(after + 1, first - 1))
        held = list(history._messages)
        assert held == list(range(held[0], held[-1] + 1)) if held else True
        for after in range(0, live + 1):
            if history.covers(after, live):
                assert all(seq in history._messages for seq in range(after + 1, live + 1))
                history.replay(after, live, JSON)  # never a KeyError
