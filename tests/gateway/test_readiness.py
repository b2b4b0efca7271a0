"""The readiness hub (engine/gateway/readiness.py) on real socket pairs: no readiness is lost, at
most `per_pass` connections wake per scheduler pass, cancelled and forgotten readers are safe."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
import trio
import trio.testing

from engine.gateway.readiness import ReadinessHub


@contextmanager
def socket_pairs(n: int) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    pairs = [socket.socketpair() for _ in range(n)]
    for ours, _ in pairs:
        ours.setblocking(False)
    try:
        yield pairs
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


@asynccontextmanager
async def running(hub: ReadinessHub) -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        yield nursery
        nursery.cancel_scope.cancel()


async def read_when_ready(hub: ReadinessHub, sock: socket.socket, size: int = 100) -> bytes:
    """What `sock` has once the hub says it is readable (failing after 5 s)."""
    with trio.fail_after(5):
        await hub.wait_readable(sock)
    return sock.recv(size)


async def test_a_waiting_reader_wakes_when_bytes_arrive() -> None:
    hub = ReadinessHub(per_pass=4)
    with socket_pairs(1) as [(ours, theirs)]:
        async with running(hub):
            with trio.move_on_after(0.2) as idle:
                await hub.wait_readable(ours)
            assert idle.cancelled_caught  # nothing sent: no wake-up
            theirs.send(b"hello")
            assert await read_when_ready(hub, ours) == b"hello"


async def test_bytes_sent_before_the_first_wait_are_not_missed() -> None:
    hub = ReadinessHub(per_pass=4)
    with socket_pairs(1) as [(ours, theirs)]:
        theirs.send(b"early")
        async with running(hub):
            assert await read_when_ready(hub, ours) == b"early"


async def test_bytes_arriving_while_the_reader_is_busy_are_remembered() -> None:
    """Edge-triggered: the event comes while nobody waits; the next wait must return."""
    hub = ReadinessHub(per_pass=4)
    with socket_pairs(1) as [(ours, theirs)]:
        async with running(hub):
            theirs.send(b"one")
            assert await read_when_ready(hub, ours) == b"one"
            theirs.send(b"two")  # arrives while "handling" the first read
            await trio.sleep(0.05)  # the hub sees the edge while no one waits
            assert await read_when_ready(hub, ours) == b"two"


async def test_a_full_read_says_more_and_the_next_wait_returns_without_a_new_edge() -> None:
    hub = ReadinessHub(per_pass=4)
    with socket_pairs(1) as [(ours, theirs)]:
        async with running(hub):
            theirs.send(b"x" * 200)
            # a full buffer: more may be queued
            assert await read_when_ready(hub, ours) == b"x" * 100
            hub.more(ours)
            # no new bytes arrive: only `more` can wake it
            assert await read_when_ready(hub, ours) == b"x" * 100


@pytest.mark.parametrize("per_pass", [1, 8])
async def test_at_most_per_pass_readers_wake_per_pass_and_every_one_wakes(per_pass: int) -> None:
    hub = ReadinessHub(per_pass=per_pass)
    woken: list[int] = []
    with socket_pairs(60) as pairs:
        async with running(hub) as nursery:

            async def reader(i: int, sock: socket.socket) -> None:
                await hub.wait_readable(sock)
                woken.append(i)

            for i, (ours, _) in enumerate(pairs):
                nursery.start_soon(reader, i, ours)
            await trio.testing.wait_all_tasks_blocked()
            for _, theirs in pairs:  # all readable at once: a stampede
                theirs.send(b"go")
            with trio.fail_after(10):
                while len(woken) < len(pairs):
                    await trio.sleep(0.01)
    assert sorted(woken) == list(range(len(pairs)))
    assert hub.most_woken == per_pass  # bounded, and the bound was reached
    assert hub.passes >= len(pairs) // per_pass


async def test_a_cancelled_waiter_leaves_the_hub_working_for_the_others() -> None:
    hub = ReadinessHub(per_pass=2)
    with socket_pairs(2) as [(a, a_peer), (b, b_peer)]:
        async with running(hub):
            with trio.move_on_after(0.05):
                await hub.wait_readable(a)  # cancelled while parked
            a_peer.send(b"late")  # readiness for a cancelled reader is kept for its next wait
            b_peer.send(b"b")
            assert await read_when_ready(hub, b, 10) == b"b"
            assert await read_when_ready(hub, a, 10) == b"late"


async def test_a_forgotten_socket_gets_no_events_and_its_fd_number_can_be_reused() -> None:
    hub = ReadinessHub(per_pass=4)
    async with running(hub):
        old, old_peer = socket.socketpair()
        old.setblocking(False)
        old_peer.send(b"stale")
        await trio.sleep(0.05)  # the hub records `pending` for old
        hub.forget(old)
        fd = old.fileno()
        old.close()
        old_peer.close()
        assert len(hub) == 0
        with socket_pairs(1) as [(new, new_peer)]:
            if new.fileno() == fd:  # the usual case: the kernel hands out the lowest free fd
                with trio.move_on_after(0.2) as idle:
                    await hub.wait_readable(new)
                assert idle.cancelled_caught  # old's pending readiness is not new's
            new_peer.send(b"fresh")
            assert await read_when_ready(hub, new, 10) == b"fresh"


async def test_eof_wakes_the_reader() -> None:
    hub = ReadinessHub(per_pass=4)
    with socket_pairs(1) as [(ours, theirs)]:
        async with running(hub):
            theirs.shutdown(socket.SHUT_WR)
            assert await read_when_ready(hub, ours, 10) == b""
