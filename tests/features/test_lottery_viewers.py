"""Lotteries and follows end to end: engine nodes, real WebSockets, a real Redis. Keyword danmaku
and follows enter once, the draw is verifiable with `engine lottery verify` from what the control
plane publishes, scheduled draws freeze the entries, winners claim within their window."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from engine import Engine
from engine.cli import main
from engine.errors import EngineError
from engine.features import lottery_draw as ld
from engine.store import keys
from engine.store.store import open_redis
from tests.conftest import StartEngine
from tests.support import Viewer, viewer

pytestmark = pytest.mark.integration


def url(engine: Engine) -> str:
    assert engine.address is not None
    return engine.address.ws_url


async def events_of(redis_url: str, room: str) -> list[tuple[str, dict[str, Any]]]:
    async with open_redis(redis_url) as redis:
        entries = await redis.xrange(keys.events(room))
    out = []
    for entry in entries:
        f = {k.decode(): v for k, v in entry.field_values.items()}
        out.append((f["type"].decode(), orjson.loads(f["data"])))
    return out


async def say(v: Viewer, text: str, rid: Any) -> None:
    await v.send(type="danmaku", text=text, rid=rid)
    assert (await v.recv_type("result", rid=rid))["ok"]


async def follow(v: Viewer, rid: Any) -> dict[str, Any]:
    await v.send(type="follow", rid=rid)
    return await v.recv_type("result", rid=rid)


async def entrants_of(engine: Engine, room: str, lottery: str, want: int) -> int:
    """The entrant count once it reached `want` (entries from the chat hook are not answered)."""
    with trio.fail_after(5):
        while (count := (await engine.command("lottery_status", room=room,
                                              lottery=lottery))["entrants"]) < want:  # fmt: skip
            await trio.sleep(0.02)
    return count


def verify(tmp: Path, status: dict[str, Any], entrants: dict[str, Any]) -> tuple[int, str]:
    (tmp / "status.json").write_bytes(orjson.dumps(status))
    (tmp / "entrants.json").write_bytes(orjson.dumps(entrants))
    out = io.StringIO()
    code = main(["lottery", "verify", "--status", str(tmp / "status.json"),
                 "--entrants", str(tmp / "entrants.json")], out=out)  # fmt: skip
    return code, out.getvalue()


async def test_keyword_and_follow_entries_count_once_and_the_draw_verifies(
    start_engine: StartEngine, room: str, redis_url: str, tmp_path: Path
) -> None:
    engine = await start_engine(promo_counter_interval_s=0.05)
    token = engine.mint_token
    async with (
        viewer(url(engine), token("ann", room, name="Ann")) as ann,
        viewer(url(engine), token("bob", room)) as bob,
        viewer(url(engine), token("cat", room), codec="msgpack") as cat,
        viewer(url(engine), token("dan", room)) as dan,
        viewer(url(engine), token("host-1", room, role="anchor")) as anchor,
    ):
        created = await engine.command("create_lottery", room=room, prize="A tea set",
                                       winners=2, entry="both", keyword="Tea Time",
                                       lottery="lot1")  # fmt: skip
        commitment = created["commitment"]
        assert created["state"] == "open" and created["seed"] is None  # secret until the draw
        popup = (await ann.recv_type("popup"))["popup"]
        assert popup["kind"] == "lottery" and popup["data"]["commitment"] == commitment
        assert popup["data"]["keyword"] == "Tea Time" and popup["data"]["winners"] == 2
        await say(ann, "ＴＥＡ  time", 1)  # full width, other case, two spaces: the keyword
        await say(ann, "tea time", 2)  # again: counts once
        assert (await follow(ann, 3))["data"]["lotteries"] == ["lot1"]  # and by follow: once
        assert (await follow(bob, 4))["data"] == {"new": True, "lotteries": ["lot1"]}
        assert (await follow(bob, 5))["data"] == {"new": False, "lotteries": ["lot1"]}
        await say(cat, "Tea Time", 6)
        await say(dan, "tea time please", 7)  # not the keyword
        await say(anchor, "Tea Time", 8)  # staff do not enter
        await dan.send(type="lottery_enter", lottery="lot1", rid=9)
        entered = await dan.recv_type("result", rid=9)
        assert entered["ok"] and entered["data"] == {"lottery": "lot1", "new": True}
        await dan.send(type="lottery_enter", lottery="lot1", rid=10)
        assert (await dan.recv_type("result", rid=10))["data"]["new"] is False
        assert await entrants_of(engine, room, "lot1", 4) == 4
        counted = await ann.recv_type("lottery_entrants", count=4)
        assert counted["lottery"] == "lot1"
        async with viewer(url(engine), token("eve", room)) as eve:
            [open_lottery] = eve.welcome["snapshot"]["lotteries"]  # type: ignore[attr-defined]
            assert open_lottery["lottery"] == "lot1" and open_lottery["entrants"] == 4
        drawn = await engine.command("draw_lottery", room=room, lottery="lot1")
        winners = [w["user"] for w in drawn["winners"]]
        assert drawn["state"] == "drawn" and len(winners) == len(set(winners)) == 2
        assert set(winners) <= {"ann", "bob", "cat", "dan"}
        assert drawn["entrants"] == 4 and ld.commitment(drawn["seed"]) == commitment
        shown = (await bob.recv_type("popup"))["popup"]
        assert shown["kind"] == "lottery_winners"
        assert [w["user"] for w in shown["data"]["winners"]] == winners
        assert shown["data"]["seed"] == drawn["seed"] and shown["data"]["digest"] == drawn["digest"]
        if "ann" in winners:
            assert next(w for w in shown["data"]["winners"] if w["user"] == "ann")["name"] == "Ann"
        await say(cat, "Tea Time", 11)  # after the draw: nothing changes
        await cat.send(type="lottery_enter", lottery="lot1", rid=12)
        assert (await cat.recv_type("result", rid=12))["code"] == "lottery_closed"
    status = await engine.command("lottery_status", room=room, lottery="lot1")
    assert status["entrants"] == 4
    listed = await engine.command("lottery_entrants", room=room, lottery="lot1")
    assert listed["users"] == ["ann", "bob", "cat", "dan"] and listed["frozen"]
    code, text = verify(tmp_path, status, listed)
    assert code == 0 and "VERIFIED" in text
    tampered = {**listed, "users": ["ann", "bob", "cat"]}  # one entrant dropped
    assert verify(tmp_path, status, tampered)[0] == 1
    assert verify(tmp_path, {**status, "seed": ld.new_seed()}, listed)[0] == 1
    events = await events_of(redis_url, room)
    won = [d for t, d in events if t == "lottery.won"]
    assert [(d["user"], d["rank"]) for d in won] == [(u, r) for r, u in enumerate(winners, 1)]
    assert [t for t, _ in events].count("lottery.drawn") == 1
    follows = [d for t, d in events if t == "follow"]
    assert sorted(d["user"] for d in follows) == ["ann", "bob"]  # one event per follower
    numbers = await engine.command("live_numbers", room=room)
    assert numbers["new_follows"] == 2 and numbers["followers"] == 2


async def test_a_scheduled_draw_freezes_the_entries(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine(scheduler_poll_s=0.05)
    async with viewer(url(engine), engine.mint_token("ann", room)) as ann:
        created = await engine.command("create_lottery", room=room, prize="Cups", winners=3,
                                       entry="keyword", keyword="cups!", draw_in_s=1.0)  # fmt: skip
        lottery = created["lottery"]
        assert created["draw_at"] is not None
        await ann.recv_type("popup")
        await say(ann, "cups!", 1)
        shown = (await ann.recv_type("popup", timeout=10))["popup"]
        assert shown["kind"] == "lottery_winners" and shown["data"]["winners"] == [
            {"user": "ann", "rank": 1}]  # fmt: skip
        await say(ann, "cups!", 2)
        await ann.send(type="lottery_enter", lottery=lottery, rid=3)
        assert (await ann.recv_type("result", rid=3))["code"] == "lottery_closed"
    async with viewer(url(engine), engine.mint_token("bob", room)) as bob:
        assert bob.welcome["snapshot"]["lotteries"] == []  # type: ignore[attr-defined]
        await say(bob, "cups!", 1)
        await bob.send(type="follow", rid=2)
        assert (await bob.recv_type("result", rid=2))["data"]["lotteries"] == []
    status = await engine.command("lottery_status", room=room, lottery=lottery)
    assert status["entrants"] == 1 and [w["user"] for w in status["winners"]] == ["ann"]
    assert status["drawn_at"] >= status["draw_at"]
    with pytest.raises(EngineError) as refused:
        await engine.command("cancel_lottery", room=room, lottery=lottery)
    assert refused.value.code == "bad_state"


async def test_follow_only_lotteries_and_the_session_count(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine()
    await engine.command("create_room", room=room, title="Tea", anchor="host-1")
    created = await engine.command("create_lottery", room=room, prize="Pot", winners=1,
                                   entry="follow")  # fmt: skip
    lottery = created["lottery"]
    async with viewer(url(engine), engine.mint_token("ann", room)) as ann:
        await say(ann, "anything", 1)
        await ann.send(type="lottery_enter", lottery=lottery, rid=2)
        assert (await ann.recv_type("result", rid=2))["code"] == "follow_required"
        assert (await follow(ann, 3))["data"] == {"new": True, "lotteries": [lottery]}
        await ann.send(type="lottery_enter", lottery=lottery, rid=4)
        assert (await ann.recv_type("result", rid=4))["data"]["new"] is False
    async with viewer(url(engine), engine.mint_token("ann", room)) as again:  # reconnected
        assert (await follow(again, 5))["data"] == {"new": False, "lotteries": [lottery]}
    assert (await engine.command("lottery_status", room=room, lottery=lottery))["entrants"] == 1
    assert (await engine.command("follow_numbers", room=room)) == {"new_follows": 1,
                                                                    "followers": 1}  # fmt: skip
    follows = [d for t, d in await events_of(redis_url, room) if t == "follow"]
    assert follows == [{"user": "ann", "anchor": "host-1"}]
    await engine.command("start_room", room=room)  # a new session: its count starts at 0
    numbers = await engine.command("follow_numbers", room=room)
    assert numbers == {"new_follows": 0, "followers": 1}


async def test_winners_claim_within_their_window_through_the_control_plane(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine()
    await engine.command("create_lottery", room=room, prize="Mug", winners=1, entry="keyword",
                         keyword="mug", lottery="mugs", claim_s=3600)  # fmt: skip
    async with viewer(url(engine), engine.mint_token("ann", room)) as ann:
        await ann.send(type="lottery_enter", lottery="mugs", rid=1)
        assert (await ann.recv_type("result", rid=1))["ok"]
    drawn = await engine.command("draw_lottery", room=room, lottery="mugs")
    [winner] = drawn["winners"]
    assert winner["user"] == "ann" and winner["state"] == "won"
    assert winner["claim_until"] - drawn["drawn_at"] == 3_600_000
    again = await engine.command("draw_lottery", room=room, lottery="mugs")  # idempotent
    assert again["winners"] == drawn["winners"]
    claimed = await engine.command("claim_prize", room=room, lottery="mugs", user="ann",
                                   ref="order-7")  # fmt: skip
    assert claimed == {"lottery": "mugs", "user": "ann", "rank": 1,
                       "claim_until": winner["claim_until"], "already": False}  # fmt: skip
    assert (await engine.command("claim_prize", room=room, lottery="mugs", user="ann"))["already"]
    with pytest.raises(EngineError) as refused:
        await engine.command("claim_prize", room=room, lottery="mugs", user="bob")
    assert refused.value.code == "not_a_winner"
    status = await engine.command("lottery_status", room=room, lottery="mugs")
    assert status["winners"][0]["state"] == "claimed" and status["winners"][0]["ref"] == "order-7"
    kinds = [t for t, _ in await events_of(redis_url, room) if t.startswith("lottery.")]
    assert kinds == ["lottery.created", "lottery.drawn", "lottery.won", "lottery.claimed"]
    with pytest.raises(EngineError) as refused:
        await engine.command("create_lottery", room=room, prize="Mug", winners=1,
                             entry="keyword", lottery="mugs", keyword="x")  # fmt: skip
    assert refused.value.code == "lottery_exists"
    for bad in ({"entry": "keyword"}, {"entry": "follow", "keyword": "x"},
                {"entry": "keyword", "keyword": "x", "draw_at": 5}):  # fmt: skip
        with pytest.raises(EngineError) as refused:
            await engine.command("create_lottery", room=room, prize="P", winners=1, **bad)
        assert refused.value.code == "bad_field", bad
    cancelled = await engine.command("create_lottery", room=room, prize="P", winners=1,
                                     entry="follow", lottery="off")  # fmt: skip
    assert cancelled["state"] == "open"
    assert (await engine.command("cancel_lottery", room=room, lottery="off"))["state"] == (
        "cancelled")  # fmt: skip
    with pytest.raises(EngineError) as refused:
        await engine.command("draw_lottery", room=room, lottery="off")
    assert refused.value.code == "bad_state"
    listed = await engine.command("list_lotteries", room=room)
    assert [lot["lottery"] for lot in listed["lotteries"]] == ["mugs", "off"]


async def test_unclaimed_prizes_expire_on_the_scheduler_with_an_event(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine(lottery_claim_s=3.0, scheduler_poll_s=0.05)
    await engine.command("create_lottery", room=room, prize="Mug", winners=2, entry="keyword",
                         keyword="mug", lottery="brief")  # fmt: skip
    for user in ("ann", "bob"):
        async with viewer(url(engine), engine.mint_token(user, room)) as v:
            await say(v, "mug", 1)
    await entrants_of(engine, room, "brief", 2)
    drawn = await engine.command("draw_lottery", room=room, lottery="brief")
    assert {w["user"] for w in drawn["winners"]} == {"ann", "bob"}
    claimed = await engine.command("claim_prize", room=room, lottery="brief", user="ann")
    assert claimed["already"] is False  # in time
    with trio.fail_after(20):
        while not [d for t, d in await events_of(redis_url, room) if t == "lottery.expired"]:
            await trio.sleep(0.1)
    with pytest.raises(EngineError) as refused:
        await engine.command("claim_prize", room=room, lottery="brief", user="bob")
    assert refused.value.code == "claim_expired"
    events = await events_of(redis_url, room)
    assert [d["user"] for t, d in events if t == "lottery.expired"] == ["bob"]
    assert [d["user"] for t, d in events if t == "lottery.claimed"] == ["ann"]
    states = {
        w["user"]: w["state"]
        for w in (await engine.command("lottery_status", room=room, lottery="brief"))["winners"]
    }
    assert states == {"ann": "claimed", "bob": "expired"}
