"""The host event stream: enter/leave events once each, consumer groups, redelivery."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from engine.events.consumer import EventConsumer, HostEvent, tail
from engine.store import keys
from engine.store.store import open_redis
from tests.conftest import StartEngine
from tests.support import viewer

pytestmark = pytest.mark.integration


async def collect(consumer: EventConsumer, count: int, timeout: float = 5) -> list[HostEvent]:
    events: list[HostEvent] = []
    with trio.fail_after(timeout):
        async for event in consumer:
            events.append(event)
            if len(events) == count:
                return events
    return events


async def test_enter_and_leave_appear_once_each_with_unique_ids(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine()
    url = engine.address.ws_url  # type: ignore[union-attr]
    async with viewer(url, engine.mint_token("alice", room, device="phone-1")) as alice:
        await alice.send(type="ping", rid=1)
        await alice.recv_type("pong")
        await trio.sleep(0.3)
    async with viewer(url, engine.mint_token("bob", room)):
        pass
    await trio.sleep(0.2)  # the leave is recorded as the connection ends
    async with open_redis(redis_url) as redis:
        consumer = EventConsumer(redis, "host", "worker-1", rooms=[room], block_ms=100)
        events = await collect(consumer, 4)
        assert await consumer.ack(*events) == 4
        assert await collect_for(consumer, 0.5) == []  # and nothing more
        assert await redis.xlen(keys.events(room)) == 4
    kinds = [(e.type, e.data["user"]) for e in events]
    assert kinds == [
        ("viewer.entered", "alice"),
        ("viewer.left", "alice"),
        ("viewer.entered", "bob"),
        ("viewer.left", "bob"),
    ]
    assert len({e.id for e in events}) == 4 and all(len(e.id) == 32 for e in events)
    entered, left = events[0], events[1]
    assert entered.data["device"] == "phone-1" and entered.data["conn"] == left.data["conn"]
    assert left.data["watch_ms"] >= 300 and left.data["reason"] == "client closed"
    assert entered.room == room and left.ts >= entered.ts


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
