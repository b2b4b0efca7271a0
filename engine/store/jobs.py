"""`JobStore`: the durable scheduler's jobs in Redis (scripts/lua/jobs_*.lua).

Three keys in one hash slot of their own (`{jobs}`): a sorted set of due jobs, a sorted set of
leased jobs (claimed by a node until the lease ends) and a hash of job specs (JSON). Claiming
moves a job from due to leased atomically, so two nodes never run it at once; a node that dies
while running a job loses its lease and another node claims the job again.
"""

from __future__ import annotations

from typing import Any

import coredis

from engine.store import keys
from engine.store.scripts import script_sources
from engine.store.store import translate_errors

_KEYS = [keys.JOBS_DUE, keys.JOBS_LEASED, keys.JOBS_SPECS]


class JobStore:
    def __init__(self, redis: coredis.Redis[bytes]) -> None:
        self.redis = redis
        sources = script_sources()
        self._scripts = {
            name: redis.register_script(sources[name])
            for name in ("jobs_schedule", "jobs_claim", "jobs_finish")
        }

    async def _run(self, name: str, args: list[Any]) -> Any:
        with translate_errors(name):
            return await self._scripts[name](keys=_KEYS, args=args)

    async def schedule(self, job_id: str, due_ms: int, spec: bytes) -> None:
        """Add the job, or replace it (a node running the old version cannot finish it)."""
        await self._run("jobs_schedule", [job_id, due_ms, spec])

    async def claim(self, now_ms: int, lease_until_ms: int, limit: int) -> list[bytes]:
        """Specs of the jobs this node now holds until `lease_until_ms`."""
        return [bytes(s) for s in await self._run("jobs_claim", [now_ms, lease_until_ms, limit])]

    async def done(self, job_id: str, version: str) -> bool:
        return bool(await self._run("jobs_finish", [job_id, "done", version]))

    async def retry(self, job_id: str, version: str, due_ms: int, spec: bytes) -> bool:
        return bool(await self._run("jobs_finish", [job_id, "retry", version, due_ms, spec]))

    async def renew(self, job_id: str, version: str, lease_until_ms: int) -> bool:
        """Extend the lease of a job this node is running; False if it no longer holds it."""
        return bool(await self._run("jobs_finish", [job_id, "renew", version, lease_until_ms]))

    async def cancel(self, job_id: str) -> bool:
        return bool(await self._run("jobs_finish", [job_id, "cancel", ""]))

    async def due_at(self, job_id: str) -> int | None:
        """When the job is due (ms), None if it is not waiting (running, done or unknown)."""
        with translate_errors("zscore"):
            score = await self.redis.zscore(keys.JOBS_DUE, job_id)
        return None if score is None else int(score)
