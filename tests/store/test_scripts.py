"""Every Lua script ships with the package, states its contract, and loads into a real Redis."""

from __future__ import annotations

import pytest
import trio

from engine.store.scripts import header_of, script_sources
from engine.store.store import Store, open_redis

pytestmark = pytest.mark.integration


def test_every_script_has_a_contract_header() -> None:
    sources = script_sources()
    assert {"likes_add", "state_set", "presence_enter", "presence_refresh", "room_snapshot"} <= set(
        sources
    )
    for name, source in sources.items():
        header = " ".join(header_of(source))
        for word in ("KEYS[1]", "Returns", "Invariant"):
            assert word in header, f"{name}.lua header lacks {word}"


async def test_every_script_loads_into_redis(redis_url: str) -> None:
    async with open_redis(redis_url) as redis:
        for name, source in script_sources().items():
            sha = await redis.script_load(source)
            assert len(sha) == 40, name
        await Store(redis, event_maxlen=10).load_scripts()


async def test_scripts_are_reloaded_after_redis_forgets_them(redis_url: str, room: str) -> None:
    async with open_redis(redis_url) as redis:
        store = Store(redis, event_maxlen=10)
        assert await store.add_likes(room, 2) == 2
        await redis.script_flush()
        assert await store.add_likes(room, 3) == 5  # NOSCRIPT -> load -> retry, once


async def test_presence_counts_people_once_and_sweeps_the_gone_once(
    redis_url: str, room: str
) -> None:
    async with open_redis(redis_url) as redis:
        store = Store(redis, event_maxlen=100)
        assert await store.enter(room, "ann", 60, {}) == (1, True)
        assert await store.enter(room, "ann", 60, {}) == (1, False)  # a second tab
        assert await store.enter(room, "bob", 0.05, {}) == (2, True)
        await trio.sleep(0.1)
        online, earliest = await store.refresh(room, ["ann"], 60)  # bob was not refreshed
        assert online == 1 and earliest > 0
        online, _ = await store.refresh(room, ["ann"], 60)
        assert online == 1  # bob's leave is written once, not at every sweep
        types = [e.field_values[b"type"] for e in await redis.xrange(f"live:{{{room}}}:events")]
        assert types == [b"viewer.entered", b"viewer.entered", b"viewer.left"]
        assert await store.online(room) == 1


async def test_event_stream_is_capped(redis_url: str, room: str) -> None:
    async with open_redis(redis_url) as redis:
        store = Store(redis, event_maxlen=10)
        for i in range(300):
            await store.enter(room, f"u{i}", 60, {})
        # MAXLEN ~ trims whole macro nodes: approximately the cap, never unbounded
        assert await redis.xlen(f"live:{{{room}}}:events") < 200
