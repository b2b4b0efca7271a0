"""The swarm's client processes seen from Trio: each `loadtest/swarmclient.py` process is driven
over its pipe; answers come back in the order of the commands, except `connected` (a connect or
reconnect batch finished), which arrives whenever the batch is done. One reader task per
process routes each message to the command waiting for it or to the process's `connected` queue,
so the progress sampler, the phases and the joins can all talk to the processes at once.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import psutil
import trio

from loadtest.bench_seckill import Clients
from loadtest.swarmclient import swarm_worker


class WorkerGone(RuntimeError):
    pass


class Worker:
    def __init__(self, index: int, pipe: Any) -> None:
        self.index, self.pipe = index, pipe
        self.waiting: deque[tuple[trio.Event, list[Any]]] = deque()
        self.connected_send, self.connected_recv = trio.open_memory_channel[tuple[Any, ...]](64)
        self.gone = False

    async def reader(self) -> None:
        try:
            while True:
                await trio.lowlevel.wait_readable(self.pipe.fileno())
                while self.pipe.poll():
                    self.route(self.pipe.recv())
        except (EOFError, OSError):
            self.gone = True
            for event, _ in self.waiting:
                event.set()
            self.waiting.clear()

    def route(self, msg: Any) -> None:
        if isinstance(msg, tuple) and msg and msg[0] == "connected":
            self.connected_send.send_nowait(msg)
            return
        if not self.waiting:
            raise RuntimeError(f"client {self.index} sent {str(msg)[:80]!r} unasked")
        event, box = self.waiting.popleft()
        box.append(msg)
        event.set()

    def tell(self, cmd: tuple[Any, ...]) -> None:
        """A command without an answer (`join`, `exit`)."""
        if self.gone:
            raise WorkerGone(f"client process {self.index} is gone")
        self.pipe.send(cmd)

    async def ask(self, cmd: tuple[Any, ...], timeout: float = 120.0) -> Any:
        if self.gone:
            raise WorkerGone(f"client process {self.index} is gone")
        event, box = trio.Event(), []
        self.waiting.append((event, box))
        self.pipe.send(cmd)
        with trio.fail_after(timeout):
            await event.wait()
        if not box:
            raise WorkerGone(f"client process {self.index} went away answering {cmd[0]!r}")
        return box[0]

    async def connected(self, timeout: float) -> tuple[Any, ...]:
        """The next `connected` report: ("connected", tag, ok, failed, errors, seconds)."""
        with trio.fail_after(timeout):
            return await self.connected_recv.receive()


class Workers:
    """The client processes (spawned by `bench_seckill.Clients`) and their readers."""

    def __init__(self, n: int) -> None:
        self.clients = Clients(n, swarm_worker)
        self.all = [Worker(i, pipe) for i, pipe in enumerate(self.clients.pipes)]

    def __len__(self) -> int:
        return len(self.all)

    def start(self, nursery: trio.Nursery) -> None:
        for worker in self.all:
            nursery.start_soon(worker.reader)

    async def ask_all(self, cmds: list[tuple[Any, ...]], timeout: float = 120.0) -> list[Any]:
        out: list[Any] = [None] * len(self.all)

        async def one(i: int) -> None:
            out[i] = await self.all[i].ask(cmds[i], timeout)

        async with trio.open_nursery() as nursery:
            for i in range(len(self.all)):
                nursery.start_soon(one, i)
        return out

    async def same(self, cmd: tuple[Any, ...], timeout: float = 120.0) -> list[Any]:
        return await self.ask_all([cmd] * len(self.all), timeout)

    def cpu_s(self) -> float:
        try:
            return self.clients.cpu_s()
        except psutil.Error:  # a process gone: its time is no longer readable
            return math.nan

    def shutdown(self) -> None:
        self.clients.shutdown()
