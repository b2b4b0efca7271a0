"""`engine run --workers 2`: real node processes sharing one port under a supervisor."""

from __future__ import annotations

import io
import itertools
import os
import signal
import socket
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import psutil
import pytest
import trio
from trio_websocket import ConnectionClosed

from engine.cli import main
from engine.config import Config
from engine.identity import mint_token
from engine.store import keys
from engine.store.devredis import free_port
from engine.store.store import now_ms
from engine.supervisor import worker_count
from tests.conftest import StartEngine
from tests.support import KEYS, TOKEN_KEYS, viewer

pytestmark = pytest.mark.integration


def pid_of(node_id: str) -> int:
    return int(node_id.rsplit("-", 2)[1])  # node ids are host-pid-random


async def test_two_workers_share_the_port_and_a_killed_one_is_replaced(
    nursery: trio.Nursery, start_engine: StartEngine, redis_url: str, room: str, tmp_path: Path
) -> None:
    ws_port, http_port = free_port(), free_port()
    args = [sys.executable, "-m", "engine.cli", "run", "--workers", "2", "--redis-url", redis_url,
            "--ws-port", str(ws_port), "--http-port", "0", "--token-keys", TOKEN_KEYS,
            "--chat-tick-ms", "20", "--log-level", "warning", "--data-dir", str(tmp_path),
            "--presence-grace-s", "1", "--presence-refresh-s", "0.2",
            "--limit-join", "off"]  # fmt: skip
    supervisor = await nursery.start(
        lambda task_status: trio.run_process(
            args, check=False, stdout=subprocess.DEVNULL, task_status=task_status
        )
    )
    del http_port
    url = f"ws://127.0.0.1:{ws_port}/v1/ws"
    talker_node = await start_engine()  # a third node, outside the supervisor, for the talker
    with trio.fail_after(20):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", ws_port)
                await stream.aclose()
                break
            except OSError:
                await trio.sleep(0.1)
    nodes: set[str] = set()
    with trio.fail_after(30):
        for probe in itertools.count():  # the kernel spreads connections over both workers
            async with viewer(url, mint_token(KEYS, user=f"probe{probe}", room=room)) as v:
                nodes.add(v.welcome["node"])  # type: ignore[attr-defined]
            if len(nodes) == 2:
                break
    store = talker_node._running().store
    async with viewer(talker_node.address.ws_url, talker_node.mint_token("talker", room)) as talker:  # type: ignore[union-attr]
        async with (
            viewer(url, mint_token(KEYS, user="phone", room=room)) as phone,
            AsyncExitStack() as ghosts,
        ):
            await talker.send(type="danmaku", text="one")
            assert await phone.chat_texts(1) == ["one"]
            victim = pid_of(phone.welcome["node"])  # type: ignore[attr-defined]
            on_victim: list[str] = []
            for i in range(8):  # viewers that will not come back when their node dies
                g = await ghosts.enter_async_context(
                    viewer(url, mint_token(KEYS, user=f"g{i}", room=room))
                )
                if pid_of(g.welcome["node"]) == victim:  # type: ignore[attr-defined]
                    on_victim.append(f"g{i}")
            with trio.fail_after(15):  # talker, phone, 8 ghosts (the probes' grace runs out)
                while await store.online(room) != 10:
                    await trio.sleep(0.1)
            os.kill(victim, signal.SIGKILL)
            with pytest.raises(ConnectionClosed):
                while True:
                    await phone.recv(timeout=10)
            since, epoch = phone.last_seq, phone.epoch
        await talker.send(type="danmaku", text="two")  # sent while the phone is away
        with trio.fail_after(20):  # the phone comes back, to whichever worker the kernel picks
            while True:
                try:
                    async with viewer(url, mint_token(KEYS, user="phone", room=room),
                                      since=since, epoch=epoch) as back:  # fmt: skip
                        assert back.welcome["recovery"] == "resumed"  # type: ignore[attr-defined]
                        await talker.send(type="danmaku", text="three")
                        assert await back.chat_texts(2) == ["two", "three"]
                        break
                except (OSError, ConnectionClosed):
                    await trio.sleep(0.2)
    with trio.fail_after(10):  # the dead node's viewers who did not come back drop out
        # (checked per person: the others left too, each present for its grace period, so a
        # count would only match in a window that a busy machine can miss)
        while True:
            deadlines = [await store.redis.zscore(keys.present(room), u) for u in on_victim]
            if all(d is None or d < now_ms() for d in deadlines):
                break
            await trio.sleep(0.1)
    with trio.fail_after(20):  # the supervisor replaced the dead worker
        while True:
            workers = psutil.Process(supervisor.pid).children()
            if len(workers) == 2 and victim not in {w.pid for w in workers}:
                break
            await trio.sleep(0.2)
    supervisor.send_signal(signal.SIGTERM)
    with trio.fail_after(20):
        assert await supervisor.wait() == 0
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def test_workers_default_to_one_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Config().workers == 0  # the default: `engine run` (and `make run`) takes every core
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert worker_count(Config()) == 7
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one
    assert worker_count(Config()) == 1
    assert worker_count(Config(workers=3)) == 3
    assert worker_count(Config.from_env({"ENGINE_WORKERS": "1"})) == 1


def _free_port_pair() -> int:
    """A free port whose successor is free too (the second worker's HTTP port)."""
    while True:
        port = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port


async def test_make_run_starts_one_worker_per_core(tmp_path: Path) -> None:
    """`engine run --dev` as `make run` runs it (private redis-server, no --workers): one node
    per core, the viewer URL and the dev-token command printed, a dev token accepted."""
    count = worker_count(Config())
    ws_port, http_port = free_port(), _free_port_pair()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    args = [sys.executable, "-m", "engine.cli", "run", "--dev", "--data-dir", str(tmp_path),
            "--ws-port", str(ws_port), "--http-port", str(http_port),
            "--log-level", "warning"]  # fmt: skip
    proc = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        text = ""
        with trio.fail_after(60):  # the supervisor's banner, then each worker's
            while text.count(" is up\n") < count or not text.endswith("\n"):
                chunk = await proc.stdout.receive_some(4096)
                assert chunk, f"engine run exited early: {text}"
                text += chunk.decode()
        url = f"ws://127.0.0.1:{ws_port}/v1/ws"
        if count > 1:
            assert text.startswith(f"engine: {count} worker processes sharing one viewer port")
        assert f"viewer WebSocket: {url}?token=<JWT>" in text.splitlines()[1]
        assert "dev token:        .venv/bin/engine token --dev --user alice --room demo" in text
        nodes: set[str] = set()
        with trio.fail_after(30):
            for probe in itertools.count():  # the kernel spreads connections over the workers
                minted = io.StringIO()
                assert main(["token", "--dev", "--data-dir", str(tmp_path), "--user",
                             f"alice{probe}", "--room", "demo"], out=minted) == 0  # fmt: skip
                async with viewer(url, minted.getvalue().strip()) as v:
                    nodes.add(v.welcome["node"])  # type: ignore[attr-defined]
                if len(nodes) == count:
                    break
    finally:
        proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(20):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
