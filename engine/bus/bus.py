"""The room bus: every message for a room is published once to Redis pub/sub, and every node
with viewers in that room receives it and delivers it to its local viewers.

A node subscribes to a room's channel while it has viewers there (see `fanout.rooms`). coredis's
PubSub reconnects and re-subscribes by itself after a Redis outage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import coredis
import structlog
import trio

from engine.store import keys
from engine.store.store import translate_errors

log = structlog.get_logger("engine.bus")

BusHandler = Callable[[str, bytes], None]


class Bus:
    def __init__(self, redis: coredis.Redis[bytes], on_message: BusHandler) -> None:
        self._redis = redis
        self._on_message = on_message
        self._pubsub: Any = None
        self._rooms_by_channel: dict[bytes, str] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Receive room messages until cancelled; `started()` once the subscriber is connected."""
        with translate_errors("pubsub"):
            async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                self._pubsub = pubsub
                task_status.started()
                try:
                    await self._receive(pubsub)
                finally:
                    self._pubsub = None

    async def _receive(self, pubsub: Any) -> None:
        rooms = self._rooms_by_channel
        while True:
            message = await pubsub.get_message()
            if message is None or message["type"] != "message":
                continue
            channel = message["channel"]
            room = rooms.get(channel)
            if room is None:
                room = rooms[channel] = keys.room_of(channel)
            try:
                self._on_message(room, message["data"])
            except Exception:  # one bad message must not stop the node's bus
                log.exception("bus message handler failed", room=room)

    async def subscribe(self, room: str) -> None:
        with translate_errors("subscribe"):
            await self._require().subscribe(keys.bus(room))

    async def unsubscribe(self, room: str) -> None:
        with translate_errors("unsubscribe"):
            await self._require().unsubscribe(keys.bus(room))
        self._rooms_by_channel.pop(keys.bus(room).encode(), None)

    def _require(self) -> Any:
        if self._pubsub is None:
            raise RuntimeError("the bus is not running")
        return self._pubsub
