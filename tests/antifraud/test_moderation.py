"""Bans, mutes and grab refusals, per room and global, across two nodes and a restart; their
expiry; keyword lists changed at run time with block, mask and flag; garbage on the signal
channel. Tests that change global settings run on a redis-server of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from engine import Engine
from engine.errors import CloseCode, EngineError
from engine.store import keys
from engine.store.store import open_redis
from tests.antifraud.support import AF, events, refused, visitor
from tests.support import RedisProcess, engine_config

pytestmark = pytest.mark.integration

StartNode = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def private() -> AsyncIterator[RedisProcess]:
    server = RedisProcess()
    await trio.to_thread.run_sync(server.start)
    yield server
    await trio.to_thread.run_sync(server.stop)


@pytest.fixture
def start_node(nursery: trio.Nursery, tmp_path: Path, redis_url: str) -> StartNode:
    async def start(*, redis: str | None = None, **overrides: Any) -> Engine:
        engine = Engine(engine_config(redis or redis_url, tmp_path, **{**AF, **overrides}))
        await nursery.start(engine.serve)
        return engine

    return start


async def test_a_ban_reaches_every_node_closes_refuses_and_survives_a_restart(
    start_node: StartNode, room: str, redis_url: str, nursery: trio.Nursery, tmp_path: Path
) -> None:
    node_a, node_b = await start_node(), await start_node()
    async with (
        visitor(node_b, "mallory", room, ip="10.0.0.66") as mallory,
        visitor(node_b, "mallory", room + "-other", ip="10.0.0.66") as elsewhere,
        visitor(node_a, "alice", room, ip="10.0.0.1") as alice,
    ):
        ban = await node_a.command("ban", room=room, user="mallory", reason="spam links")
        assert ban["kind"] == "ban" and ban["until"] is None and ban["by"] == "operator"
        code, reason = await mallory.closed()
        assert code == CloseCode.BANNED and "spam links" in reason
        # only that room: the same user elsewhere stays
        await elsewhere.send(type="ping", rid=1)
        await elsewhere.recv_type("pong")
        for node in (node_a, node_b):
            code, reason = await refused(node, "mallory", room, ip="10.0.0.67")
            assert code == CloseCode.BANNED and reason.startswith("banned") and "spam" in reason
        await alice.send(type="ping", rid=1)
        await alice.recv_type("pong")
    async with open_redis(redis_url) as redis:  # the flash-sale grab script refuses it too
        assert await redis.sismember(keys.banned(room), "mallory")
    listing = await node_b.command("sanctions", room=room)
    assert [b["user"] for b in listing["bans"]] == ["mallory"]
    assert listing["mutes"] == [] and listing["grab_refusals"] == []
    # a node started later knows it from Redis
    node_c = Engine(engine_config(redis_url, tmp_path, **AF))
    await nursery.start(node_c.serve)
    code, _ = await refused(node_c, "mallory", room, ip="10.0.0.68")
    assert code == CloseCode.BANNED
    lifted = await node_c.command("unban", room=room, user="mallory")
    assert lifted["lifted"] is True
    for node in (node_a, node_b, node_c):
        with trio.fail_after(10):
            while True:  # every node learns it within about a second
                try:
                    async with visitor(node, "mallory", room, ip="10.0.0.69"):
                        break
                except AssertionError:
                    await trio.sleep(0.1)
    async with open_redis(redis_url) as redis:
        assert not await redis.sismember(keys.banned(room), "mallory")
    kinds = [
        kind for kind, data in await events(redis_url, room, "user.") if data["user"] == "mallory"
    ]
    assert kinds == ["user.banned", "user.unbanned"]
    assert (await node_a.command("unban", room=room, user="mallory"))["lifted"] is False


async def test_mutes_and_shadow_mutes_across_two_nodes(start_node: StartNode, room: str) -> None:
    node_a, node_b = await start_node(), await start_node()
    async with (
        visitor(node_a, "troll", room, ip="10.0.0.66") as troll,
        visitor(node_b, "alice", room, ip="10.0.0.1") as alice,
        visitor(node_b, "bob", room, ip="10.0.0.2") as bob,
    ):
        await node_b.command("mute", room=room, user="troll", duration_s=60, reason="rude")
        await trio.sleep(0.5)
        await troll.send(type="danmaku", text="you all stink", rid="m1")
        error = await troll.recv_type("error", rid="m1")
        assert error["code"] == "muted"
        await node_b.command("mute", room=room, user="troll", shadow=True)  # replaces the mute
        await trio.sleep(0.5)
        await troll.send(type="danmaku", text="still here", rid="m2")
        result = await troll.recv_type("result", rid="m2")
        assert result["ok"] and result["data"]["id"]  # it cannot tell
        own = [m["text"] for f in troll.seen if f["type"] == "chat" for m in f["msgs"]]
        assert own == ["still here"]  # the sender sees its own message (before its result)
        await bob.send(type="danmaku", text="marker", rid="b1")
        assert await alice.chat_texts(1) == ["marker"]  # ... and nobody else does
        listing = await node_a.command("sanctions", room=room)
        assert listing["mutes"][0]["user"] == "troll" and listing["mutes"][0]["shadow"] is True
        await node_a.command("unmute", room=room, user="troll")
        with trio.fail_after(10):
            while True:
                await troll.send(type="danmaku", text="back", rid="m3")
                if (await troll.recv_type("result", rid="m3"))["data"].get("seq"):
                    break
        assert "back" in await alice.chat_texts(1)


async def test_sanctions_expire_everywhere_with_their_event(
    start_node: StartNode, room: str, redis_url: str
) -> None:
    node = await start_node()
    await node.command("ban", room=room, user="shorty", duration_s=1, reason="cool down")
    await node.command("refuse_grabs", room=room, user="grabby", duration_s=1)
    code, reason = await refused(node, "shorty", room)
    assert code == CloseCode.BANNED and "until" in reason
    with trio.fail_after(15):
        while True:
            try:
                async with visitor(node, "shorty", room):
                    break
            except AssertionError:
                await trio.sleep(0.2)
        while await node.command("sanctions", room=room) != {
            "room": room, "bans": [], "mutes": [], "grab_refusals": []}:  # fmt: skip
            await trio.sleep(0.2)
        while True:  # lifted in Redis too, with its event (the node that keeps the room does it)
            kinds = {(k, d["user"]) for k, d in await events(redis_url, room, "user.")}
            if {("user.unbanned", "shorty"), ("user.grabs_restored", "grabby")} <= kinds:
                break
            await trio.sleep(0.2)
    async with open_redis(redis_url) as redis:
        assert not await redis.sismember(keys.banned(room), "shorty")


async def test_global_bans_and_mutes_apply_in_every_room(
    start_node: StartNode, private: RedisProcess, room: str
) -> None:
    node_a = await start_node(redis=private.url)
    node_b = await start_node(redis=private.url)
    async with visitor(node_b, "spammer", room, ip="10.0.0.5") as spammer:
        await node_a.command("ban_global", user="spammer", reason="fraud ring")
        code, _ = await spammer.closed()
        assert code == CloseCode.BANNED
    for r in (room, room + "-2"):
        code, reason = await refused(node_b, "spammer", r)
        assert code == CloseCode.BANNED and "fraud ring" in reason
    assert [b["user"] for b in (await node_b.command("global_sanctions"))["bans"]] == ["spammer"]
    await node_b.command("unban_global", user="spammer")
    await node_a.command("mute_global", user="loud", shadow=False)
    await trio.sleep(0.5)
    async with visitor(node_b, "spammer", room + "-3"), \
            visitor(node_b, "loud", room + "-3", ip="10.0.0.6") as loud:  # fmt: skip
        await loud.send(type="danmaku", text="hi", rid=1)
        assert (await loud.recv_type("error", rid=1))["code"] == "muted"


async def test_keyword_lists_block_mask_and_flag_and_change_at_run_time(
    start_node: StartNode, private: RedisProcess, room: str
) -> None:
    node_a = await start_node(redis=private.url)
    node_b = await start_node(redis=private.url)
    await node_a.command("add_keywords", room=room, words=["cheap followers"], action="block")
    await node_a.command("add_keywords", room=room, words=["damn", "该死"], action="mask")
    await node_a.command("add_global_keywords", words=["refund"], action="flag")
    await trio.sleep(0.5)
    async with (
        visitor(node_b, "talker", room, ip="10.0.0.1") as talker,
        visitor(node_a, "reader", room, ip="10.0.0.2") as reader,
    ):
        await talker.send(type="danmaku", text="CHEAP Followers here", rid=1)
        assert (await talker.recv_type("error", rid=1))["code"] == "blocked"
        await talker.send(type="danmaku", text="damn 该死 good tea", rid=2)
        await talker.send(type="danmaku", text="I want a refund", rid=3)
        assert await reader.chat_texts(2) == ["*** *** good tea", "I want a refund"]
        flagged = await talker.recv_type("result", rid=3)
        # lists change while running, on every node, with no restart
        await node_b.command("remove_keywords", room=room, words=["damn"])
        await node_a.command("add_keywords", room=room, words=["tea"], action="mask")
        await trio.sleep(0.5)
        await talker.send(type="danmaku", text="damn good tea", rid=4)
        assert await reader.chat_texts(1) == ["damn good ***"]
        words = await node_b.command("keywords", room=room)
        assert {w["word"]: w["action"] for w in words["words"]} == {
            "cheap followers": "block", "该死": "mask", "tea": "mask"}  # fmt: skip
        assert (await node_b.command("global_keywords"))["words"] == [
            {"word": "refund", "action": "flag"}]  # fmt: skip
    found = await events(private.url, room, "danmaku.flagged")
    assert [(d["user"], d["text"], d["words"]) for _, d in found] == [
        ("talker", "I want a refund", ["refund"])]  # fmt: skip
    assert found[0][1]["msg"] == flagged["data"]["id"]
    with pytest.raises(EngineError) as exc:
        await node_a.command("add_keywords", room=room, words=["\u200b"], action="block")
    assert exc.value.code.value == "bad_field"


async def test_garbage_on_the_signal_channel_breaks_nothing(
    start_node: StartNode, private: RedisProcess, room: str
) -> None:
    node_a = await start_node(redis=private.url)
    node_b = await start_node(redis=private.url)
    async with open_redis(private.url) as redis:
        for junk in (b"", b"not json", b"[1,2]", b'{"op": "sanction", "kind": "nope"}',
                     b'{"op": "sanction", "scope": null, "kind": "ban"}', b"\xff\xfe"):  # fmt: skip
            await redis.publish(keys.AF_SIGNALS, junk)
    async with visitor(node_b, "eve", room, ip="10.0.0.9") as eve:
        await node_a.command("ban", room=room, user="eve")
        code, _ = await eve.closed()
        assert code == CloseCode.BANNED
