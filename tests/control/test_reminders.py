"""Reminders: exactly one `reminder.due` per reservation, with two nodes polling the durable
scheduler, a node restarted in between, and a node that dies in the middle of a reminder pass."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import trio

from engine import Engine
from engine.events.consumer import HostEvent, parse_entry
from engine.features.rooms import reminder_job_id
from engine.scheduler import Scheduler
from engine.store import keys
from engine.store.jobs import JobStore
from engine.store.rooms import RoomStore
from engine.store.store import open_redis
from tests.control.support import address, http_call
from tests.support import engine_config, viewer

pytestmark = pytest.mark.integration

FAST = {"scheduler_poll_s": 0.05, "scheduler_lease_s": 1.0, "control_socket": "none"}


async def run_node(nursery: trio.Nursery, redis_url: str, tmp: Path, **kw: Any) -> tuple[
    Engine, trio.CancelScope
]:  # fmt: skip
    """An engine node in `nursery` that can be stopped alone (cancel its scope)."""
    engine = Engine(engine_config(redis_url, tmp, **{**FAST, **kw}))
    scope = trio.CancelScope()

    async def serve(task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await engine.serve(task_status=task_status)

    await nursery.start(serve)
    return engine, scope


async def events_of(redis_url: str, room: str, kind: str) -> list[HostEvent]:
    async with open_redis(redis_url) as redis:
        entries = await redis.xrange(keys.events(room))
    found = [parse_entry(room, entry) for entry in entries]
    return [e for e in found if e is not None and e.type == kind]


async def pass_finished(redis_url: str, room: str) -> bool:
    async with open_redis(redis_url) as redis:
        progress = await redis.hget(keys.info(room), "reminders")
        pending = await redis.hexists(keys.JOBS_SPECS, reminder_job_id(room))
    return progress == b"done" and not pending


async def wait_for(predicate: Any, timeout: float = 30) -> None:
    with trio.fail_after(timeout):
        while not await predicate():
            await trio.sleep(0.05)


def assert_once_each(reminders: list[HostEvent], users: list[str]) -> None:
    got = sorted(e.data["user"] for e in reminders)
    assert got == sorted(users), got
    assert len({e.id for e in reminders}) == len(reminders)  # distinct idempotency keys


async def test_one_reminder_per_reservation_with_two_nodes_and_a_restart(
    redis_url: str, tmp_path: Path, room: str
) -> None:
    lead_s = 1.0
    async with trio.open_nursery() as nursery:
        node_a, scope_a = await run_node(nursery, redis_url, tmp_path, reminder_lead_s=lead_s)
        node_b, _ = await run_node(nursery, redis_url, tmp_path, reminder_lead_s=lead_s)
        admin = node_a.mint_token("host", "ops", role="admin")
        starts_at = int(time.time() * 1000) + 3000  # reminders due in about 2 s
        created = await http_call(node_a, admin, "create_room", room, title="Tea at 8",
                                  anchor="anchor-1", starts_at=starts_at)  # fmt: skip
        assert created.status == 201
        host_users = [f"h{i}" for i in range(12)]
        for user in host_users:  # the host reserves over HTTP (on node A)
            assert (await http_call(node_a, admin, "reserve", room, user=user)).result["new"]
        viewer_users = ["v1", "v2", "v3"]
        for user in viewer_users:  # viewers reserve over the gateway (on node B)
            async with viewer(address(node_b).ws_url, node_b.mint_token(user, room)) as v:
                await v.send(type="reserve", rid=1)
                result = await v.recv_type("result", rid=1)
                assert result["ok"] and result["data"]["new"] is True
        await http_call(node_a, admin, "reserve", room, user="h0")  # again: no new one
        # node A restarts before the reminders are due
        scope_a.cancel()
        with trio.fail_after(10):
            while node_a.address is not None:
                await trio.sleep(0.02)
        node_a2, _ = await run_node(nursery, redis_url, tmp_path, reminder_lead_s=lead_s)
        await wait_for(lambda: pass_finished(redis_url, room))
        reminders = await events_of(redis_url, room, "reminder.due")
        assert_once_each(reminders, host_users + viewer_users)
        assert {e.data["starts_at"] for e in reminders} == {starts_at}
        assert {e.data["title"] for e in reminders} == {"Tea at 8"}
        # a reservation after the reminder time is reminded at once, exactly once too
        late = await http_call(node_a2, admin, "reserve", room, user="late")
        assert late.result["reminded"] is True
        await http_call(node_a2, admin, "reserve", room, user="late")
        await trio.sleep(0.3)  # a few scheduler polls on both nodes: nothing more is written
        reminders = await events_of(redis_url, room, "reminder.due")
        assert_once_each(reminders, [*host_users, *viewer_users, "late"])
        created_events = await events_of(redis_url, room, "reservation.created")
        assert len(created_events) == len(host_users) + len(viewer_users) + 1
        nursery.cancel_scope.cancel()


async def test_a_pass_cut_short_by_a_dead_node_is_finished_elsewhere_exactly_once(
    redis_url: str, tmp_path: Path, room: str
) -> None:
    users = [f"u{i:02d}" for i in range(20)]
    starts_at = int(time.time() * 1000) + 3_600_000
    async with open_redis(redis_url) as redis:
        rooms, jobs = RoomStore(redis, event_maxlen=10_000), JobStore(redis)
        record = {"status": "scheduled", "title": "Later", "anchor": "a1",
                  "starts_at": str(starts_at), "remind_at": str(starts_at - 60_000)}  # fmt: skip
        assert await rooms.create(room, record, {})
        for user in users:
            await rooms.reserve(room, user, "host")
        # a node claims the reminder job, writes one batch, and dies (never finishes the job)
        dead = Scheduler(jobs, lease_s=0.5)
        job = await dead.schedule(reminder_job_id(room), "reminders", room, 0,
                                  {"starts_at": str(starts_at)})  # fmt: skip
        now = int(time.time() * 1000)
        claimed = [spec for spec in await jobs.claim(now, now + 500, 1000)
                   if job.id.encode() in spec]  # fmt: skip
        assert claimed
        assert await rooms.emit_reminders(room, str(starts_at), 7) == (7, len(users) - 7)
    # two live nodes: one of them takes the job over once the dead node's lease ends
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            await run_node(nursery, redis_url, tmp_path)
        await wait_for(lambda: pass_finished(redis_url, room))
        nursery.cancel_scope.cancel()
    assert_once_each(await events_of(redis_url, room, "reminder.due"), users)


async def test_moving_the_start_starts_the_reminders_over_and_ending_cancels_them(
    redis_url: str, tmp_path: Path, room: str
) -> None:
    async with trio.open_nursery() as nursery:
        node, _ = await run_node(nursery, redis_url, tmp_path, reminder_lead_s=1.0)
        first = int(time.time() * 1000) + 1500  # due at once, roughly
        await node.command("create_room", room=room, title="t", anchor="a", starts_at=first)
        await node.command("reserve", room=room, user="u1")
        await wait_for(lambda: pass_finished(redis_url, room))
        later = first + 3_600_000
        moved = await node.command("update_room", room=room, starts_at=later)
        assert moved["starts_at"] == later
        async with open_redis(redis_url) as redis:
            due = await JobStore(redis).due_at(reminder_job_id(room))
        assert due == later - 1000  # rescheduled, not run again now
        await node.command("end_room", room=room)
        async with open_redis(redis_url) as redis:
            assert await JobStore(redis).due_at(reminder_job_id(room)) is None
        nursery.cancel_scope.cancel()
    reminders = await events_of(redis_url, room, "reminder.due")
    assert [e.data["starts_at"] for e in reminders] == [first]


async def test_a_job_longer_than_its_lease_runs_once_while_another_node_polls(
    redis_url: str,
) -> None:
    """The running node renews the lease, so the other node never claims the job meanwhile;
    once the job is done, nothing runs it again."""
    runs: list[str] = []

    async def slow(job: Any) -> None:
        runs.append(job.id)
        await trio.sleep(1.5)  # five leases of 0.3 s

    async with open_redis(redis_url) as redis:
        jobs = JobStore(redis)
        first, second = (
            Scheduler(jobs, poll_s=0.05, lease_s=0.3),
            Scheduler(jobs, poll_s=0.05, lease_s=0.3),
        )
        for scheduler in (first, second):
            scheduler.register("slow", slow)
        job = await first.schedule("slow-job", "slow", "room-x", 0)
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await wait_for(lambda: _ran(runs))
            await nursery.start(second.run)
            await trio.sleep(2.0)  # past the job's end: done, not due again
            nursery.cancel_scope.cancel()
        assert runs == [job.id]
        assert await jobs.due_at(job.id) is None
        assert not await redis.zscore(keys.JOBS_LEASED, job.id)


async def _ran(runs: list[str]) -> bool:
    return bool(runs)
