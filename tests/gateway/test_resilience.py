"""Nodes draining, Redis going away and coming back: viewers survive and nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from engine import Engine
from tests.conftest import StartEngine
from tests.support import RedisProcess, Viewer, engine_config, viewer

pytestmark = pytest.mark.integration


def task_names() -> list[str]:
    names: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        names.append(task.name)
        for n in task.child_nurseries:
            for t in n.child_tasks:
                walk(t)

    walk(trio.lowlevel.current_root_task())
    return sorted(names)


async def talk(talker: Viewer, texts: list[str], every_s: float = 0.0) -> None:
    for i, text in enumerate(texts):
        await talker.send(type="danmaku", text=text, rid=f"{text}-{i}")
        await talker.recv_type("result", rid=f"{text}-{i}")
        await trio.sleep(every_s)


async def test_a_draining_node_sends_viewers_to_another_that_resumes_them_without_a_gap(
    start_engine: StartEngine, room: str
) -> None:
    node_a, node_b = await start_engine(), await start_engine()
    url_a, url_b = node_a.address.ws_url, node_b.address.ws_url  # type: ignore[union-attr]
    texts = [f"m{i:03d}" for i in range(60)]
    async with viewer(url_b, node_b.mint_token("talker", room)) as talker:
        async with viewer(url_a, node_a.mint_token("phone", room)) as phone:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(talk, talker, texts, 0.01)
                await phone.chat_texts(10)
                nursery.start_soon(node_a.drain)  # what SIGTERM does
                code, reason = await phone.closed()
                assert code == 1001 and reason.startswith("shutting_down")
                received = [
                    m["text"] for f in phone.seen if f.get("type") == "chat" for m in f["msgs"]
                ]
                since, epoch = phone.last_seq, phone.epoch
                # node A no longer takes viewers; the phone resumes on node B
                async with viewer(
                    url_b, node_b.mint_token("phone", room), since=since, epoch=epoch
                ) as back:
                    assert back.welcome["recovery"] == "resumed"  # type: ignore[attr-defined]
                    rest = await back.chat_texts(len(texts) - len(received), timeout=20)
            assert received + rest == texts  # nothing lost, nothing twice, in order
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", node_a.address.ws_port)  # type: ignore[union-attr]


async def test_redis_killed_and_restarted_with_persistence_viewers_get_everything(
    nursery: trio.Nursery, tmp_path: Path, room: str
) -> None:
    # fsync every write: with the default everysec a crash may lose the last second, which
    # changes the epoch and makes a resync (tested in test_resume.py)
    redis = RedisProcess(persistent=True, extra=("--appendfsync", "always"))
    redis.start()
    try:
        node_a = Engine(engine_config(redis.url, tmp_path, heartbeat_interval_s=1))
        node_b = Engine(engine_config(redis.url, tmp_path, heartbeat_interval_s=1))
        await nursery.start(node_a.serve)
        await nursery.start(node_b.serve)
        url_a, url_b = node_a.address.ws_url, node_b.address.ws_url  # type: ignore[union-attr]
        async with (
            viewer(url_a, node_a.mint_token("talker", room)) as talker,
            viewer(url_b, node_b.mint_token("watcher", room)) as watcher,
        ):
            await talk(talker, ["before"])
            assert await watcher.chat_texts(1) == ["before"]
            epoch = watcher.epoch
            tasks_before = task_names()
            redis.kill()
            assert (await watcher.recv_type("status", timeout=10))["degraded"] is True
            # while Redis is away a danmaku is refused with a clear code, never lost silently
            await talker.send(type="danmaku", text="lost?", rid="x")
            assert (await talker.recv_type("error", rid="x"))["code"] == "unavailable"
            redis.start_on_same_port()
            status = await watcher.recv_type("status", timeout=20)
            assert status["degraded"] is False
            await talk(talker, ["after-1", "after-2"])
            assert await watcher.chat_texts(2, timeout=10) == ["after-1", "after-2"]
            assert watcher.epoch == epoch  # the history survived: no resync
            assert not any(f.get("type") == "resync" for f in watcher.seen)
            await trio.sleep(1.0)  # retries and fills have finished
            after = task_names()
            extra = [t for t in set(after) if after.count(t) > tasks_before.count(t)]
            # nothing of ours left behind by the outage (the Redis client's pool may hold a
            # few more idle connections than before: it is bounded by max_connections)
            assert not [t for t in extra if not t.startswith("coredis.")], extra
        assert node_a.address is not None and node_b.address is not None  # both alive
    finally:
        redis.stop()
