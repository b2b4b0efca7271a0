"""Shared rate limits with group commit: the requests of one room that arrive while a script call
for that room is under way leave together in the next call (`ratelimit.lua` decides a batch in
order), so a storm of likes or grabs costs a few Redis calls per room, not one per message, and
a quiet room pays a single round trip. Each caller still gets its own answer."""

from __future__ import annotations

from typing import Final

import trio

from engine.errors import StoreUnavailable
from engine.store.antifraud import AntiFraudStore, LimitAnswer, LimitRequest

BATCH_MAX: Final = 512
IN_FLIGHT: Final = 2  # script calls under way per room and node


class _Waiter:
    __slots__ = ("answer", "done", "error", "request")

    def __init__(self, request: LimitRequest) -> None:
        self.request = request
        self.done = trio.Event()
        self.answer: LimitAnswer | None = None
        self.error: StoreUnavailable | None = None


class _Queue:
    __slots__ = ("draining", "pending", "slots")

    def __init__(self) -> None:
        self.pending: list[_Waiter] = []
        self.draining = False
        self.slots = trio.Semaphore(IN_FLIGHT)


class Limiter:
    def __init__(self, store: AntiFraudStore) -> None:
        self._store = store
        self._queues: dict[str, _Queue] = {}
        self._nursery: trio.Nursery | None = None
        self.calls = 0  # script calls made (tests, metrics)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def check(self, room: str, request: LimitRequest) -> LimitAnswer:
        """The shared verdict on one request. Raises StoreUnavailable when Redis is away."""
        if self._nursery is None:  # not running (embedded use without run): call directly
            return (await self._store.limit([request]))[0]
        waiter = _Waiter(request)
        queue = self._queues.get(room)
        if queue is None:
            queue = self._queues[room] = _Queue()
        queue.pending.append(waiter)
        if not queue.draining:
            queue.draining = True
            self._nursery.start_soon(self._drain, room, queue)
        await waiter.done.wait()
        if waiter.error is not None:
            raise StoreUnavailable(str(waiter.error))
        assert waiter.answer is not None
        return waiter.answer

    async def _drain(self, room: str, queue: _Queue) -> None:
        assert self._nursery is not None
        try:
            while queue.pending:
                await queue.slots.acquire()
                batch, queue.pending = queue.pending[:BATCH_MAX], queue.pending[BATCH_MAX:]
                self._nursery.start_soon(self._call, queue, batch)
                await trio.sleep(0)  # let more requests gather while this call runs
        finally:
            queue.draining = False
            if not queue.pending and self._queues.get(room) is queue:
                del self._queues[room]

    async def _call(self, queue: _Queue, batch: list[_Waiter]) -> None:
        try:
            self.calls += 1
            try:
                answers = await self._store.limit([w.request for w in batch])
            except StoreUnavailable as exc:
                for waiter in batch:
                    waiter.error = exc
            else:
                for waiter, answer in zip(batch, answers, strict=True):
                    waiter.answer = answer
        finally:
            queue.slots.release()
            for waiter in batch:
                waiter.done.set()
