"""The room bus: every message for a room is published once to Redis pub/sub (by the publishing
scripts, as "<epoch>:<seq>:<payload>"), and every node with viewers in that room receives it.

A node subscribes to a room's channel while it has viewers there (see `fanout.rooms`). When the
subscriber connection breaks, the bus says so (`on_state(False)`), reconnects with backoff,
re-subscribes every room, and says so again (`on_state(True)`): the rooms then check their
position against Redis and fill what they missed from the history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import coredis
import structlog
import trio
from coredis.retry import NoRetryPolicy

from engine.errors import StoreUnavailable
from engine.store import keys
from engine.store.store import translate_errors

log = structlog.get_logger("engine.bus")

BusHandler = Callable[[str, str, int, bytes], None]  # room, epoch, seq, payload
StateHandler = Callable[[bool], None]

BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 5.0


def parse(data: bytes) -> tuple[str, int, bytes]:
    """ "<epoch>:<seq>:<payload>" -> (epoch, seq, payload)."""
    epoch, seq, payload = data.split(b":", 2)
    return epoch.decode(), int(seq), payload


class Subscriber:
    """A set of pub/sub channels that outlives Redis outages: when the subscriber connection
    breaks it says so (`on_state(False)`), reconnects with backoff, subscribes every channel
    again, and says so again (`on_state(True)`). `on_message(channel, data)` gets each message
    (a handler that raises is logged and does not stop the others). The room bus is one; the
    anti-fraud signals are another."""

    def __init__(
        self,
        redis: coredis.Redis[bytes],
        on_message: Callable[[bytes, bytes], None],
        on_state: StateHandler,
        *,
        name: str = "bus",
    ) -> None:
        self._redis = redis
        self._on_message = on_message
        self._on_state = on_state
        self._name = name
        self._pubsub: Any = None
        self.channels: set[str] = set()
        self.up = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Receive messages until cancelled; `started()` once first connected."""
        backoff, started = BACKOFF_START_S, False
        while True:
            try:
                async with self._redis.pubsub(
                    ignore_subscribe_messages=True, retry_policy=NoRetryPolicy()
                ) as pubsub:
                    if self.channels:
                        await pubsub.subscribe(*self.channels)
                    self._pubsub, self.up, backoff = pubsub, True, BACKOFF_START_S
                    if started:
                        log.info(f"{self._name} reconnected", channels=len(self.channels))
                        self._on_state(True)
                    else:
                        started = True
                        task_status.started()
                    await self._receive(pubsub)
            except Exception as exc:  # the subscriber connection failed: degrade, retry
                if not started:
                    raise StoreUnavailable(f"redis pubsub: {exc!r}") from exc
                self._pubsub = None
                if self.up:
                    self.up = False
                    log.warning(f"{self._name} lost redis", error=repr(exc))
                    self._on_state(False)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _receive(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message()
            if message is None or message["type"] != "message":
                continue
            try:
                self._on_message(message["channel"], message["data"])
            except Exception:  # one bad message must not stop the node's subscriber
                log.exception(f"{self._name} message handler failed")

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        if self._pubsub is None:
            raise StoreUnavailable("redis pubsub is reconnecting")
        with translate_errors("subscribe"):
            await self._pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        if self._pubsub is not None:
            with translate_errors("unsubscribe"):
                await self._pubsub.unsubscribe(channel)


class Bus:
    """The rooms' channels on a `Subscriber`: one channel per room with local viewers."""

    def __init__(
        self, redis: coredis.Redis[bytes], on_message: BusHandler, on_state: StateHandler
    ) -> None:
        self._on_room_message = on_message
        self._subscriber = Subscriber(redis, self._deliver, on_state, name="bus")
        self._rooms_by_channel: dict[bytes, str] = {}

    @property
    def up(self) -> bool:
        return self._subscriber.up

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Receive room messages until cancelled; `started()` once first connected."""
        await self._subscriber.run(task_status=task_status)

    def _deliver(self, channel: bytes, data: bytes) -> None:
        rooms = self._rooms_by_channel
        room = rooms.get(channel)
        if room is None:
            room = rooms[channel] = keys.room_of(channel)
        try:
            epoch, seq, payload = parse(data)
            self._on_room_message(room, epoch, seq, payload)
        except Exception:  # one bad message must not stop the node's bus
            log.exception("bus message handler failed", room=room)

    async def subscribe(self, room: str) -> None:
        await self._subscriber.subscribe(keys.bus(room))

    async def unsubscribe(self, room: str) -> None:
        self._rooms_by_channel.pop(keys.bus(room).encode(), None)
        await self._subscriber.unsubscribe(keys.bus(room))
