"""The lottery scripts against a real Redis: the Lua draw picks exactly the winners of the pure
function `engine lottery verify` runs (so "the draw picks N distinct winners in Lua" and "anyone
can recompute it" are the same claim), entries stop at the freeze and at the draw time, claims
and expiries happen once each and on time."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.features import lottery_draw as ld
from engine.store import keys
from engine.store.lottery import LotteryStore
from tests.features.redis_loop import TrioLoop, aw
from tests.support import RedisProcess

pytestmark = pytest.mark.integration

T0 = 1_900_000_000_000
LOOP: TrioLoop | None = None


@pytest.fixture(scope="module", autouse=True)
def trio_loop(redis_server: RedisProcess) -> Iterator[TrioLoop]:
    global LOOP
    LOOP = TrioLoop(redis_server.url)
    yield LOOP
    LOOP.close()
    LOOP = None


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _setup(entry: str = "keyword", draw_at: int = 0, wanted: int = 3, claim_ms: int = 60_000
           ) -> tuple[TrioLoop, LotteryStore, Clock, str, str]:  # fmt: skip
    assert LOOP is not None
    clock = Clock()
    store = LotteryStore(LOOP.redis, event_maxlen=100_000, clock=clock)
    room, seed = f"lt-{uuid.uuid4().hex[:10]}", ld.new_seed()
    code, _ = LOOP.run(lambda: store.create(
        room, "L1", prize="Tea", wanted=wanted, entry=entry, keyword="tea" if entry != "follow"
        else "", keyword_key="tea" if entry != "follow" else "", draw_at=draw_at,
        claim_ms=claim_ms, seed=seed, commitment=ld.commitment(seed)))  # fmt: skip
    assert code == "ok"
    return LOOP, store, clock, room, seed


def _events(loop: TrioLoop, room: str) -> list[tuple[str, dict[str, Any]]]:
    entries = loop.run(lambda: aw(loop.redis.xrange(keys.events(room))))
    out = []
    for entry in entries:
        f = {k.decode(): v for k, v in entry.field_values.items()}
        out.append((f["type"].decode(), orjson.loads(f["data"])))
    return out


def _draw(loop: TrioLoop, store: LotteryStore, room: str, seed: str, wanted: int) -> Any:
    assert loop.run(lambda: store.freeze(room, "L1"))[0] == "ok"
    listed = loop.run(lambda: store.entrants(room, "L1"))
    expected = ld.draw(seed, listed, wanted)
    reply = loop.run(lambda: store.draw(room, "L1", key=expected.key, digest=expected.digest,
                                        count=len(listed)))  # fmt: skip
    return listed, expected, reply


users = st.from_regex(r"\A[A-Za-z0-9_.:@-]{1,10}\Z")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entrants=st.lists(users, max_size=40), wanted=st.integers(1, 12))
def test_lua_draws_the_winners_of_the_reference_function(entrants: list[str], wanted: int) -> None:
    loop, store, _, room, seed = _setup(wanted=wanted)
    for user in entrants:
        code, *_ = loop.run(lambda user=user: store.enter(room, "L1", user, "keyword"))
        assert code == "ok"
    listed, expected, (code, already, _, claim_until, winners) = _draw(
        loop, store, room, seed, wanted
    )
    assert listed == sorted(set(entrants), key=str.encode)  # the set reads in byte order
    assert code == "ok" and not already
    assert winners == expected.winners  # Lua == the function `engine lottery verify` runs
    assert len(winners) == len(set(winners)) == min(wanted, len(set(entrants)))
    assert set(winners) <= set(entrants)
    events = _events(loop, room)
    drawn = [d for t, d in events if t == "lottery.drawn"]
    won = [d for t, d in events if t == "lottery.won"]
    assert len(drawn) == 1 and drawn[0]["seed"] == seed and drawn[0]["digest"] == expected.digest
    assert [w["user"] for w in drawn[0]["winners"]] == winners
    assert [(w["user"], w["rank"]) for w in won] == [(u, r) for r, u in enumerate(winners, 1)]
    assert all(w["claim_until"] == claim_until for w in won)
    verdict = ld.verify(seed=drawn[0]["seed"], committed=drawn[0]["commitment"],
                        entrants=listed, wanted=wanted, published_digest=drawn[0]["digest"],
                        published_winners=winners)  # fmt: skip
    assert verdict.ok
    # drawing again changes nothing and answers the same winners
    again = loop.run(lambda: store.draw(room, "L1", key="0" * 64, digest="x", count=0))
    assert again[0] == "ok" and again[1] is True and again[4] == winners
    assert _events(loop, room) == events


def test_entries_count_once_and_stop_at_the_freeze() -> None:
    loop, store, _, room, seed = _setup(entry="both")
    assert loop.run(lambda: store.enter(room, "L1", "ann", "keyword"))[:3] == ("ok", True, 1)
    assert loop.run(lambda: store.enter(room, "L1", "ann", "keyword"))[:3] == ("ok", False, 1)
    assert loop.run(lambda: store.enter(room, "L1", "ann", "follow"))[:3] == ("ok", False, 1)
    assert loop.run(lambda: store.enter(room, "L1", "bob", "follow"))[:3] == ("ok", True, 2)
    assert loop.run(lambda: store.freeze(room, "L1")) == ("ok", 2, "frozen")
    assert loop.run(lambda: store.enter(room, "L1", "cat", "keyword"))[0] == "lottery_closed"
    listed, _, reply = _draw(loop, store, room, seed, 3)
    assert listed == ["ann", "bob"] and sorted(reply[4]) == ["ann", "bob"]
    assert loop.run(lambda: store.enter(room, "L1", "dan", "keyword"))[0] == "lottery_closed"


def test_entries_at_the_draw_time_do_not_count_even_if_the_draw_is_late() -> None:
    loop, store, clock, room, _ = _setup(draw_at=T0 + 10_000)
    assert loop.run(lambda: store.enter(room, "L1", "ann", "keyword"))[0] == "ok"
    clock.now = T0 + 10_000  # the scheduler has not run the draw yet
    assert loop.run(lambda: store.enter(room, "L1", "bob", "keyword"))[0] == "lottery_closed"
    assert loop.run(lambda: store.freeze(room, "L1")) == ("ok", 1, "frozen")


def test_entry_modes_follow_and_bans() -> None:
    loop, store, _, room, _ = _setup(entry="follow")
    assert loop.run(lambda: store.enter(room, "L1", "ann", "button"))[0] == "follow_required"
    loop.run(lambda: aw(loop.redis.hset(keys.followers(room), {"ann": "1"})))
    assert loop.run(lambda: store.enter(room, "L1", "ann", "button"))[:2] == ("ok", True)
    assert loop.run(lambda: store.enter(room, "L1", "bob", "follow"))[:2] == ("ok", True)
    loop.run(lambda: aw(loop.redis.sadd(keys.banned(room), ["eve"])))
    assert loop.run(lambda: store.enter(room, "L1", "eve", "follow"))[0] == "banned"
    loop2, store2, _, room2, _ = _setup(entry="keyword")
    assert loop2.run(lambda: store2.enter(room2, "L1", "ann", "follow"))[0] == "lottery_closed"
    assert loop2.run(lambda: store2.enter(room2, "L2", "ann", "keyword"))[0] == "unknown_lottery"


def test_a_list_that_changed_after_hashing_is_not_drawn() -> None:
    loop, store, _, room, seed = _setup()
    for user in ("a", "b", "c"):
        loop.run(lambda user=user: store.enter(room, "L1", user, "keyword"))
    assert loop.run(lambda: store.freeze(room, "L1"))[0] == "ok"
    expected = ld.draw(seed, ["a", "b"], 3)  # a node that hashed another list
    reply = loop.run(lambda: store.draw(room, "L1", key=expected.key, digest=expected.digest,
                                        count=2))  # fmt: skip
    assert reply[0] == "changed"
    assert [t for t, _ in _events(loop, room)] == ["lottery.created"]
    assert loop.run(lambda: store.cancel(room, "L1", "test")) == ("ok", False)
    assert loop.run(lambda: store.cancel(room, "L1", "test")) == ("ok", True)


def test_claims_within_the_window_and_expiry_after_it() -> None:
    loop, store, clock, room, seed = _setup(wanted=3, claim_ms=60_000)
    for user in ("a", "b", "c", "d"):
        loop.run(lambda user=user: store.enter(room, "L1", user, "keyword"))
    _, _, (_, _, drawn_at, claim_until, winners) = _draw(loop, store, room, seed, 3)
    assert claim_until == drawn_at + 60_000
    loser = next(u for u in "abcd" if u not in winners)
    assert loop.run(lambda: store.claim(room, "L1", loser, ""))[0] == "not_a_winner"
    first, second, third = winners
    assert loop.run(lambda: store.claim(room, "L1", first, "order-1")) == ("ok", False, 1,
                                                                           claim_until)  # fmt: skip
    assert loop.run(lambda: store.claim(room, "L1", first, "order-1"))[:2] == ("ok", True)
    assert loop.run(lambda: store.expire(room, "L1")) == (0, claim_until)  # not due yet
    clock.now = claim_until
    assert loop.run(lambda: store.claim(room, "L1", second, ""))[0] == "claim_expired"
    assert loop.run(lambda: store.expire(room, "L1")) == (1, 0)  # the third one
    assert loop.run(lambda: store.expire(room, "L1")) == (0, 0)
    assert loop.run(lambda: store.claim(room, "L1", third, ""))[0] == "claim_expired"
    kinds = Counter(t for t, _ in _events(loop, room))
    assert kinds["lottery.claimed"] == 1 and kinds["lottery.expired"] == 2
    expired = sorted(d["user"] for t, d in _events(loop, room) if t == "lottery.expired")
    assert expired == sorted([second, third])
