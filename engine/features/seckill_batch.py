"""Flash-sale grabs on one node: the batcher (group commit) and the sold-out shortcut.

Grabs for one sale wait at most `seckill_batch_window_ms` to gather, then go to Redis in one
`seckill_grab` call; while `seckill_batch_in_flight` calls are under way, new grabs queue and
leave in the next call, so batches grow with the load. Every caller still gets its own answer, in
the order Redis decided. Once a sale is known to be sold out (`SoldOutGate`), grabs of users who
hold nothing in it are answered here, without Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from engine.config import Config
from engine.errors import StoreUnavailable
from engine.features.seckill import (
    UNAVAILABLE,
    GrabAnswer,
    SoldOutGate,
    StockView,
    parse_grab_reply,
    rid_key,
)
from engine.store.seckill import SeckillStore

log = structlog.get_logger("engine.seckill")

Reply = Callable[[GrabAnswer], None]
SaleKey = tuple[str, str]  # (room, sale)
Observer = Callable[[str, str, StockView], None]
SLOW_BATCH_S = 0.5  # a batch call slower than this is logged


@dataclass(slots=True)
class SeckillStats:
    grabs: int = 0
    batches: int = 0
    batched_grabs: int = 0
    shortcut: int = 0
    granted: int = 0
    unavailable: int = 0
    released: int = 0


class _Queue:
    __slots__ = ("draining", "pending", "room", "sale", "slots")

    def __init__(self, room: str, sale: str, in_flight: int) -> None:
        self.room, self.sale = room, sale
        self.pending: list[tuple[str, str, int, Reply]] = []  # user, request key, qty, reply
        self.draining = False
        self.slots = trio.Semaphore(in_flight)


class GrabBatcher:
    """`on_view` gets the stock view of every batch; `on_sold_out` is called when a batch of this
    node took the last unit."""

    def __init__(
        self,
        config: Config,
        store: SeckillStore,
        stats: SeckillStats,
        *,
        on_view: Observer,
        on_sold_out: Observer,
    ) -> None:
        self._store = store
        self._stats = stats
        self._on_view = on_view
        self._on_sold_out = on_sold_out
        self._recheck_s = config.seckill_soldout_recheck_s
        self._window_s = max(0.0, config.seckill_batch_window_ms / 1000)
        self._batch_max = max(1, config.seckill_batch_max)
        self._in_flight = max(1, config.seckill_batch_in_flight)
        self._max_pending = config.seckill_max_pending
        self._queues: dict[SaleKey, _Queue] = {}
        self._pending = 0
        self._gates: dict[SaleKey, SoldOutGate] = {}
        self._flushers: list[Callable[[], None]] = []
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery) -> None:
        """Batches and peeks run as tasks of `nursery` (the feature's)."""
        self._nursery = nursery

    def add_flusher(self, flush: Callable[[], None]) -> None:
        """`flush` runs after each batch's replies: a transport may hold the answers of one
        batch and write each viewer's at once (one socket write for several grabs)."""
        self._flushers.append(flush)

    def _flush_replies(self) -> None:
        for flush in self._flushers:
            try:
                flush()
            except Exception:  # a transport's failure must not stop the batcher
                log.exception("grab reply flush failed")

    def grab(self, room: str, sale: str, user: str, rid: str | int, qty: int, reply: Reply) -> None:
        """Queue one grab; `reply` is called exactly once with its answer (from a batch, or at
        once from the sold-out shortcut or when the node is overloaded)."""
        # Hot path: runs once per grab; no await, no Redis.
        self._stats.grabs += 1
        key = (room, sale)
        gate = self._gates.get(key)
        if gate is not None:
            code = gate.decide(user, self._store.now_ms(), trio.current_time())
            if code is not None:
                self._stats.shortcut += 1
                reply(GrabAnswer(code))
                self._flush_replies()
                return
        if self._pending >= self._max_pending or self._nursery is None:
            self._stats.unavailable += 1
            reply(UNAVAILABLE)
            self._flush_replies()
            return
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(room, sale, self._in_flight)
        queue.pending.append((user, rid_key(rid), qty, reply))
        self._pending += 1
        if not queue.draining:
            queue.draining = True
            self._nursery.start_soon(self._drain, queue)

    async def _drain(self, queue: _Queue) -> None:
        assert self._nursery is not None
        try:
            while queue.pending:
                if len(queue.pending) < self._batch_max and self._window_s:
                    await trio.sleep(self._window_s)
                await queue.slots.acquire()
                batch = queue.pending[: self._batch_max]
                del queue.pending[: self._batch_max]
                self._pending -= len(batch)
                self._nursery.start_soon(self._call, queue, batch)
        finally:
            queue.draining = False

    async def _call(self, queue: _Queue, batch: list[tuple[str, str, int, Reply]]) -> None:
        try:
            items: list[Any] = []
            for user, rkey, qty, _ in batch:
                items += (user, rkey, qty)
            started = trio.current_time()
            try:
                raw = await self._store.grab(queue.room, queue.sale, items)
            except StoreUnavailable as exc:
                log.warning("grab batch failed", room=queue.room, sale=queue.sale,
                            grabs=len(batch), error=str(exc))  # fmt: skip
                self._stats.unavailable += len(batch)
                for *_, reply in batch:
                    _answer(reply, UNAVAILABLE)
                self._flush_replies()
                return
            took = trio.current_time() - started
            if took > SLOW_BATCH_S:
                log.warning("slow grab batch", room=queue.room, sale=queue.sale,
                            grabs=len(batch), seconds=round(took, 3))  # fmt: skip
            view, sold_out_now, answers = parse_grab_reply(raw, len(batch))
            self._stats.batches += 1
            self._stats.batched_grabs += len(batch)
            for (*_, reply), answer in zip(batch, answers, strict=True):
                if answer.ok and not answer.replayed:
                    self._stats.granted += 1
                _answer(reply, answer)
            self._flush_replies()
            if view is not None:
                self._on_view(queue.room, queue.sale, view)
                if sold_out_now:
                    self._on_sold_out(queue.room, queue.sale, view)
        finally:
            queue.slots.release()

    def observe(self, room: str, sale: str, view: StockView) -> None:
        """A stock view read from Redis (by anyone on this node): the shortcut learns from it,
        and asks Redis who the winners are once the sale is sold out."""
        key = (room, sale)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = SoldOutGate(self._recheck_s)
        gate.observe(view, trio.current_time())
        if gate.needs_peek and self._nursery is not None:
            gate.loading = True
            self._nursery.start_soon(self._peek, room, sale, gate)

    def busy(self, key: SaleKey) -> bool:
        queue = self._queues.get(key)
        return queue is not None and queue.draining

    def forget(self, key: SaleKey) -> None:
        self._queues.pop(key, None)
        self._gates.pop(key, None)

    async def _peek(self, room: str, sale: str, gate: SoldOutGate) -> None:
        try:
            reply = await self._store.peek(room, sale)
        except StoreUnavailable as exc:
            gate.loading = False
            log.warning("sold-out peek failed", room=room, sale=sale, error=str(exc))
            return
        gate.peeked(reply, trio.current_time())
        self._answer_queued(room, sale, gate)

    def _answer_queued(self, room: str, sale: str, gate: SoldOutGate) -> None:
        """The sale turned out sold out: grabs still waiting for a batch are answered now."""
        queue = self._queues.get((room, sale))
        if queue is None or not queue.pending:
            return
        now, mono = self._store.now_ms(), trio.current_time()
        kept = []
        for item in queue.pending:
            code = gate.decide(item[0], now, mono)
            if code is None:
                kept.append(item)
            else:
                self._stats.shortcut += 1
                _answer(item[3], GrabAnswer(code))
        self._pending -= len(queue.pending) - len(kept)
        queue.pending[:] = kept
        self._flush_replies()


def _answer(reply: Reply, answer: GrabAnswer) -> None:
    try:
        reply(answer)
    except Exception:  # one viewer's broken reply must not stop the others' answers
        log.exception("grab reply failed")
