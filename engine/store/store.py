"""The `Store`: the only way features touch Redis. One method per script or command; every
coredis/OS error is translated here into `StoreUnavailable` (nothing above catches coredis)."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NamedTuple

import coredis
import coredis.exceptions
import msgpack
import orjson
from coredis.retry import NoRetryPolicy
from coredis.tokens import PureToken

from engine.errors import StoreUnavailable
from engine.store import keys
from engine.store.scripts import script_sources


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """The one boundary where Redis client and socket errors become ours."""
    try:
        yield
    except (coredis.exceptions.RedisError, OSError, TimeoutError) as exc:
        raise StoreUnavailable(f"redis {what}: {type(exc).__name__}: {exc}") from exc


def text(value: Any) -> str:
    """A Redis reply value as text (replies come as bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def now_ms() -> int:
    return int(time.time() * 1000)


def new_event_id() -> str:
    return uuid.uuid4().hex


Redis = coredis.Redis  # bytes in, bytes out (decode_responses=False)


@asynccontextmanager
async def open_redis(url: str, *, max_connections: int = 64) -> AsyncIterator[coredis.Redis[bytes]]:
    """An entered coredis client. No automatic command retries: a script whose reply was lost must
    not run twice behind the caller's back (callers that may retry are idempotent by design)."""
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url,
        decode_responses=False,
        retry_policy=NoRetryPolicy(),
        max_connections=max_connections,
        connect_timeout=2.0,
        stream_timeout=5.0,
    )
    with translate_errors("connect"):
        async with client:
            yield client


class Published(NamedTuple):
    epoch: str
    seq: int


def _published(reply: Any) -> Published:
    epoch, seq = reply
    return Published(epoch.decode() if isinstance(epoch, bytes) else str(epoch), int(seq))


def new_epoch() -> str:
    return secrets.token_hex(4)


Clock = Callable[[], int]  # ms since the epoch (tests pin the scripts' clock with it)


