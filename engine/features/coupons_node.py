"""Coupons on one node: claims (group-committed to Redis), share-for-coupon grants, drops by hand
or on the durable scheduler, the claim window's close, the counts viewers see once per tick and
the one "all claimed" popup. Every decision on shared state is a Lua script (`CouponStore`);
this module decides when to call them and who gets which answer (docs/coupons.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog
import trio

from engine.config import Config
from engine.errors import ErrorCode, RequestRefused, StoreUnavailable
from engine.features.batching import GroupCommit, Overloaded
from engine.features.counters import TickCounters
from engine.features.coupons import (
    UNAVAILABLE,
    ClaimAnswer,
    CountView,
    batch_info,
    batch_spec,
    count_key,
    count_message,
    parse_claim_reply,
    refuse,
    share_key,
    valid_batch_id,
    viewer_key,
)
from engine.features.popups import Popups
from engine.scheduler import Job, Scheduler
from engine.store.coupons import CouponStore

log = structlog.get_logger("engine.coupons")

DROP_JOB: Final = "coupon_drop"  # job kind: a scheduled drop
CLOSE_JOB: Final = "coupon_close"  # job kind: the end of a batch's claim window
POPUP_AFTER_S: Final = 60.0  # "all claimed" and "ended" popups show this long
Terms = dict[str, Any]
Claimed = tuple[ClaimAnswer, Terms]


def job_id(kind: str, room: str, batch: str) -> str:
    return f"{kind}:{room}:{batch}"


@dataclass(slots=True)
class CouponStats:
    claims: int = 0
    granted: int = 0
    unavailable: int = 0


class Coupons:
    def __init__(
        self,
        config: Config,
        store: CouponStore,
        popups: Popups,
        scheduler: Scheduler,
        counters: TickCounters,
    ) -> None:
        self._store = store
        self._popups = popups
        self._scheduler = scheduler
        self._counters = counters
        self._batcher: GroupCommit[tuple[str, str], tuple[str, str], Claimed] = GroupCommit(
            self._decide,
            window_s=config.seckill_batch_window_ms / 1000,
            max_batch=config.seckill_batch_max,
            in_flight=config.seckill_batch_in_flight,
            max_pending=config.seckill_max_pending,
        )
        self._nursery: trio.Nursery | None = None
        scheduler.register(DROP_JOB, self._run_drop)
        scheduler.register(CLOSE_JOB, self._run_close)
        self.stats = CouponStats()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._batcher.run)
            task_status.started()

    # --- claims ----------------------------------------------------------------------------

    async def claim(self, room: str, batch: str, user: str, rid: str | int) -> Claimed:
        """A viewer's claim: its answer (and the batch's terms for the result). Never raises
        for Redis trouble: the answer is then `unavailable` (retry with the same rid)."""
        self.stats.claims += 1
        try:
            answer = await self._batcher.submit((room, batch), (user, viewer_key(rid)))
        except (Overloaded, StoreUnavailable) as exc:
            self.stats.unavailable += 1
            log.warning("claim not decided", room=room, batch=batch, error=repr(exc))
            return UNAVAILABLE, {}
        return answer

    def claim_nowait(
        self, room: str, batch: str, user: str, rid: str | int, reply: Callable[[Claimed], None]
    ) -> None:
        """A viewer's claim without waiting (the gateway's hot path): `reply` is called once
        with the answer and the batch's terms, when its batch comes back (`unavailable` at once
        when the node is overloaded, or later when Redis failed)."""
        # Hot path: runs once per claim; no await.
        self.stats.claims += 1

        def done(answer: Claimed | None, error: Exception | None) -> None:
            if answer is None:
                self.stats.unavailable += 1
                log.warning("claim not decided", room=room, batch=batch, error=repr(error))
                answer = (UNAVAILABLE, {})
            reply(answer)

        try:
            self._batcher.submit_nowait((room, batch), (user, viewer_key(rid)), done)
        except Overloaded as exc:
            done(None, exc)

    async def _decide(self, key: tuple[str, str], items: list[tuple[str, str]]) -> list[Claimed]:
        room, batch = key
        flat: list[Any] = []
        for user, rkey in items:
            flat += (user, rkey, "viewer")
        answers, terms = await self._call(room, batch, flat, len(items))
        return [(answer, terms) for answer in answers]

    async def _call(
        self, room: str, batch: str, flat: list[Any], count: int
    ) -> tuple[list[ClaimAnswer], Terms]:
        raw = await self._store.claim(room, batch, flat)
        view, all_now, terms, answers = parse_claim_reply(raw, count)
        self.stats.granted += sum(1 for a in answers if a.ok and not a.replayed)
        if view is not None:
            self._counters.observe(room, count_key(batch), view.ver, count_message(batch, view))
        if all_now:
            self._spawn(self._all_claimed, room, batch)
        return answers, terms

    async def grant_for_share(
        self, room: str, batch: str, user: str, share_id: str
    ) -> dict[str, Any]:
        """Share-for-coupon: grant `user` a coupon of `batch` for the host's share `share_id`,
        through the claim script (one per user and batch, one decision per share id)."""
        flat = [user, share_key(share_id), "share"]
        [answer], terms = await self._call(room, batch, flat, 1)
        out: dict[str, Any] = {"batch": batch, "code": answer.code, "ok": answer.ok}
        if answer.coupon:
            out["coupon"] = answer.coupon
        if answer.replayed:
            out["replayed"] = True
        if answer.ok:
            out.update(terms)
        return out

    async def for_share(
        self, room: str, share_id: str, user: str, batch: str | None = None
    ) -> dict[str, Any] | None:
        """The grant for a recorded share: from `batch`, or the room's share coupon (none
        configured: None)."""
        chosen = batch if batch is not None else await self._store.share_batch(room)
        if chosen is None:
            return None
        _check(chosen)
        return await self.grant_for_share(room, chosen, user, share_id)

    # --- operators -------------------------------------------------------------------------

    async def create(self, room: str, **fields: Any) -> dict[str, Any]:
        """Define a batch without dropping it (share grants may use it; drop it later)."""
        spec = batch_spec(**fields, now=self._store.now_ms())
        code, _ = await self._store.create(room, spec, state="created")
        if code != "ok":
            raise refuse(ErrorCode(code), f"batch {spec.batch!r} exists already")
        return await self.status(room, spec.batch)

    async def drop(self, room: str, batch: str, **fields: Any) -> dict[str, Any]:
        """Drop a batch now: viewers get a `coupon` popup and may claim. With the batch's terms
        in `fields`, the batch is created and dropped in one step."""
        _check(batch)
        if fields:
            spec = batch_spec(batch=batch, **fields, now=self._store.now_ms())
            code, claim_until = await self._store.create(room, spec, state="live")
            if code != "ok":
                raise refuse(ErrorCode(code), f"batch {batch!r} exists already")
            already = False
        else:
            code, already, claim_until = await self._store.drop(room, batch)
            if code != "ok":
                raise refuse(ErrorCode(code), f"{code}: {batch}")
        await self._scheduler.cancel(job_id(DROP_JOB, room, batch))
        if not already:
            await self._dropped(room, batch, claim_until)
        return await self.status(room, batch)

    async def schedule(self, room: str, batch: str, drop_at: int, **fields: Any) -> dict[str, Any]:
        """Drop the batch at `drop_at` (ms), through the durable scheduler (any node, once)."""
        _check(batch)
        now = self._store.now_ms()
        if isinstance(drop_at, bool) or not isinstance(drop_at, int) or drop_at <= now:
            raise refuse(ErrorCode.BAD_FIELD, "drop_at must be a time in the future (ms)")
        if fields:
            spec = batch_spec(batch=batch, **fields, now=now)
            if spec.valid_until <= drop_at:
                raise refuse(ErrorCode.BAD_FIELD, "the coupons would expire before the drop")
            code, _ = await self._store.create(room, spec, state="scheduled", drop_at=drop_at)
            if code != "ok":
                raise refuse(ErrorCode(code), f"batch {batch!r} exists already")
        else:
            code = await self._store.schedule(room, batch, drop_at)
            if code != "ok":
                raise refuse(ErrorCode(code), f"{code}: {batch}")
        await self._scheduler.schedule(
            job_id(DROP_JOB, room, batch), DROP_JOB, room, drop_at, {"batch": batch}
        )
        return await self.status(room, batch)

    async def end(self, room: str, batch: str) -> dict[str, Any]:
        """Close a batch's claims now (a scheduled batch is not dropped)."""
        _check(batch)
        code, already, _, _, _ = await self._store.end(room, batch, "stopped")
        if code != "ok":
            raise refuse(ErrorCode(code), f"{code}: {batch}")
        await self._scheduler.cancel(job_id(DROP_JOB, room, batch))
        await self._scheduler.cancel(job_id(CLOSE_JOB, room, batch))
        self._counters.forget(room, count_key(batch))
        if not already:
            await self._popups.push(room, "coupon_ended", {"batch": batch}, ttl_s=POPUP_AFTER_S)
        return await self.status(room, batch)

    async def status(self, room: str, batch: str) -> dict[str, Any]:
        _check(batch)
        raw = await self._store.info(room, batch)
        if not raw:
            raise refuse(ErrorCode.UNKNOWN_BATCH, f"no coupon batch {batch!r} in this room")
        return batch_info(batch, raw)

    async def list(self, room: str) -> list[dict[str, Any]]:
        out = []
        for batch in await self._store.batches(room):
            raw = await self._store.info(room, batch)
            if not raw:
                await self._store.forget(room, batch)  # its keys expired
                continue
            out.append(batch_info(batch, raw))
        out.sort(key=lambda b: (b.get("created_at", 0), b["batch"]))
        return out

    async def set_share_batch(self, room: str, batch: str | None) -> dict[str, Any]:
        """The batch a share of the room grants from (None: shares grant nothing)."""
        if batch is not None:
            await self.status(room, batch)  # unknown_batch
        await self._store.set_share_batch(room, batch)
        return {"batch": batch}

    async def holder(self, room: str, batch: str, user: str) -> str | None:
        return await self._store.holder(room, batch, user)

    # --- drops and closes ------------------------------------------------------------------

    async def _dropped(self, room: str, batch: str, claim_until: int) -> None:
        """The batch went live: its popup, its count, and the job closing its window."""
        info = batch_info(batch, await self._store.info(room, batch))
        shown = ("batch", "title", "kind", "value", "threshold", "product", "quantity", "left",
                 "valid_until")  # fmt: skip
        view: dict[str, Any] = {k: info[k] for k in shown if k in info}
        view["claim_until"] = claim_until
        ttl = max(1.0, (claim_until - self._store.now_ms()) / 1000)
        await self._scheduler.schedule(
            job_id(CLOSE_JOB, room, batch), CLOSE_JOB, room, claim_until, {"batch": batch}
        )
        self._counters.observe(room, count_key(batch), int(info.get("ver", 1)), count_message(
            batch, CountView(int(info["left"]), int(info["quantity"]), int(info.get("ver", 1)))
        ))  # fmt: skip
        await self._popups.push(room, "coupon", view, ttl_s=ttl)
        log.info("coupon batch dropped", room=room, batch=batch, quantity=info.get("quantity"))

    async def _all_claimed(self, room: str, batch: str) -> None:
        """The claim that took the last coupon was decided on this node: say it once."""
        try:
            await self._popups.push(room, "coupon_all_claimed", {"batch": batch},
                                    ttl_s=POPUP_AFTER_S)  # fmt: skip
        except StoreUnavailable as exc:
            log.warning("all-claimed popup not pushed", room=room, batch=batch, error=str(exc))

    async def _run_drop(self, job: Job) -> None:
        batch = str(job.args["batch"])
        code, _, claim_until = await self._store.drop(job.room, batch)
        if code != "ok":
            log.warning("scheduled coupon drop not done", room=job.room, batch=batch, code=code)
            return
        # `already`: a run that dropped it died before the popup; say it (again)
        await self._dropped(job.room, batch, claim_until)

    async def _run_close(self, job: Job) -> None:
        batch = str(job.args["batch"])
        code, _, _, _, claim_until = await self._store.end(job.room, batch, "time")
        if code == "not_due" and claim_until:  # its window moved (or clocks differ): later
            await self._scheduler.schedule(job.id, CLOSE_JOB, job.room, claim_until, job.args)
            return
        if code == "ok":
            self._counters.forget(job.room, count_key(batch))

    def _spawn(self, fn: Any, *args: Any) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)


def _check(batch: Any) -> None:
    if not valid_batch_id(batch):
        raise RequestRefused(f"{str(batch)[:60]!r} is not a batch id", code=ErrorCode.UNKNOWN_BATCH)


async def coupon_numbers(coupons: Coupons, room: str) -> dict[str, Any]:
    """`coupons` for the live numbers: the room's live batches with their counts."""
    out = []
    for info in await coupons.list(room):
        if info.get("state") != "live":
            continue
        out.append({k: info.get(k) for k in ("batch", "title", "quantity", "left", "granted",
                                             "claim_until")})  # fmt: skip
    return {"coupons": out}
