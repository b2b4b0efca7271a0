"""The durable scheduler: timed jobs kept in Redis (`store.jobs.JobStore`), run by whichever node
claims them first.

Features register job kinds (`scheduler.register("reminders", handler)`); reminders use it now,
timed coupon drops and lottery draws will. Guarantees:
* a job survives restarts: it lives in Redis until a run of it finishes;
* no two nodes run a job at once: claiming leases it (`scheduler_lease_s`), atomically, and the
  running node renews the lease every third of it for as long as the job runs;
* a node that dies while running a job loses the lease and another node runs the job again, so a
  handler must make its effect idempotent (reminders do it in Lua: each reservation is reminded
  once, however often the pass runs);
* a failed run is retried with backoff, up to MAX_ATTEMPTS.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson
import structlog
import trio

from engine.errors import StoreUnavailable
from engine.store.jobs import JobStore
from engine.store.store import now_ms

log = structlog.get_logger("engine.scheduler")

MAX_ATTEMPTS = 20
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True, slots=True)
class Job:
    id: str  # unique per job: scheduling the same id again replaces the job
    kind: str  # the registered kind whose handler runs it
    room: str
    due: int  # ms since the epoch
    args: dict[str, Any] = field(default_factory=dict)
    v: str = ""  # version: a fresh one each time the job is (re)scheduled
    attempts: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> Job:
        return cls(**orjson.loads(raw))


JobHandler = Callable[[Job], Awaitable[None]]


class Scheduler:
    def __init__(
        self, jobs: JobStore, *, poll_s: float = 1.0, lease_s: float = 30.0, max_running: int = 16
    ) -> None:
        self._jobs = jobs
        self._poll_s = poll_s
        self._lease_ms = int(lease_s * 1000)
        self._max_running = max_running
        self._running = 0
        self._kinds: dict[str, JobHandler] = {}

    def register(self, kind: str, handler: JobHandler) -> None:
        if kind in self._kinds:
            raise ValueError(f"job kind {kind!r} already has a handler")
        self._kinds[kind] = handler

    async def schedule(
        self, job_id: str, kind: str, room: str, due_ms: int, args: dict[str, Any] | None = None
    ) -> Job:
        """Add the job, or replace the one with that id (a run of the old one cannot finish it)."""
        job = Job(job_id, kind, room, due_ms, args or {}, v=secrets.token_hex(8))
        await self._jobs.schedule(job.id, job.due, job.to_json())
        return job

    async def cancel(self, job_id: str) -> bool:
        return await self._jobs.cancel(job_id)

    # --- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Claim and run due jobs until cancelled."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                free = self._max_running - self._running
                if free > 0:
                    try:
                        await self.poll(nursery, free)
                    except StoreUnavailable as exc:
                        log.warning("scheduler poll failed", error=str(exc))
                await trio.sleep(self._poll_s)

    async def poll(self, nursery: trio.Nursery, limit: int) -> int:
        """Claim up to `limit` due jobs and start them in `nursery`; how many were claimed."""
        now = now_ms()
        specs = await self._jobs.claim(now, now + self._lease_ms, limit)
        for spec in specs:
            try:
                job = Job.from_json(spec)
            except (ValueError, TypeError) as exc:
                log.error("unreadable job spec dropped", spec=spec[:200], error=str(exc))
                continue
            self._running += 1
            nursery.start_soon(self._run_job, job, nursery)
        return len(specs)

    async def _run_job(self, job: Job, nursery: trio.Nursery) -> None:
        try:
            handler = self._kinds.get(job.kind)
            try:
                if handler is None:
                    raise LookupError(f"no handler for job kind {job.kind!r} on this node")
                keeper = trio.CancelScope()  # not a nursery here: the handler's errors stay bare
                nursery.start_soon(self._keep_lease, job, keeper)
                try:
                    await handler(job)
                finally:
                    keeper.cancel()
            except Exception as exc:  # a job's failure must not stop the scheduler
                await self._failed(job, exc)
                return
            await self._jobs.done(job.id, job.v)
            log.info("job done", job=job.id, kind=job.kind, room=job.room)
        except StoreUnavailable as exc:
            log.warning(
                "job not finished; it runs again after its lease", job=job.id, error=str(exc)
            )
        finally:
            self._running -= 1

    async def _keep_lease(self, job: Job, scope: trio.CancelScope) -> None:
        """Renew the job's lease while it runs (until `scope` is cancelled), so no other node
        claims it meanwhile."""
        with scope:
            while True:
                await trio.sleep(self._lease_ms / 3000)
                try:
                    held = await self._jobs.renew(job.id, job.v, now_ms() + self._lease_ms)
                except StoreUnavailable as exc:
                    log.warning("job lease not renewed", job=job.id, error=str(exc))
                    continue
                if not held:  # replaced, cancelled, or the lease ran out: another run may start
                    log.warning("job lease lost while running", job=job.id, kind=job.kind)
                    return

    async def _failed(self, job: Job, exc: Exception) -> None:
        attempts = job.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            log.error("job dropped after too many failures", job=job.id, kind=job.kind,
                      attempts=attempts, error=repr(exc))  # fmt: skip
            await self._jobs.done(job.id, job.v)
            return
        delay_s = min(MAX_BACKOFF_S, 2.0**attempts)
        log.warning("job failed; retrying", job=job.id, kind=job.kind, attempts=attempts,
                    retry_in_s=delay_s, error=repr(exc))  # fmt: skip
        retry = replace(job, attempts=attempts)
        await self._jobs.retry(job.id, job.v, now_ms() + int(delay_s * 1000), retry.to_json())
