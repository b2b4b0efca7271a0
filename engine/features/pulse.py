"""Live numbers of a room, and the node's once-a-second pulse that feeds them.

Danmaku are counted per room in the node's memory as they are sent (a dict increment, nothing on
the hot path touches Redis for it). Once a second, for every room the node serves, the pulse
makes one script call (`numbers_tick.lua`) that adds this node's count to the room's per-second
ring, raises the peak to the current online count (summed over nodes), and answers whether the
room is in rehearsal, so the node closes its non-staff viewers there.

`LiveNumbers.read` gives online, peak, likes, the danmaku rate (messages per second over the last
RATE_WINDOW_S whole seconds) and total, plus what feature sources add (e.g. running sales).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
import trio

from engine.errors import StoreUnavailable
from engine.store.rooms import RoomStore
from engine.store.seckill import SeckillStore
from engine.store.store import now_ms

log = structlog.get_logger("engine.pulse")

RATE_WINDOW_S = 5
REPORTS_IN_FLIGHT = 16
NumbersSource = Callable[[str], Awaitable[dict[str, Any]]]


class RoomPulse:
    def __init__(
        self,
        rooms: RoomStore,
        *,
        serving: Callable[[], Iterable[str]],
        take_sent: Callable[[], dict[str, int]],
        on_rehearsal: Callable[[str, bool], object],
        interval_s: float = 1.0,
    ) -> None:
        self._rooms = rooms
        self._serving = serving  # ids of the rooms with viewers on this node
        self._take_sent = take_sent  # danmaku per room since the last call
        self._on_rehearsal = on_rehearsal  # (room, rehearsal on?): enforce it on this node
        self._interval = interval_s
        self._unsent: dict[str, int] = {}
        self._limiter = trio.CapacityLimiter(REPORTS_IN_FLIGHT)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self._interval)
            await self.beat()

    async def beat(self) -> None:
        counts = self._unsent
        for room, n in self._take_sent().items():
            counts[room] = counts.get(room, 0) + n
        self._unsent = {}
        now_s = int(time.time())
        async with trio.open_nursery() as nursery:  # a few reports in flight, not one by one
            for room in set(self._serving()) | set(counts):
                nursery.start_soon(self._report, room, now_s, counts.get(room, 0))

    async def _report(self, room: str, now_s: int, sent: int) -> None:
        async with self._limiter:
            try:
                _online, _peak, rehearsal = await self._rooms.numbers_tick(room, now_s, sent)
            except StoreUnavailable as exc:
                log.warning("live numbers not reported", room=room, error=str(exc))
                if sent:  # counted again with the next beat
                    self._unsent[room] = self._unsent.get(room, 0) + sent
                return
        self._on_rehearsal(room, rehearsal)


class LiveNumbers:
    def __init__(self, rooms: RoomStore, *, window_s: int = RATE_WINDOW_S) -> None:
        self._rooms = rooms
        self._window = window_s
        self._sources: dict[str, NumbersSource] = {}

    def add_source(self, name: str, source: NumbersSource) -> None:
        """A feature's numbers (a dict merged into every read), e.g. running flash sales."""
        if name in self._sources:
            raise ValueError(f"numbers source {name!r} exists already")
        self._sources[name] = source

    async def read(self, room: str) -> dict[str, Any]:
        online, peak, likes, recent, total = await self._rooms.numbers(
            room, int(time.time()), self._window
        )
        numbers: dict[str, Any] = {
            "room": room,
            "online": online,
            "peak": peak,
            "likes": likes,
            "danmaku_per_s": round(recent / self._window, 2),
            "danmaku_total": total,
            "sales": [],
            "ts": now_ms(),
        }
        for source in self._sources.values():
            numbers.update(await source(room))
        return numbers


def sales_source(seckill: SeckillStore) -> NumbersSource:
    """`sales`: the room's flash sales that have not closed yet, with stock left and grabs."""

    async def sales(room: str) -> dict[str, Any]:
        now, out = now_ms(), []
        for sale in await seckill.room_sales(room):
            info = await seckill.sale_info(room, sale)
            if info.get("state") != "live" or _int(info, "end") <= now:
                continue
            out.append({
                "sale": sale, "product": info.get("product"),
                "status": "live" if _int(info, "start") <= now else "upcoming",
                "stock": _int(info, "stock"), "left": _int(info, "left"),
                "held": _int(info, "held"), "sold": _int(info, "sold"),
                "grabs": _int(info, "granted"),
            })  # fmt: skip
        return {"sales": out}

    return sales


def _int(info: dict[str, str], name: str) -> int:
    value = info.get(name, "0")
    return int(value) if value.lstrip("-").isdigit() else 0
