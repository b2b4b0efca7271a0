from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from engine import Engine
from tests.support import KEYS, RedisProcess, engine_config


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    return redis_server.url


@pytest.fixture
def room() -> str:
    """A fresh room id per test: tests share one redis-server."""
    return f"room-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def keys() -> dict[str, bytes]:
    return KEYS


StartEngine = Callable[..., Awaitable[Engine]]


@pytest.fixture
def start_engine(nursery: trio.Nursery, redis_url: str, tmp_path: Path) -> StartEngine:
    """Start an engine node in the test's nursery (stopped when the test ends)."""

    async def start(**overrides: Any) -> Engine:
        engine = Engine(engine_config(redis_url, tmp_path, **overrides))
        await nursery.start(engine.serve)
        return engine

    return start
