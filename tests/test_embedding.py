"""A host embeds the engine in its own Trio program: start with nursery.start, stop with one
cancel. Nothing is left running and nothing acknowledged is lost."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest
import trio

from engine import Config, Engine
from engine.events.consumer import EventConsumer
from engine.store.store import open_redis
from tests.support import TOKEN_KEYS, viewer

pytestmark = pytest.mark.integration


async def test_embedded_engine_runs_in_the_hosts_nursery_and_stops_with_one_cancel(
    tmp_path: Path, redis_url: str, room: str
) -> None:
    config = Config(redis_url=redis_url, ws_port=0, http_port=0, token_keys=TOKEN_KEYS,
                    data_dir=str(tmp_path), chat_tick_ms=20, presence_grace_s=0.5)  # fmt: skip
    engine = Engine(config)
    with trio.fail_after(10):
        async with trio.open_nursery() as host:
            address = await host.start(engine.serve)
            async with viewer(address.ws_url, engine.mint_token("h", room)) as v:
                await engine.push_popup(room, "notice", {"text": "hello from the host"})
                assert (await v.recv_type("popup"))["popup"]["data"][
                    "text"
                ] == "hello from the host"
                await v.send(type="like", count=3)
                await trio.sleep(0.05)
                host.cancel_scope.cancel()  # the whole shutdown: one cancel
    assert engine.address is None and engine.stats.connections == 0
    async with open_redis(redis_url) as redis:
        assert int(await redis.hget(f"live:{{{room}}}:state", "likes")) == 3  # likes not lost
        # the viewer's leave is due after the presence grace; with no node left to sweep, the
        # next node to run (any room, any time later) writes it: nothing is lost
        await trio.sleep(0.6)
        async with trio.open_nursery() as later:
            await later.start(Engine(config).serve)
            consumer = EventConsumer(redis, "g", "c", rooms=[room], block_ms=100)
            types = []
            with trio.move_on_after(3):
                async for event in consumer:
                    types.append(event.type)
                    if len(types) == 2:
                        break
            later.cancel_scope.cancel()
        assert types == ["viewer.entered", "viewer.left"]


async def test_without_a_redis_url_it_runs_a_private_redis_server_and_stops_it(
    tmp_path: Path, room: str
) -> None:
    config = Config(redis_url="", ws_port=0, http_port=0, token_keys=TOKEN_KEYS,
                    data_dir=str(tmp_path / "var"))  # fmt: skip
    engine = Engine(config)
    with trio.fail_after(20):
        async with trio.open_nursery() as host:
            address = await host.start(engine.serve)
            port = address.redis_url.rsplit(":", 1)[1].split("/")[0]
            (server,) = [
                p for p in psutil.Process().children()
                if p.name() == "redis-server" and port in " ".join(p.cmdline())
            ]  # fmt: skip
            assert (tmp_path / "var" / "redis").is_dir()
            async with viewer(address.ws_url, engine.mint_token("u", room)):
                pass
            async with httpx.AsyncClient() as http:
                health = (await http.get(f"{address.http_url}/healthz")).json()
            assert health["ok"] is True
            host.cancel_scope.cancel()
    assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
