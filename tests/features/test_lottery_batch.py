"""Lottery entries by group commit, against a real Redis: a batch of entries decided in one
`lottery_enter.lua` call gives every entry the answer it gets when the entries come one by one,
and leaves the same state (entrants, names, counts, snapshot field, key lifetimes, no events);
many viewers entering at once are all answered and counted exactly, in few script calls."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine
from engine.features import lottery_draw as ld
from engine.identity import Identity, Role
from engine.store import keys
from engine.store.lottery import LotteryStore
from tests.conftest import StartEngine
from tests.features.redis_loop import TrioLoop, aw
from tests.support import viewer

pytestmark = pytest.mark.integration

T0 = 1_900_000_000_000
USERS = ("ann", "bob", "cat", "dan", "eve", "fay")  # eve is banned
Entries = list[tuple[str, str, str]]


@pytest.fixture(scope="module")
def redis_loop(redis_server: Any) -> Iterator[TrioLoop]:
    trio_loop = TrioLoop(redis_server.url)
    yield trio_loop
    trio_loop.close()


async def _room_with_lottery(
    store: LotteryStore, redis: Any, *, entry: str, state: str, followers: list[str],
    before: Entries,
) -> str:  # fmt: skip
    room, seed = f"lb-{uuid.uuid4().hex[:10]}", ld.new_seed()
    keyword = "" if entry == "follow" else "tea"
    draw_at = T0 if state == "due" else 0  # "due": its draw time has come, not yet drawn
    code, _ = await store.create(room, "L1", prize="Tea", wanted=1, entry=entry, keyword=keyword,
                                 keyword_key=keyword, draw_at=draw_at, claim_ms=60_000,
                                 seed=seed, commitment=ld.commitment(seed))  # fmt: skip
    assert code == "ok"
    await aw(redis.sadd(keys.banned(room), ["eve"]))
    if followers:
        await aw(redis.hset(keys.followers(room), {u: "1" for u in followers}))
    for user, how, name in before:  # entered earlier, while the clock was before the draw time
        await store.enter(room, "L1", user, how, name)
    if state == "frozen":
        assert (await store.freeze(room, "L1"))[0] == "ok"
    return room


async def _state(redis: Any, room: str) -> dict[str, Any]:
    info = await aw(redis.hgetall(keys.lottery(room, "L1")))
    return {
        "entrants": await aw(redis.zrange(keys.lottery_entrants(room, "L1"), 0, -1)),
        "names": await aw(redis.hgetall(keys.lottery_names(room, "L1"))),
        "count": (info[b"count"], info[b"ver"], info[b"state"]),
        "lcount": await aw(redis.hget(keys.state(room), "lcount:L1")),
        "expiring": [await aw(redis.pttl(k)) > 0 for k in (keys.lottery_entrants(room, "L1"),
                                                           keys.lottery_names(room, "L1"))],
        "events": await aw(redis.xlen(keys.events(room))),
    }  # fmt: skip


def _model(
    entry: str, state: str, followers: list[str], entered: set[str], entries: Entries
) -> list[tuple[str, bool]]:
    """The rules of lottery_enter.lua's header, entry by entry, in their order."""
    out = []
    for user, how, _ in entries:
        if state != "open" or (entry == "keyword" and how == "follow" and user != "eve"):
            out.append(("lottery_closed", False))
        elif user == "eve":
            out.append(("banned", False))
        elif entry == "follow" and how != "follow" and user not in followers:
            out.append(("follow_required", False))
        else:
            out.append(("ok", user not in entered))
            entered.add(user)
    return out


entry_strategy = st.tuples(
    st.sampled_from(USERS), st.sampled_from(("keyword", "follow", "button")),
    st.sampled_from(("", "", "Ann", "名字")),
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    entry=st.sampled_from(("keyword", "follow", "both")),
    state=st.sampled_from(("open", "open", "open", "frozen", "due")),
    followers=st.lists(st.sampled_from(USERS), unique=True),
    before=st.lists(entry_strategy, max_size=3),
    entries=st.lists(entry_strategy, min_size=1, max_size=14),
)
def test_a_batch_answers_and_leaves_what_one_by_one_does(
    redis_loop: TrioLoop, entry: str, state: str, followers: list[str], before: Entries,
    entries: Entries,
) -> None:  # fmt: skip
    loop = redis_loop
    clock = [T0 - 1]  # "due" lotteries: entered before their draw time, then it comes
    store = LotteryStore(loop.redis, event_maxlen=1000, clock=lambda: clock[0])

    async def both() -> tuple[Any, Any, Any, Any]:
        setup = {"entry": entry, "state": state, "followers": followers, "before": before}
        one, batch = [await _room_with_lottery(store, loop.redis, **setup) for _ in range(2)]
        clock[0] = T0
        entered = await aw(loop.redis.zrange(keys.lottery_entrants(one, "L1"), 0, -1))
        expected.extend(_model(entry, state, followers, {u.decode() for u in entered}, entries))
        alone = [await store.enter(one, "L1", *e) for e in entries]
        together = await store.enter_batch(batch, "L1", entries)
        return alone, together, await _state(loop.redis, one), await _state(loop.redis, batch)

    expected: list[tuple[str, bool]] = []
    alone, (answers, count, ver), state_one, state_batch = loop.run(both)
    assert answers == [(code, new) for code, new, _, _ in alone] == expected
    assert (count, ver) == alone[-1][2:]
    assert state_batch == state_one
    assert state_batch["events"] == 1  # lottery.created only: entries write no events
    assert count == len(state_batch["entrants"])
    assert state_batch["expiring"][0] == bool(count)  # the entrants live as long as the lottery
    seen: set[str] = set()
    for (user, _, _), (code, new) in zip(entries, answers, strict=True):
        assert code != "ok" or user != "eve"  # banned never enters
        if code == "ok":  # a user's second entry in one batch is ok, not new
            assert not (new and user in seen)
            seen.add(user)


