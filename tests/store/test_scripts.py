"""Every Lua script ships with the package, states its contract, and loads into a real Redis."""

from __future__ import annotations

import pytest

from engine.store.scripts import header_of, script_sources
from engine.store.store import Store, open_redis

pytestmark = pytest.mark.integration


def test_every_script_has_a_contract_header() -> None:
    sources = script_sources()
    assert {"likes_add", "state_set", "presence_join", "presence_leave", "room_snapshot"} <= set(
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


async def test_presence_counts_per_node_and_never_below_zero(redis_url: str, room: str) -> None:
    async with open_redis(redis_url) as redis:
        store = Store(redis, event_maxlen=10)
        assert await store.presence(room, "n1", joined=True, data={}) == 1
        assert await store.presence(room, "n2", joined=True, data={}) == 2
        assert await store.presence(room, "n1", joined=False, data={}) == 1
        assert await store.presence(room, "n1", joined=False, data={}) == 1  # stray leave
        assert await store.online(room) == 1
        assert await redis.xlen(f"live:{{{room}}}:events") == 4


async def test_event_stream_is_capped(redis_url: str, room: str) -> None:
    async with open_redis(redis_url) as redis:
        store = Store(redis, event_maxlen=10)
        for _ in range(300):
            await store.presence(room, "n", joined=True, data={})
        # MAXLEN ~ trims whole macro nodes: approximately the cap, never unbounded
        assert await redis.xlen(f"live:{{{room}}}:events") < 200
