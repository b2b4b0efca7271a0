"""A Trio loop in a background thread holding one Redis client, for hypothesis tests whose
examples are plain sync functions (LIBS.md, section 5, Pattern B)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from engine.store.store import open_redis


class TrioLoop:
    def __init__(self, url: str) -> None:
        self.url = url
        self.ready = threading.Event()
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self.thread.start()
        self.ready.wait(10)

    async def _main(self) -> None:
        async with open_redis(self.url) as self.redis:
            self.token = trio.lowlevel.current_trio_token()
            self.stop = trio.Event()
            self.ready.set()
            await self.stop.wait()

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return trio.from_thread.run(fn, trio_token=self.token)

    def close(self) -> None:
        trio.from_thread.run_sync(self.stop.set, trio_token=self.token)
        self.thread.join(10)


async def aw(request: Any) -> Any:
    """Await a coredis request (they are awaitables, not coroutines)."""
    return await request
