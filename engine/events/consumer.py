"""Reading the host event stream: a helper for hosts written in Python (others follow the same
recipe in docs/integration.md with any Redis client).

Every fact the host must act on is an entry in its room's stream `live:{room}:events` with fields
`id` (unique: the idempotency key), `type`, `ts` (ms) and `data` (JSON). `EventConsumer` reads all
rooms with one consumer group, at least once: an event is delivered again until it is acked, to
this consumer after a restart (same consumer name) or to another consumer of the group once it
has been pending longer than `claim_idle_ms` (a consumer that died).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import coredis
import coredis.exceptions
import orjson
import trio

from engine.store import keys
from engine.store.store import text, translate_errors


@dataclass(frozen=True, slots=True)
class HostEvent:
    room: str
    stream_id: str  # position in the room's stream (what XACK takes)
    id: str  # unique event id: use it as the idempotency key
    type: str
    ts: int
    data: dict[str, Any]


def parse_entry(room: str, entry: Any) -> HostEvent | None:
    """A stream entry as a HostEvent; None for an entry trimmed away while pending."""
    fields = entry.field_values
    if not fields:
        return None
    get = {text(k): v for k, v in fields.items()}.get
    return HostEvent(
        room=room,
        stream_id=text(entry.identifier),
        id=text(get("id", b"")),
        type=text(get("type", b"")),
        ts=int(get("ts", 0)),
        data=orjson.loads(get("data", b"{}")),
    )


class EventConsumer:
    def __init__(
        self,
        redis: coredis.Redis[Any],
        group: str,
        consumer: str,
        *,
        rooms: Sequence[str] | None = None,
        start: str = "0",
        count: int = 100,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
        refresh_rooms_s: float = 2.0,
    ) -> None:
        """`rooms`: a fixed list, or None for every room in the engine's room index.
        `start`: where a new group starts in an existing stream ("0": all that is kept)."""
        self._redis = redis
        self.group = group
        self.consumer = consumer
        self._fixed_rooms = list(rooms) if rooms is not None else None
        self._start = start
        self._count = count
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._refresh_s = refresh_rooms_s
        self._streams: dict[str, str] = {}  # stream key -> room

    async def __aiter__(self) -> AsyncIterator[HostEvent]:
        await self._refresh_rooms()
        async for event in self._read_all(self._streams, "0"):  # ours from before a crash
            yield event
        next_refresh = trio.current_time() + self._refresh_s
        while True:
            if trio.current_time() >= next_refresh:
                await self._refresh_rooms()
                for event in await self._claim_stale():
                    yield event
                next_refresh = trio.current_time() + self._refresh_s
            if not self._streams:
                await trio.sleep(self._refresh_s)
                continue
            for event in await self._read(dict.fromkeys(self._streams, ">"), block=True):
                yield event

    async def ack(self, *events: HostEvent) -> int:
        done = 0
        for event in events:
            with translate_errors("xack"):
                done += await self._redis.xack(
                    keys.events(event.room), self.group, [event.stream_id]
                )
        return done

    async def _read_all(self, streams: dict[str, str], start: str) -> AsyncIterator[HostEvent]:
        """Page through this consumer's pending entries of every stream."""
        cursors = dict.fromkeys(streams, start)
        while cursors:
            batch = await self._read(cursors, block=False)
            for event in batch:
                yield event
            seen: dict[str, str] = {}
            for event in batch:
                seen[keys.events(event.room)] = event.stream_id
            cursors = seen

    async def _read(self, streams: dict[str, str], *, block: bool) -> list[HostEvent]:
        with translate_errors("xreadgroup"):
            reply = await self._redis.xreadgroup(
                self.group,
                self.consumer,
                streams=streams,
                count=self._count,
                block=self._block_ms if block else None,
            )
        return await self._events(reply or {})

    async def _events(self, reply: Mapping[Any, Iterable[Any]]) -> list[HostEvent]:
        out: list[HostEvent] = []
        for key, entries in reply.items():
            room = self._streams.get(text(key)) or keys.room_of(text(key))
            for entry in entries:
                event = parse_entry(room, entry)
                if event is None:  # trimmed while pending: nothing left to deliver
                    with translate_errors("xack"):
                        await self._redis.xack(text(key), self.group, [entry.identifier])
                    continue
                out.append(event)
        return out

    async def _claim_stale(self) -> list[HostEvent]:
        """Take over entries another consumer of the group fetched long ago and never acked."""
        out: list[HostEvent] = []
        for key, room in self._streams.items():
            with translate_errors("xautoclaim"):
                reply = await self._redis.xautoclaim(
                    key, self.group, self.consumer, self._claim_idle_ms, "0-0", count=self._count
                )
            for entry in reply[1]:
                event = parse_entry(room, entry)
                if event is not None:
                    out.append(event)
        return out

    async def _refresh_rooms(self) -> None:
        if self._fixed_rooms is not None:
            rooms = self._fixed_rooms
        else:
            with translate_errors("smembers"):
                rooms = sorted(text(r) for r in await self._redis.smembers(keys.ROOMS_INDEX))
        for room in rooms:
            key = keys.events(room)
            if key not in self._streams:
                await self._ensure_group(key)
                self._streams[key] = room

    async def _ensure_group(self, key: str) -> None:
        with translate_errors("xgroup create"):
            try:
                await self._redis.xgroup_create(key, self.group, self._start, mkstream=True)
            except coredis.exceptions.StreamDuplicateConsumerGroupError:
                pass  # the group exists already


async def tail(
    redis: coredis.Redis[Any], rooms: Sequence[str], *, from_start: bool = False
) -> AsyncIterator[HostEvent]:
    """Follow rooms' events without a group (nothing is acked; for watching, not for acting)."""
    cursors = {keys.events(room): ("0" if from_start else "$") for room in rooms}
    by_key = {keys.events(room): room for room in rooms}
    while True:
        with translate_errors("xread"):
            reply = await redis.xread(cursors, count=100, block=1000)
        for key, entries in (reply or {}).items():
            for entry in entries:
                cursors[text(key)] = text(entry.identifier)
                event = parse_entry(by_key[text(key)], entry)
                if event is not None:
                    yield event
