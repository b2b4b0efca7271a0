"""The per-connection outbox policy: what a viewer who is behind loses, and when it is cut."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fanout.outbox import FrameKind, Outbox

CHAT, COUNTER, CRITICAL = FrameKind.CHAT, FrameKind.COUNTER, FrameKind.CRITICAL


def drain(outbox: Outbox, accept: int | None = None) -> bytes:
    """Simulate the socket taking `accept` bytes (everything when None)."""
    data = b"".join(bytes(b) for b in outbox.pending())
    taken = data if accept is None else data[:accept]
    outbox.consumed(len(taken))
    return taken


def test_frames_leave_in_order_and_whole() -> None:
    box = Outbox(max_bytes=1000)
    for i, kind in enumerate([CHAT, CRITICAL, COUNTER]):
        assert box.push(f"frame{i};".encode(), kind, None, now=0)
    out = drain(box, 9) + drain(box)
    assert out == b"frame0;frame1;frame2;"
    assert box.empty and box.queued_bytes == 0


def test_partial_head_goes_first_and_is_never_dropped() -> None:
    box = Outbox(max_bytes=20)
    box.push_partial(b"0123456789", sent=4, now=0)
    assert box.push(b"c" * 10, CHAT, None, now=0)
    # a critical frame that needs room: chat goes, the partly written head stays
    assert box.push(b"P" * 8, CRITICAL, None, now=0)
    assert drain(box) == b"456789" + b"P" * 8
    assert box.dropped == 1


def test_chat_is_dropped_before_popups_and_results() -> None:
    box = Outbox(max_bytes=100)
    assert box.push(b"popup-1" + b"." * 23, CRITICAL, None, now=0)
    for i in range(5):
        assert box.push(f"chat-{i}".encode() + b"." * 14, CHAT, None, now=0)
    assert box.push(b"popup-2" + b"." * 23, CRITICAL, None, now=0)
    out = drain(box)
    assert b"popup-1" in out and b"popup-2" in out
    assert out.count(b"chat-") < 5 and box.dropped == 5 - out.count(b"chat-")
    assert out.index(b"popup-1") < out.index(b"popup-2")


def test_new_chat_is_dropped_when_only_critical_frames_are_queued() -> None:
    box = Outbox(max_bytes=50)
    assert box.push(b"x" * 45, CRITICAL, None, now=0)
    assert box.push(b"c" * 10, CHAT, None, now=0)  # dropped, the viewer is kept
    assert box.dropped == 1 and box.queued_bytes == 45


def test_critical_overflow_means_slow_consumer() -> None:
    box = Outbox(max_bytes=50)
    assert box.push(b"x" * 45, CRITICAL, None, now=0)
    assert not box.push(b"y" * 10, CRITICAL, None, now=0)


def test_counters_keep_only_the_newest_value() -> None:
    box = Outbox(max_bytes=1000)
    box.push(b"likes=1;", COUNTER, "likes", now=0)
    box.push(b"chat;", CHAT, None, now=0)
    box.push(b"likes=22;", COUNTER, "likes", now=1)
    box.push(b"online=3;", COUNTER, "online", now=1)
    assert drain(box) == b"likes=22;chat;online=3;"


def test_counter_being_written_is_not_replaced() -> None:
    box = Outbox(max_bytes=1000)
    box.push(b"likes=1;", COUNTER, "likes", now=0)
    drain(box, 3)
    box.push(b"likes=2;", COUNTER, "likes", now=0)
    assert drain(box) == b"es=1;likes=2;"


def test_overdue_when_the_oldest_frame_waits_too_long() -> None:
    box = Outbox(max_bytes=1000)
    assert not box.overdue(now=100, timeout=10)  # empty: never overdue
    box.push(b"a", CRITICAL, None, now=0)
    box.push(b"b", CRITICAL, None, now=8)
    assert not box.overdue(now=9, timeout=10)
    assert box.overdue(now=10.5, timeout=10)
    drain(box, 1)  # the viewer reads: now the oldest frame is from t=8
    assert not box.overdue(now=10.5, timeout=10)
    assert box.deadline(10) == 18


def test_closing_clears_droppable_frames_only() -> None:
    box = Outbox(max_bytes=1000)
    box.push_partial(b"head-chat", sent=2, now=0)
    box.push(b"chat", CHAT, None, now=0)
    box.push(b"likes", COUNTER, "likes", now=0)
    box.push(b"popup", CRITICAL, None, now=0)
    box.clear_droppable()
    box.push_forced(b"close", now=0)
    assert drain(box) == b"ad-chatpopupclose"
    assert box.queued_bytes == 0


frame_ops = st.lists(
    st.tuples(
        st.sampled_from(["push", "drain"]),
        st.sampled_from(list(FrameKind)),
        st.integers(1, 60),
        st.sampled_from([None, "likes", "online"]),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(ops=frame_ops)
def test_invariants_bytes_accounted_budget_respected_critical_never_lost(ops: list) -> None:  # type: ignore[type-arg]
    box = Outbox(max_bytes=200)
    sent = b""
    critical_pushed: list[bytes] = []
    closed = False
    for n, (op, kind, size, key) in enumerate(ops):
        if op == "push" and not closed:
            frame = f"<{n}:{int(kind)}>".encode().ljust(size, b".")
            key = key if kind is FrameKind.COUNTER else None
            if not box.push(frame, kind, key, now=n):
                closed = True  # slow consumer: only ever because critical frames overflow
                assert kind is FrameKind.CRITICAL
            elif kind is FrameKind.CRITICAL:
                critical_pushed.append(frame)
        elif op == "drain":
            sent += drain(box, size)
        assert box.queued_bytes == sum(len(bytes(b)) for b in box.pending(10_000))
        assert box.queued_bytes <= 200 or closed
    sent += drain(box)
    for frame in critical_pushed:
        assert frame in sent  # never dropped, always whole