def test_an_unknown_lottery_answers_every_entry(redis_loop: TrioLoop) -> None:
    loop = redis_loop
    store = LotteryStore(loop.redis, event_maxlen=1000)
    entries = [("ann", "button", ""), ("bob", "keyword", "Bob")]
    answers = loop.run(lambda: store.enter_batch("lb-none", "L9", entries))
    assert answers == ([("unknown_lottery", False)] * 2, 0, 0)


def url(engine: Engine) -> str:
    assert engine.address is not None
    return engine.address.ws_url


async def test_many_viewers_entering_at_once_are_all_answered_and_counted(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(seckill_batch_window_ms=20, promo_counter_interval_s=0.05)
    await engine.command("create_lottery", room=room, prize="Mug", winners=3, entry="both",
                         keyword="mug", lottery="many")  # fmt: skip
    names = [f"v{i:02d}" for i in range(24)]
    answers: dict[tuple[str, int], dict[str, Any]] = {}
    async with viewer(url(engine), engine.mint_token("watcher", room)) as watcher:

        async def one(user: str) -> None:
            async with viewer(url(engine), engine.mint_token(user, room)) as v:
                for rid in (1, 2):  # the second: while the first may be in its batch
                    await v.send(type="lottery_enter", lottery="many", rid=rid)
                for rid in (1, 2):
                    answers[user, rid] = await v.recv_type("result", rid=rid)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for user in names:
                    nursery.start_soon(one, user)
        assert all(a["ok"] for a in answers.values()) and len(answers) == 2 * len(names)
        for user in names:  # exactly one of a viewer's two entries is new
            assert sorted(answers[user, rid]["data"]["new"] for rid in (1, 2)) == [False, True]
        with trio.fail_after(10):
            await watcher.recv_type("lottery_entrants", lottery="many", count=len(names))
    status = await engine.command("lottery_status", room=room, lottery="many")
    assert status["entrants"] == len(names)
    listed = await engine.command("lottery_entrants", room=room, lottery="many")
    assert listed["users"] == names


async def test_entries_arriving_together_go_in_one_script_call(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(seckill_batch_window_ms=300)  # long: a busy machine still
    await engine.command("create_lottery", room=room, prize="Mug", winners=1, entry="follow",
                         lottery="fo")  # fmt: skip
    lottery = engine.lottery
    batcher = lottery._batcher
    calls = batcher.calls
    users = [f"u{i}" for i in range(50)] + ["u0", "u1"]  # two repeats
    out: dict[int, tuple[str, bool, int]] = {}

    async def enter(i: int, user: str) -> None:
        identity = Identity(user=user, room=room, role=Role.VIEWER, expires_at=0.0)
        if i % 2:
            out[i] = await lottery._enter(room, "fo", identity, "follow")
        else:
            out[i] = await lottery.enter(room, "fo", identity)  # not a follower: refused

    async with trio.open_nursery() as nursery:
        for i, user in enumerate(users):
            nursery.start_soon(enter, i, user)
    assert batcher.calls == calls + 1  # none awaited anything before joining the batch
    followed = {u for i, u in enumerate(users) if i % 2}
    new_entries: dict[str, int] = {}
    for i, user in enumerate(users):
        code, new, _ = out[i]
        if i % 2:  # Trio runs the tasks in no fixed order: one of a user's entries is new
            assert code == "ok"
            new_entries[user] = new_entries.get(user, 0) + new
        else:  # an explicit entry: only followers of the room (a lottery follow is not one)
            assert (code, new) == ("follow_required", False)
    assert new_entries == {user: 1 for user in followed}
    status = await engine.command("lottery_status", room=room, lottery="fo")
    assert status["entrants"] == len(followed)


async def test_a_viewer_may_have_only_so_many_entries_unanswered(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(seckill_max_inflight_per_viewer=1, seckill_batch_window_ms=300)
    for lottery in ("k1", "k2"):
        await engine.command("create_lottery", room=room, prize="Mug", winners=1,
                             entry="both", keyword=lottery, lottery=lottery)  # fmt: skip
    async with viewer(url(engine), engine.mint_token("eager", room)) as eager:
        await eager.send(type="lottery_enter", lottery="k1", rid=1)
        await eager.send(type="lottery_enter", lottery="k2", rid=2)  # while the first waits
        assert (await eager.recv_type("error", rid=2))["code"] == "rate_limited"
        assert (await eager.recv_type("result", rid=1))["data"] == {"lottery": "k1", "new": True}
        await eager.send(type="lottery_enter", lottery="k2", rid=3)  # answered: the next may go
        assert (await eager.recv_type("result", rid=3))["data"] == {"lottery": "k2", "new": True}
        await eager.send(type="lottery_enter", lottery="k1", rid=4)  # known here: answered at once
        assert (await eager.recv_type("result", rid=4))["data"] == {"lottery": "k1", "new": False}
