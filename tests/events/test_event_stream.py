"""The host event stream: enter/leave events once each, consumer groups, redelivery."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from engine import Engine
from engine.events.consumer import EventConsumer, HostEvent, tail
from engine.store import keys
from engine.store.store import open_redis
from tests.conftest import StartEngine
from tests.support import engine_config, viewer

pytestmark = pytest.mark.integration


async def collect(consumer: EventConsumer, count: int, timeout: float = 5) -> list[HostEvent]:
    events: list[HostEvent] = []
    with trio.fail_after(timeout):
        async for event in consumer:
            events.append(event)
            if len(events) == count:
                return events
    return events


async def test_enter_and_leave_appear_once_each_per_person_with_unique_ids(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    node_a, node_b = await start_engine(), await start_engine()
    url_a, url_b = node_a.address.ws_url, node_b.address.ws_url  # type: ignore[union-attr]
    # alice: two tabs on two nodes, then a quick reconnect: still one presence
    async with viewer(url_a, node_a.mint_token("alice", room, device="phone-1")) as tab1:
        async with viewer(url_b, node_b.mint_token("alice", room, device="laptop")):
            await tab1.send(type="ping", rid=1)
            await tab1.recv_type("pong")
    async with viewer(url_b, node_b.mint_token("alice", room)):  # back within the grace
        await trio.sleep(0.3)
    async with viewer(url_a, node_a.mint_token("bob", room)):
        pass
    async with open_redis(redis_url) as redis:
        consumer = EventConsumer(redis, "host", "worker-1", rooms=[room], block_ms=100)
        events = await collect(consumer, 4, timeout=10)  # leaves come after the grace
        assert await consumer.ack(*events) == 4
        assert await collect_for(consumer, 1.5) == []  # and nothing more
        assert await redis.xlen(keys.events(room)) == 4
    kinds = [(e.type, e.data["user"]) for e in events]
    assert kinds[:2] == [("viewer.entered", "alice"), ("viewer.entered", "bob")]
    assert sorted(kinds[2:]) == [("viewer.left", "alice"), ("viewer.left", "bob")]
    assert len({e.id for e in events}) == 4
    entered = events[0]
    assert entered.data["device"] == "phone-1" and entered.data["node"] == node_a.node_id
    left = next(e for e in events if e.type == "viewer.left" and e.data["user"] == "alice")
    assert left.data["watch_ms"] >= 300 and entered.room == room and left.ts >= entered.ts


async def test_viewers_of_a_node_that_dies_drop_out_of_the_count(
    nursery: trio.Nursery, start_engine: StartEngine, room: str, redis_url: str, tmp_path: Any
) -> None:
    survivor = await start_engine()
    doomed = Engine(engine_config(redis_url, tmp_path, presence_grace_s=1.0))
    doomed_scope = trio.CancelScope()

    async def run_doomed(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with doomed_scope:
            await doomed.serve(task_status=task_status)

    await nursery.start(run_doomed)
    async with viewer(survivor.address.ws_url, survivor.mint_token("stays", room)) as stays:  # type: ignore[union-attr]
        async with viewer(doomed.address.ws_url, doomed.mint_token("goner", room)) as goner:  # type: ignore[union-attr]
            await goner.send(type="ping", rid=1)
            await goner.recv_type("pong")
            assert (await survivor._running().store.online(room)) == 2
            doomed_scope.cancel()  # the node is gone: nobody refreshes its viewer any more
            with trio.fail_after(10):  # the survivor's sweeper takes it out after the grace
                while (await survivor._running().store.online(room)) != 1:
                    await trio.sleep(0.1)
        with trio.fail_after(5):
            while {"type": "online", "count": 1} not in stays.seen:
                await stays.recv(timeout=5)


async def test_a_consumer_that_crashes_before_acking_gets_the_events_again(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine()
    async with viewer(engine.address.ws_url, engine.mint_token("carol", room)):  # type: ignore[union-attr]
        pass
    await trio.sleep(0.2)
    async with open_redis(redis_url) as redis:
        first = EventConsumer(redis, "orders", "worker-1", rooms=[room], block_ms=100)
        seen = await collect(first, 2)
        # worker-1 "crashes": it never acks. Restarted under the same name, it gets them again.
        again = EventConsumer(redis, "orders", "worker-1", rooms=[room], block_ms=100)
        redelivered = await collect(again, 2)
        assert [e.id for e in redelivered] == [e.id for e in seen]
        assert await again.ack(*redelivered) == 2
        # once acked, a restart brings nothing back
        after = EventConsumer(redis, "orders", "worker-1", rooms=[room], block_ms=100)
        assert await collect_for(after, 0.5) == []


async def test_another_consumer_claims_events_a_dead_one_left_pending(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine()
    async with viewer(engine.address.ws_url, engine.mint_token("dave", room)):  # type: ignore[union-attr]
        pass
    await trio.sleep(0.2)
    async with open_redis(redis_url) as redis:
        dead = EventConsumer(redis, "mail", "dies", rooms=[room], block_ms=100)
        taken = await collect(dead, 2)
        survivor = EventConsumer(
            redis, "mail", "lives", rooms=[room], block_ms=100, claim_idle_ms=100,
            refresh_rooms_s=0.2,
        )  # fmt: skip
        await trio.sleep(0.2)
        claimed = await collect(survivor, 2)
        assert sorted(e.id for e in claimed) == sorted(e.id for e in taken)


async def test_groups_discover_rooms_and_tail_follows_without_a_group(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine()
    async with open_redis(redis_url) as redis:
        consumer = EventConsumer(redis, f"all-{room}", "w", block_ms=100, refresh_rooms_s=0.1)
        followed: list[HostEvent] = []

        async def follow(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            async for event in tail(redis, [room]):
                followed.append(event)

        async with trio.open_nursery() as nursery:
            await nursery.start(follow)
            await trio.sleep(0.1)
            async with viewer(engine.address.ws_url, engine.mint_token("eve", room)):  # type: ignore[union-attr]
                pass
            events: list[HostEvent] = []
            with trio.fail_after(5):
                async for event in consumer:
                    if event.room == room:
                        events.append(event)
                        await consumer.ack(event)
                    if len(events) == 2:
                        break
            with trio.fail_after(5):
                while len(followed) < 2:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        assert [e.type for e in events] == ["viewer.entered", "viewer.left"]
        assert [e.id for e in followed] == [e.id for e in events]


async def collect_for(consumer: EventConsumer, seconds: float) -> list[HostEvent]:
    events: list[HostEvent] = []
    with trio.move_on_after(seconds):
        async for event in consumer:
            events.append(event)
    return events
