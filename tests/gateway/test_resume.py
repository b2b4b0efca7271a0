"""Resume after a disconnect: on any node, exactly the missed messages, in order, or `resync`."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from engine import Engine
from tests.conftest import StartEngine
from tests.support import RedisProcess, Viewer, engine_config, viewer

pytestmark = pytest.mark.integration


def chat_texts(frames: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for f in frames if f.get("type") == "chat" for m in f["msgs"]]


async def send_and_confirm(talker: Viewer, texts: list[str]) -> None:
    for i, text in enumerate(texts):
        await talker.send(type="danmaku", text=text, rid=f"{text}-{i}")
        await talker.recv_type("result", rid=f"{text}-{i}")


async def test_resume_on_the_other_node_gets_exactly_what_was_missed(
    start_engine: StartEngine, room: str
) -> None:
    node_a, node_b = await start_engine(), await start_engine()
    url_a, url_b = node_a.address.ws_url, node_b.address.ws_url  # type: ignore[union-attr]
    async with viewer(url_b, node_b.mint_token("talker", room)) as talker:
        async with viewer(url_a, node_a.mint_token("phone", room)) as phone:
            await send_and_confirm(talker, ["before-1", "before-2"])
            assert await phone.chat_texts(2) == ["before-1", "before-2"]
            await node_a.push_popup(room, "product", {"name": "Tea"})
            await phone.recv_type("popup")
            since, epoch = phone.last_seq, phone.epoch
        # the phone is offline; the room goes on
        await send_and_confirm(talker, [f"gap-{i}" for i in range(5)])
        await node_b.push_popup(room, "coupon", {"value": 5})
        sent_before = node_b.stats.frames_sent
        async with viewer(
            url_b, node_b.mint_token("phone", room), since=since, epoch=epoch
        ) as back:
            assert back.welcome["recovery"] == "resumed"  # type: ignore[attr-defined]
            # the welcome and the replay (5 danmaku, 1 popup) count as frames sent
            assert node_b.stats.frames_sent - sent_before >= 1 + 6
            await send_and_confirm(talker, ["after-1"])
            texts = await back.chat_texts(6)
            assert texts == [f"gap-{i}" for i in range(5)] + ["after-1"]
            popups = [f["popup"]["kind"] for f in back.seen if f.get("type") == "popup"]
            assert popups == ["coupon"]  # the one it missed, not the one it had
            seqs = [f["seq"] for f in back.seen if "seq" in f and f["type"] != "welcome"]
            assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
            assert seqs[0] == since + 1


async def test_resume_from_too_far_back_is_told_to_resync(
    start_engine: StartEngine, room: str
) -> None:
    node = await start_engine(history_size=5, replay_cache_size=5)
    url = node.address.ws_url  # type: ignore[union-attr]
    async with viewer(url, node.mint_token("talker", room)) as talker:
        async with viewer(url, node.mint_token("phone", room)) as phone:
            since, epoch = phone.last_seq, phone.epoch
        await send_and_confirm(talker, [f"m{i}" for i in range(300)])
        async with viewer(url, node.mint_token("phone", room), since=since, epoch=epoch) as back:
            assert back.welcome["recovery"] == "resync"  # type: ignore[attr-defined]
            assert back.welcome["reason"] == "too_old"  # type: ignore[attr-defined]
            position = back.welcome["seq"]  # type: ignore[attr-defined]
            assert position > 250  # where the room is now: it starts over from there
            await send_and_confirm(talker, ["live"])
            texts = await back.chat_texts(300 - position + 1)
            assert texts == [f"m{i}" for i in range(position, 300)] + ["live"]
        # the room now knows that position is too old: more phones asking for it cost no read
        store = node._services.store  # type: ignore[union-attr]
        reads = []
        history = store.history

        async def counted(*args: object, **kwargs: object) -> object:
            reads.append(args)
            return await history(*args, **kwargs)

        store.history = counted
        for _ in range(3):
            async with viewer(url, node.mint_token("phone", room), since=since,
                              epoch=epoch) as again:  # fmt: skip
                assert again.welcome["recovery"] == "resync"  # type: ignore[attr-defined]
        assert reads == []


async def test_a_position_from_another_epoch_is_told_to_resync(
    start_engine: StartEngine, room: str
) -> None:
    node = await start_engine()
    url = node.address.ws_url  # type: ignore[union-attr]
    async with viewer(url, node.mint_token("v", room), since=3, epoch="not-this-one") as v:
        assert v.welcome["recovery"] == "resync"  # type: ignore[attr-defined]
        assert v.welcome["reason"] == "epoch_changed"  # type: ignore[attr-defined]
    async with viewer(url, node.mint_token("v", room)) as fresh:
        assert fresh.welcome["recovery"] == "fresh" and fresh.welcome["epoch"]  # type: ignore[attr-defined]


async def test_redis_restart_without_persistence_changes_the_epoch(
    nursery: trio.Nursery, tmp_path: Any, room: str
) -> None:
    redis = RedisProcess()
    redis.start()
    try:
        node = Engine(engine_config(redis.url, tmp_path))
        await nursery.start(node.serve)
        url = node.address.ws_url  # type: ignore[union-attr]
        async with (
            viewer(url, node.mint_token("talker", room)) as talker,
            viewer(url, node.mint_token("watcher", room)) as watcher,
        ):
            await send_and_confirm(talker, ["one", "two"])
            assert await watcher.chat_texts(2) == ["one", "two"]
            old_epoch, old_seq = watcher.epoch, watcher.last_seq
            redis.stop()  # all history gone
            await trio.sleep(0.3)
            assert (await watcher.recv_type("status"))["degraded"] is True
            redis.start_on_same_port()
            # viewers stayed connected; the node noticed the new epoch and says so
            resync = await watcher.recv_type("resync", timeout=15)
            assert resync["epoch"] != old_epoch and resync["reason"] == "epoch_changed"
            with trio.fail_after(15):
                while True:
                    try:
                        await talker.send(type="danmaku", text="three", rid="r3")
                        reply = await talker.recv_type("result", rid="r3")
                        if reply["ok"]:
                            break
                    except trio.TooSlowError:
                        pass
            assert "three" in await watcher.chat_texts(1, timeout=10)
        async with viewer(
            url, node.mint_token("late", room), since=old_seq, epoch=old_epoch
        ) as late:
            assert late.welcome["recovery"] == "resync"  # type: ignore[attr-defined]
    finally:
        redis.stop()
