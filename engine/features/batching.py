"""Group commit: requests for the same thing (one coupon batch, ...) that arrive on a node close
together go to Redis in one script call, each caller still getting its own answer.

The same policy as the flash-sale grab batcher (docs/seckill.md, "Batching"): a request waits at
most `window_s` to gather; while `in_flight` calls for a key are under way, new requests queue
and leave together in the next one, so batches grow with the load; at most `max_batch` per call;
beyond `max_pending` queued requests a node answers "overloaded" at once instead of queueing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

import structlog
import trio

from engine.errors import StoreUnavailable

log = structlog.get_logger("engine.batching")

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


class Overloaded(Exception):
    """The node queues too many requests already (or is not running): answer `unavailable`."""


Done = Callable[["R | None", "Exception | None"], None]  # (answer, or the error of its call)


class _Queue(Generic[K, T, R]):
    __slots__ = ("draining", "key", "pending", "slots")

    def __init__(self, key: K, in_flight: int) -> None:
        self.key = key
        self.pending: list[tuple[T, Done[R]]] = []
        self.draining = False
        self.slots = trio.Semaphore(in_flight)


class GroupCommit(Generic[K, T, R]):
    """`decide(key, items)` answers a batch of items of one key, in order (one script call)."""

    def __init__(
        self,
        decide: Callable[[K, list[T]], Awaitable[list[R]]],
        *,
        window_s: float,
        max_batch: int,
        in_flight: int,
        max_pending: int,
    ) -> None:
        self._decide = decide
        self._window_s = max(0.0, window_s)
        self._max_batch = max(1, max_batch)
        self._in_flight = max(1, in_flight)
        self._max_pending = max_pending
        self._queues: dict[K, _Queue[K, T, R]] = {}
        self._pending = 0
        self._nursery: trio.Nursery | None = None
        self.calls = 0
        self.items = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    def submit_nowait(self, key: K, item: T, done: Done[R]) -> None:
        """Queue `item`; `done(answer, None)` or `done(None, error)` is called once, when its
        batch comes back (hot path: no task waits, like the grab batcher's replies). Raises
        Overloaded at once when the node queues too much already."""
        if self._pending >= self._max_pending or self._nursery is None:
            raise Overloaded
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(key, self._in_flight)
        queue.pending.append((item, done))
        self._pending += 1
        if not queue.draining:
            queue.draining = True
            self._nursery.start_soon(self._drain, queue)

    async def submit(self, key: K, item: T) -> R:
        """The answer to `item`. Raises Overloaded, or StoreUnavailable when its call failed."""
        event = trio.Event()
        out: list[Any] = []

        def done(answer: R | None, error: Exception | None) -> None:
            out.extend((answer, error))
            event.set()

        self.submit_nowait(key, item, done)
        await event.wait()
        if out[1] is not None:
            raise out[1]
        return out[0]  # type: ignore[no-any-return]

    async def _drain(self, queue: _Queue[K, T, R]) -> None:
        assert self._nursery is not None
        try:
            while queue.pending:
                if len(queue.pending) < self._max_batch and self._window_s:
                    await trio.sleep(self._window_s)
                await queue.slots.acquire()
                batch = queue.pending[: self._max_batch]
                del queue.pending[: self._max_batch]
                self._pending -= len(batch)
                self._nursery.start_soon(self._call, queue, batch)
        finally:
            queue.draining = False
            if not queue.pending and queue.slots.value == self._in_flight:
                self._queues.pop(queue.key, None)

    async def _call(self, queue: _Queue[K, T, R], batch: list[tuple[T, Done[R]]]) -> None:
        try:
            try:
                answers = await self._decide(queue.key, [item for item, _ in batch])
            except Exception as exc:  # every caller gets an answer; the node goes on
                if not isinstance(exc, StoreUnavailable):
                    log.exception("batch decision failed", key=str(queue.key))
                    exc = StoreUnavailable(f"batch decision failed: {type(exc).__name__}")
                for _, done in batch:
                    _tell(done, None, exc)
                return
            self.calls += 1
            self.items += len(batch)
            for (_, done), answer in zip(batch, answers, strict=True):
                _tell(done, answer, None)
        finally:
            queue.slots.release()


def _tell(done: Done[R], answer: R | None, error: Exception | None) -> None:
    try:
        done(answer, error)
    except Exception:  # one caller's broken callback must not stop the others' answers
        log.exception("batched answer not delivered")
