"""When viewer sockets are readable: one private epoll for all joined viewers, and a bound on how
many of their connection tasks wake per scheduler pass.

Why not `trio.lowlevel.wait_readable` per connection: Trio runs every task that became runnable
before a pass starts, then polls again. When thousands of viewers send at once (a flash-sale
stampede, a coupon drop), one pass runs thousands of connection tasks (~100-200 us each here), and
every step of a Redis round trip (the batch call, coredis' reader, the task waiting on it) waits
a whole pass: a call Redis serves in 10 ms took 0.9-1.5 s in the engine (docs/benchmarks.md,
"The spike against the floor"). Here the hub wakes at most `per_pass` readable connections per
pass and queues the rest in arrival order, so a pass stays a few ms long and Redis replies reach
their waiters between passes. Work per read is the same; what changes is who waits.

Sockets are registered edge-triggered, once: an event is remembered as `pending` when its
connection is not waiting (busy handling the last read), so no readiness is lost; a reader that
filled its whole buffer says so (`more()`), because no new edge comes for bytes already queued.
"""

from __future__ import annotations

import select
import socket
from collections import deque

import trio

_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
_MAX_EVENTS = 1024  # per epoll_wait; the rest come in the next call


class _Reader:
    __slots__ = ("pending", "queued", "waiter")

    def __init__(self) -> None:
        self.waiter: trio.lowlevel.Task | None = None
        self.pending = False  # readable since it last waited
        self.queued = False  # in the hub's wake queue


class ReadinessHub:
    def __init__(self, per_pass: int) -> None:
        self.per_pass = max(1, per_pass)
        self._epoll = select.epoll()
        self._readers: dict[int, _Reader] = {}
        self._queue: deque[_Reader] = deque()
        self.passes = 0  # wake passes that woke someone (for tests and metrics)
        self.most_woken = 0  # the most connections woken in one pass

    def __len__(self) -> int:
        return len(self._readers)

    @property
    def waiting(self) -> int:
        """Readable connections waiting for their turn."""
        return len(self._queue)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver readiness until cancelled."""
        task_status.started()
        try:
            while True:
                if not self._queue:
                    await trio.lowlevel.wait_readable(self._epoll.fileno())
                self._collect()
                self._wake()
                await trio.lowlevel.checkpoint()  # one pass: the woken run before we wake more
        finally:
            self._epoll.close()

    async def wait_readable(self, sock: socket.socket) -> None:
        """Until `sock` may have bytes to read (or an EOF or error to report)."""
        fd = sock.fileno()
        reader = self._readers.get(fd)
        if reader is None:
            reader = self._readers[fd] = _Reader()
            # ADD reports bytes already queued, so nothing sent before now is missed
            self._epoll.register(fd, _EVENTS)
        if reader.pending:
            reader.pending = False
            await trio.lowlevel.checkpoint()  # a busy sender still yields once per read
            return
        reader.waiter = trio.lowlevel.current_task()

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            reader.waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def more(self, sock: socket.socket) -> None:
        """The last read filled the buffer: more may be queued without a new edge."""
        reader = self._readers.get(sock.fileno())
        if reader is not None:
            reader.pending = True

    def forget(self, sock: socket.socket) -> None:
        """Before `sock` closes (its fd number may be reused at once)."""
        try:
            fd = sock.fileno()
        except OSError:
            return
        reader = self._readers.pop(fd, None)
        if reader is None:
            return
        reader.waiter = None
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):  # already closed
            pass

    def _collect(self) -> None:
        for fd, _ in self._epoll.poll(0, _MAX_EVENTS):
            reader = self._readers.get(fd)
            if reader is None:
                continue
            if reader.waiter is None:
                reader.pending = True
            elif not reader.queued:
                reader.queued = True
                self._queue.append(reader)

    def _wake(self) -> None:
        woken = 0
        while self._queue and woken < self.per_pass:
            reader = self._queue.popleft()
            reader.queued = False
            task, reader.waiter = reader.waiter, None
            if task is None:  # cancelled or forgotten meanwhile: it asks again when it waits
                reader.pending = True
                continue
            trio.lowlevel.reschedule(task)
            woken += 1
        if woken:
            self.passes += 1
            self.most_woken = max(self.most_woken, woken)