class ScriptStore:
    """What every store built on Lua scripts shares: its scripts registered once, one call
    path through `translate_errors`, the event-stream cap, and an optional pinned clock."""

    def __init__(
        self,
        redis: coredis.Redis[bytes],
        scripts: Iterable[str],
        *,
        event_maxlen: int,
        clock: Clock | None = None,
    ) -> None:
        self.redis = redis
        self._maxlen = str(event_maxlen)
        self._clock = clock
        sources = script_sources()
        self._scripts = {name: redis.register_script(sources[name]) for name in scripts}

    def sha(self, name: str) -> str:
        return str(self._scripts[name].sha)

    def _now(self) -> str:
        """The scripts' `now` argument: '' lets them read the Redis clock."""
        return "" if self._clock is None else str(self._clock())

    def now_ms(self) -> int:
        """The time as the scripts see it (near enough: Redis's clock is not read here)."""
        return now_ms() if self._clock is None else self._clock()

    async def _run(self, name: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        with translate_errors(name):
            return await self._scripts[name](keys=keys_, args=args)


class Store(ScriptStore):
    """Room state, presence and host events, all through Lua scripts (see `scripts/lua/`)."""

    def __init__(
        self,
        redis: coredis.Redis[bytes],
        *,
        event_maxlen: int = 100_000,
        history_size: int = 5000,
        history_ttl_s: float = 300.0,
    ) -> None:
        super().__init__(redis, script_sources(), event_maxlen=event_maxlen)
        self._history = [str(history_size), str(int(history_ttl_s * 1000))]

    def _publish_args(self, room: str) -> list[str]:
        """The ARGV tail every publishing script takes (see lib/room_publish.lua)."""
        return [*self._history, new_epoch()]

    async def load_scripts(self) -> None:
        """SCRIPT LOAD every script up front (also checks that Redis answers)."""
        for name, script in self._scripts.items():
            with translate_errors(f"script load {name}"):
                await self.redis.script_load(script.script)

    async def ping(self) -> bool:
        with translate_errors("ping"):
            return bool(await self.redis.ping())

    # --- bus -----------------------------------------------------------------------------

    async def publish(self, room: str, message: dict[str, Any]) -> Published:
        """Publish a room message: it gets the room's next seq and a place in the history."""
        reply = await self._run(
            "room_publish",
            [keys.meta(room), keys.history(room)],
            [keys.bus(room), msgpack.packb(message), *self._publish_args(room)],
        )
        return _published(reply)

    async def history(
        self, room: str, after: int, upto: int, limit: int = 100_000
    ) -> tuple[str | None, list[tuple[int, bytes]]]:
        """(epoch, [(seq, message)]) for seq in (after, upto], in order, as far as the history
        keeps them; the epoch is the one those seqs belong to (None: the room has none)."""
        epoch, _seq, flat = await self._run(
            "history_range", [keys.meta(room), keys.history(room)], [after, upto, limit]
        )
        entries = [
            (int(text(flat[i]).split("-")[0]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)
        ]
        return (text(epoch) if epoch else None), entries

    async def meta(self, room: str) -> Published:
        """The room's (epoch, last seq), giving it an epoch if it has none yet."""
        return _published(
            await self._run("room_meta", [keys.meta(room), keys.history(room)], [new_epoch()])
        )

    # --- room state ----------------------------------------------------------------------

    async def add_likes(self, room: str, count: int) -> int:
        return int(
            await self._run(
                "likes_add",
                [keys.state(room), keys.meta(room), keys.history(room)],
                [count, keys.bus(room), *self._publish_args(room)],
            )
        )

    async def set_state(
        self, room: str, field: str, value: Any | None, announce: dict[str, Any]
    ) -> Published:
        """Set (value not None) or clear one state field and publish `announce`, atomically."""
        packed = b"" if value is None else msgpack.packb(value)
        reply = await self._run(
            "state_set",
            [keys.state(room), keys.meta(room), keys.history(room)],
            [field, packed, keys.bus(room), msgpack.packb(announce), *self._publish_args(room)],
        )
        return _published(reply)

    async def snapshot(self, room: str) -> tuple[int, dict[str, Any]]:
        """(online count, decoded state fields) of a room."""
        online, flat = await self._run(
            "room_snapshot", [keys.state(room), keys.present(room)], [now_ms()]
        )
        state: dict[str, Any] = {}
        for i in range(0, len(flat), 2):
            field = flat[i].decode()
            state[field] = int(flat[i + 1]) if field == "likes" else msgpack.unpackb(flat[i + 1])
        return int(online), state

    async def get_state(self, room: str, field: str) -> Any | None:
        with translate_errors("hget"):
            raw = await self.redis.hget(keys.state(room), field)
        return None if raw is None else msgpack.unpackb(raw)

    # --- presence and host events --------------------------------------------------------

    def _presence_keys(self, room: str) -> list[str]:
        return [
            keys.present(room), keys.entered(room), keys.unique(room), keys.numbers(room),
            keys.events(room),
        ]  # fmt: skip

    async def enter(
        self, room: str, user: str, grace_s: float, data: dict[str, Any]
    ) -> tuple[int, bool]:
        """A connection of `user` opened: (online people, whether the person entered now, i.e.
        was not present on any node: then a viewer.entered event was written)."""
        now = now_ms()
        online, entered = await self._run(
            "presence_enter",
            self._presence_keys(room),
            [now, now + int(grace_s * 1000), user, self._maxlen, new_event_id(),
             orjson.dumps({"user": user, **data})],
        )  # fmt: skip
        return int(online), bool(entered)

    async def refresh(
        self, room: str, users: Sequence[str], grace_s: float, batch: int = 500
    ) -> tuple[int, int]:
        """Keep `users` present for another grace period and sweep who is gone (one viewer.left
        each). Returns (online people, earliest remaining deadline in ms, or 0 when nobody)."""
        reply: Any = (0, 0)
        for start in range(0, max(len(users), 1), batch):
            now = now_ms()
            reply = await self._run(
                "presence_refresh",
                self._presence_keys(room),
                [now, now + int(grace_s * 1000), self._maxlen, new_event_id(),
                 *users[start : start + batch]],
            )  # fmt: skip
        return int(reply[0]), int(reply[1])

    async def online(self, room: str) -> int:
        with translate_errors("zcount"):
            return int(await self.redis.zcount(keys.present(room), now_ms(), "+inf"))

    async def schedule_sweep(self, room: str, due_ms: int, *, earlier_only: bool = True) -> None:
        """Make sure some node sweeps the room's presence at `due_ms` (even if none serves it).
        By default a sweep already due earlier stays (the sweep reschedules what remains)."""
        with translate_errors("zadd"):
            await self.redis.zadd(
                keys.PRESENCE_DUE, {room: due_ms},
                comparison=PureToken.LT if earlier_only else None,
            )  # fmt: skip

    async def rooms_due(self, limit: int = 100) -> list[str]:
        with translate_errors("zrangebyscore"):
            rooms = await self.redis.zrange(
                keys.PRESENCE_DUE, "-inf", now_ms(), sortby=PureToken.BYSCORE, offset=0,
                count=limit,
            )  # fmt: skip
        return [text(r) for r in rooms]

    async def unschedule_sweep(self, room: str) -> None:
        with translate_errors("zrem"):
            await self.redis.zrem(keys.PRESENCE_DUE, [room])

    async def index_room(self, room: str) -> None:
        """Remember the room in the global index that event consumers scan."""
        with translate_errors("sadd"):
            await self.redis.sadd(keys.ROOMS_INDEX, [room])
