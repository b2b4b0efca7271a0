"""The per-room sequencer: every seq delivered exactly once and in order, or an explicit resync."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fanout.sequencer import Sequencer, Step, Verdict


def p(seq: int) -> bytes:
    return f"m{seq}".encode()


def test_in_order_messages_are_delivered_and_duplicates_dropped() -> None:
    s = Sequencer()
    assert s.start("e", 0).step is Step.WAIT
    assert s.offer("e", 1, p(1)).messages == [(1, p(1))]
    assert s.offer("e", 1, p(1)).step is Step.WAIT
    assert s.offer("e", 2, p(2)).messages == [(2, p(2))]


def test_messages_before_start_are_held_and_those_already_known_dropped() -> None:
    s = Sequencer()
    assert s.offer("e", 5, p(5)).step is Step.WAIT
    assert s.offer("e", 6, p(6)).step is Step.WAIT
    v = s.start("e", 5)  # the position read from Redis already includes 5
    assert v.messages == [(6, p(6))]


def test_a_gap_is_filled_from_the_history_before_later_messages() -> None:
    s = Sequencer()
    s.start("e", 0)
    v = s.offer("e", 4, p(4))
    assert (v.step, v.after, v.upto) == (Step.FILL, 0, 3)
    assert s.offer("e", 5, p(5)).step is Step.WAIT  # held while the fill runs
    v = s.filled([(1, p(1)), (2, p(2)), (3, p(3))], upto=3)
    assert [seq for seq, _ in v.messages] == [1, 2, 3, 4, 5]


def test_a_gap_the_history_no_longer_has_becomes_a_resync() -> None:
    s = Sequencer()
    s.start("e", 0)
    s.offer("e", 10, p(10))
    v = s.filled([(8, p(8)), (9, p(9))], upto=9)
    assert v.step is Step.RESYNC
    v = s.restart("e", 9)
    assert v.messages == [(10, p(10))]


def test_an_epoch_change_resyncs_and_follows_the_new_epoch_from_its_start() -> None:
    s = Sequencer()
    s.start("old", 50)
    v = s.offer("new", 3, p(3))
    assert (v.step, v.epoch) == (Step.RESYNC, "new")
    v = s.restart("new", 0)
    assert (v.step, v.after, v.upto) == (Step.FILL, 0, 2)
    v = s.filled([(1, p(1)), (2, p(2))], upto=2)
    assert [seq for seq, _ in v.messages] == [1, 2, 3]


# the property: any interleaving of deliveries, losses, duplicates and reorders of a published
# sequence, with the history answering fills, yields each seq once, in order, or a resync


@settings(max_examples=400)
@given(
    n=st.integers(1, 40),
    fate=st.lists(st.sampled_from(["ok", "lost", "dup", "late"]), min_size=40, max_size=40),
    history_keeps=st.integers(0, 40),
)
def test_property_exactly_once_in_order_or_explicit_resync(
    n: int, fate: list[str], history_keeps: int
) -> None:
    published = list(range(1, n + 1))
    kept_from = max(1, n - history_keeps + 1)  # the history has seqs >= kept_from
    arrivals: list[int] = []
    late: list[int] = []
    for seq in published:
        f = fate[seq - 1]
        if f == "ok":
            arrivals.append(seq)
        elif f == "dup":
            arrivals += [seq, seq]
        elif f == "late":
            late.append(seq)
        arrivals += [x for x in late if x < seq - 2]
        late = [x for x in late if x >= seq - 2]
    arrivals += late
    s = Sequencer()
    delivered: list[int] = []
    resynced_at: int | None = None

    def act(v: Verdict) -> None:
        nonlocal resynced_at
        delivered.extend(seq for seq, _ in v.messages)
        if v.step is Step.FILL:
            history = [(q, p(q)) for q in range(v.after + 1, v.upto + 1) if q >= kept_from]
            act(s.filled(history, v.upto))
        elif v.step is Step.RESYNC:
            resynced_at = len(delivered)
            act(s.restart("e", max(delivered[-1] if delivered else 0, kept_from - 1, v.upto)))

    act(s.start("e", 0))
    for seq in arrivals:
        act(s.offer("e", seq, p(seq)))
    # strictly increasing, no duplicates
    assert all(a < b for a, b in itertools.pairwise(delivered))
    if resynced_at is None:  # no resync: no gap either
        assert delivered == [q for q in published if q <= (delivered[-1] if delivered else 0)]
    else:  # a gap is only allowed across the resync
        before, after = delivered[:resynced_at], delivered[resynced_at:]
        assert before == list(range(1, len(before) + 1))
        assert after == list(range(after[0], after[0] + len(after))) if after else True
