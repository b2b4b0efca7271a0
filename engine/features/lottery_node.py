"""Lotteries on one node: creating one (with its seed commitment), entries by keyword danmaku, by
follow and by an explicit `lottery_enter`, the draw (by hand or on the durable scheduler), the
winners popup, claims and the expiry of unclaimed prizes. Every decision on shared state is a
Lua script (`LotteryStore`); this module decides when to call them (docs/lottery.md).

The draw, step by step (`draw`): `lottery_freeze.lua` closes the entries; the node reads the
frozen entrant list (in byte order), hashes it (SHA-256: Redis's Lua has no SHA-256) and derives
the draw key from the seed and that digest; `lottery_draw.lua` checks the list is still the one
hashed (frozen, same size), picks the winners itself from the key, records them and writes the
events, in one step. The node also computes the winners with `lottery_draw.draw`, the function
`engine lottery verify` runs, and logs an error if the two ever disagree.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog
import trio

from engine.config import Config
from engine.errors import EngineError, ErrorCode, RequestRefused, StoreUnavailable
from engine.features import lottery_draw
from engine.features.batching import GroupCommit, Overloaded
from engine.features.counters import TickCounters
from engine.features.lottery import (
    count_key,
    count_message,
    keyword_matches,
    lottery_info,
    lottery_spec,
    popup_view,
    refuse,
    valid_lottery_id,
    winner_records,
)
from engine.features.popups import Popups
from engine.identity import Identity
from engine.scheduler import Job, Scheduler
from engine.store.lottery import LotteryStore

log = structlog.get_logger("engine.lottery")

DRAW_JOB: Final = "lottery_draw"  # job kind: a scheduled draw
EXPIRE_JOB: Final = "lottery_expire"  # job kind: unclaimed prizes expire
OPEN_CACHE_S: Final = 1.0  # a node rereads a room's open lotteries at most this often
WINNERS_POPUP_TTL_S: Final = 300.0
EXPIRE_MARGIN_MS: Final = 1000
POPUP_KINDS: Final = frozenset({"lottery", "lottery_winners", "lottery_cancelled"})
MAX_ENTERED_MEMO: Final = 200_000  # users a node remembers as entered, per lottery
Entered = tuple[str, bool, int]  # (code, new entrant, entrants after its batch; -1: not asked)
Entry = tuple[str, str, str]  # (user, how, display name)


def job_id(kind: str, room: str, lottery: str) -> str:
    return f"{kind}:{room}:{lottery}"


@dataclass(frozen=True, slots=True)
class OpenLottery:
    lottery: str
    entry: str
    key: str  # the normalized keyword ("" for follow-only)
    draw_at: int


class Lottery:
    def __init__(
        self,
        config: Config,
        store: LotteryStore,
        popups: Popups,
        scheduler: Scheduler,
        counters: TickCounters,
    ) -> None:
        self._store = store
        self._popups = popups
        self._scheduler = scheduler
        self._counters = counters
        self._claim_s = config.lottery_claim_s
        self._open: dict[str, tuple[float, list[OpenLottery]]] = {}  # room -> (until, open)
        self._loading: dict[str, trio.Event] = {}
        self._entered: dict[tuple[str, str], set[str]] = {}  # (room, lottery) -> users
        # entries of one lottery arriving together go to Redis in one script call (like claims)
        self._batcher: GroupCommit[tuple[str, str], Entry, Entered] = GroupCommit(
            self._decide,
            window_s=config.seckill_batch_window_ms / 1000,
            max_batch=config.seckill_batch_max,
            in_flight=config.seckill_batch_in_flight,
            max_pending=config.seckill_max_pending,
        )
        scheduler.register(DRAW_JOB, self._run_draw)
        scheduler.register(EXPIRE_JOB, self._run_expire)
        self.mismatches = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The entry batcher (entries wait for it: run it before viewers come)."""
        await self._batcher.run(task_status=task_status)

    # --- creating --------------------------------------------------------------------------

    async def create(
        self,
        room: str,
        *,
        prize: str,
        winners: int,
        entry: str,
        keyword: str | None = None,
        draw_at: int | None = None,
        claim_s: float | None = None,
        lottery: str | None = None,
    ) -> dict[str, Any]:
        """Create a lottery: its seed is made and committed to (the commitment goes to the host
        event and to viewers in the `lottery` popup); entries open now."""
        now = self._store.now_ms()
        spec = lottery_spec(
            lottery=lottery if lottery is not None else "l" + secrets.token_hex(6),
            prize=prize, winners=winners, entry=entry, keyword=keyword, draw_at=draw_at,
            claim_s=self._claim_s if claim_s is None else claim_s, now=now,
        )  # fmt: skip
        seed = lottery_draw.new_seed()
        committed = lottery_draw.commitment(seed)
        code, created_at = await self._store.create(
            room, spec.lottery, prize=spec.prize, wanted=spec.wanted, entry=spec.entry,
            keyword=spec.keyword, keyword_key=spec.keyword_key, draw_at=spec.draw_at,
            claim_ms=spec.claim_ms, seed=seed, commitment=committed,
        )  # fmt: skip
        if code != "ok":
            raise refuse(ErrorCode(code), f"lottery {spec.lottery!r} exists already")
        if spec.draw_at:
            await self._scheduler.schedule(job_id(DRAW_JOB, room, spec.lottery), DRAW_JOB, room,
                                           spec.draw_at, {"lottery": spec.lottery})  # fmt: skip
        self.invalidate(room)
        ttl = max(1.0, (spec.draw_at - now) / 1000) if spec.draw_at else None
        await self._popups.push(room, "lottery", popup_view(spec, committed, created_at),
                                ttl_s=ttl)  # fmt: skip
        log.info("lottery created", room=room, lottery=spec.lottery, entry=spec.entry,
                 winners=spec.wanted, draw_at=spec.draw_at or None)  # fmt: skip
        return await self.status(room, spec.lottery)

    # --- entries ---------------------------------------------------------------------------

    async def on_danmaku(self, room: str, identity: Identity, item: Mapping[str, Any]) -> None:
        """The chat hook: a viewer's danmaku that is the keyword of an open lottery enters it.
        Never raises (a danmaku that went out stays out)."""
        if identity.role.is_staff:
            return
        text = item.get("text")
        if not isinstance(text, str):
            return
        try:
            for lot in await self._open_lotteries(room):
                if lot.entry != "follow" and keyword_matches(text, lot.key):
                    await self._enter(room, lot.lottery, identity, "keyword")
        except StoreUnavailable as exc:
            log.warning("keyword entry not recorded", room=room, user=identity.user,
                        error=str(exc))  # fmt: skip

    async def on_follow(self, room: str, identity: Identity) -> list[str]:
        """The viewer follows: it enters every open lottery that takes follows. Returns the
        lotteries it is in now."""
        if identity.role.is_staff:
            return []
        entered = []
        for lot in await self._open_lotteries(room):
            if lot.entry != "keyword":
                code, _, _ = await self._enter(room, lot.lottery, identity, "follow")
                if code == "ok":
                    entered.append(lot.lottery)
        return entered

    async def enter(self, room: str, lottery: str, identity: Identity) -> Entered:
        """An explicit entry (`lottery_enter`): (code, new, entrants). A follow-only lottery
        takes it from followers only (`follow_required`)."""
        if not valid_lottery_id(lottery):
            return ErrorCode.UNKNOWN_LOTTERY.value, False, 0
        return await self._enter(room, lottery, identity, "button")

    def enter_nowait(
        self,
        room: str,
        lottery: str,
        identity: Identity,
        reply: Callable[[Entered | None, Exception | None], None],
    ) -> None:
        """An explicit entry without waiting (the gateway's read loop): `reply(answer, None)` is
        called once with (code, new, entrants) when its batch comes back, or at once when this
        node knows the answer; `reply(None, error)` (StoreUnavailable, Overloaded) when it could
        not be decided (the viewer may send it again)."""
        # Hot path: runs once per explicit entry; no await.
        if not valid_lottery_id(lottery):
            reply((ErrorCode.UNKNOWN_LOTTERY.value, False, 0), None)
            return
        seen = self._entered.get((room, lottery))
        if seen is not None and identity.user in seen:
            reply(("ok", False, -1), None)  # this node entered them before
            return
        entry = (identity.user, "button", identity.name or "")
        try:
            self._batcher.submit_nowait((room, lottery), entry, reply)
        except Overloaded as exc:
            reply(None, exc)

    async def _enter(self, room: str, lottery: str, identity: Identity, how: str) -> Entered:
        user = identity.user
        seen = self._entered.get((room, lottery))
        if seen is not None and user in seen:
            return "ok", False, -1  # this node entered them before: no need to ask Redis
        try:
            return await self._batcher.submit((room, lottery), (user, how, identity.name or ""))
        except Overloaded:
            raise StoreUnavailable("too many lottery entries queued on this node") from None

    async def _decide(self, key: tuple[str, str], items: list[Entry]) -> list[Entered]:
        """One script call for a batch of entries of one lottery (the batcher's `decide`)."""
        room, lottery = key
        answers, count, ver = await self._store.enter_batch(room, lottery, items)
        if any(code == "ok" for code, _ in answers):
            seen = self._entered.get(key)
            if seen is None:
                seen = self._entered[key] = set()
            for (user, _, _), (code, _) in zip(items, answers, strict=True):
                if code == "ok" and len(seen) < MAX_ENTERED_MEMO:
                    seen.add(user)
            if any(new for _, new in answers):
                self._counters.observe(room, count_key(lottery), ver,
                                       count_message(lottery, count, ver))  # fmt: skip
        if any(code in ("lottery_closed", "unknown_lottery") for code, _ in answers):
            self.invalidate(room)
        return [(code, new, count) for code, new in answers]

    async def _open_lotteries(self, room: str) -> list[OpenLottery]:
        cached = self._open.get(room)
        clock = trio.current_time()
        if cached is not None and cached[0] > clock:
            return cached[1]
        loading = self._loading.get(room)
        if loading is not None:  # one read per room however many danmaku ask at once
            await loading.wait()
            again = self._open.get(room)
            return again[1] if again is not None else []
        loading = self._loading[room] = trio.Event()
        try:
            summaries = await self._store.room_lotteries(room)
            now = self._store.now_ms()
            found = [
                OpenLottery(lot, str(s.get("entry")), str(s.get("keyword") or ""),
                            int(s.get("draw_at") or 0))
                for lot, s in sorted(summaries.items())
                if s.get("state") == "open" and not (0 < int(s.get("draw_at") or 0) <= now)
            ]  # fmt: skip
            self._open[room] = (clock + OPEN_CACHE_S, found)
            return found
        finally:
            del self._loading[room]
            loading.set()

    def invalidate(self, room: str) -> None:
        """Forget what this node knows of the room's open lotteries (reread on next use)."""
        self._open.pop(room, None)

    def popup_delivered(self, room: str, item: Mapping[str, Any]) -> None:
        """Fan-out hook: a lottery popup reached this node's viewers of the room, so a lottery
        started or ended: reread the room's open lotteries before the next keyword."""
        if not isinstance(item, Mapping) or item.get("kind") not in POPUP_KINDS:
            return
        self.invalidate(room)
        data = item.get("data")
        if item.get("kind") != "lottery" and isinstance(data, Mapping):
            lottery = str(data.get("lottery"))  # drawn or cancelled: forget what we kept of it
            self._entered.pop((room, lottery), None)
            self._counters.forget(room, count_key(lottery))

    # --- drawing ---------------------------------------------------------------------------

    async def draw(self, room: str, lottery: str) -> dict[str, Any]:
        """Freeze the entries and draw now (idempotent: a drawn lottery answers its result)."""
        _check(lottery)
        code, _, state = await self._store.freeze(room, lottery)
        if code != "ok":
            raise refuse(ErrorCode(code), f"{code}: {lottery}")
        self.invalidate(room)
        if state == "drawn":
            return await self.status(room, lottery)
        info = await self._store.info(room, lottery)
        entrants = await self._store.entrants(room, lottery)
        expected = lottery_draw.draw(info["seed"], entrants, int(info["wanted"]))
        claim_ms = int(info.get("claim_ms") or 0)
        await self._scheduler.schedule(  # before the draw: a node dying after it loses nothing
            job_id(EXPIRE_JOB, room, lottery), EXPIRE_JOB, room,
            self._store.now_ms() + claim_ms + EXPIRE_MARGIN_MS, {"lottery": lottery},
        )  # fmt: skip
        code, already, _, claim_until, winners = await self._store.draw(
            room, lottery, key=expected.key, digest=expected.digest, count=len(entrants)
        )
        if code != "ok":
            raise EngineError(f"draw of {lottery!r}: {code}", code=ErrorCode.BAD_STATE)
        if not already and winners != expected.winners:
            self.mismatches += 1
            log.error("lottery draw differs from the reference draw", room=room,
                      lottery=lottery, lua=winners, python=expected.winners)  # fmt: skip
        await self._scheduler.cancel(job_id(DRAW_JOB, room, lottery))
        self._counters.forget(room, count_key(lottery))
        self._entered.pop((room, lottery), None)
        status = await self.status(room, lottery)
        if not already:
            shown = [{k: w[k] for k in ("user", "rank", "name") if k in w}
                     for w in status["winners"]]  # fmt: skip
            await self._popups.push(room, "lottery_winners", {
                "lottery": lottery, "prize": status["prize"], "winners": shown,
                "entrants": status["entrants"], "claim_until": claim_until,
                "commitment": status["commitment"], "seed": status["seed"],
                "digest": status["digest"], "algorithm": status["algorithm"],
            }, ttl_s=WINNERS_POPUP_TTL_S)  # fmt: skip
            log.info("lottery drawn", room=room, lottery=lottery, entrants=len(entrants),
                     winners=len(winners))  # fmt: skip
        return status

    async def _run_draw(self, job: Job) -> None:
        lottery = str(job.args["lottery"])
        try:
            await self.draw(job.room, lottery)
        except RequestRefused as exc:  # cancelled, or gone: nothing to draw
            log.info("scheduled draw not done", room=job.room, lottery=lottery, code=exc.code)

    async def _run_expire(self, job: Job) -> None:
        lottery = str(job.args["lottery"])
        expired, next_due = await self._store.expire(job.room, lottery)
        if expired:
            log.info("lottery prizes expired", room=job.room, lottery=lottery, expired=expired)
        if next_due:  # not due yet (clocks): come back then
            await self._scheduler.schedule(job.id, EXPIRE_JOB, job.room,
                                           next_due + EXPIRE_MARGIN_MS, job.args)  # fmt: skip

    # --- after the draw, and the rest ------------------------------------------------------

    async def claim(self, room: str, lottery: str, user: str, ref: str = "") -> dict[str, Any]:
        """The host reports that `user` claimed its prize (within its claim window)."""
        _check(lottery)
        code, already, rank, claim_until = await self._store.claim(room, lottery, user, ref)
        if code != "ok":
            raise refuse(ErrorCode(code), f"{code}: {user} in {lottery}")
        return {"lottery": lottery, "user": user, "rank": rank, "claim_until": claim_until,
                "already": already}  # fmt: skip

    async def cancel(self, room: str, lottery: str, reason: str = "") -> dict[str, Any]:
        _check(lottery)
        code, already = await self._store.cancel(room, lottery, reason)
        if code != "ok":
            raise refuse(ErrorCode(code), f"{code}: {lottery}")
        await self._scheduler.cancel(job_id(DRAW_JOB, room, lottery))
        self.invalidate(room)
        self._counters.forget(room, count_key(lottery))
        self._entered.pop((room, lottery), None)
        if not already:
            await self._popups.push(room, "lottery_cancelled", {"lottery": lottery},
                                    ttl_s=WINNERS_POPUP_TTL_S)  # fmt: skip
        return await self.status(room, lottery)

    async def status(self, room: str, lottery: str) -> dict[str, Any]:
        _check(lottery)
        raw = await self._store.info(room, lottery)
        if not raw:
            raise refuse(ErrorCode.UNKNOWN_LOTTERY, f"no lottery {lottery!r} in this room")
        records: list[dict[str, Any]] = []
        if raw.get("state") == "drawn":
            won = await self._store.winners(room, lottery)
            users = sorted(won)
            names = dict(zip(users, await self._store.names(room, lottery, users), strict=True))
            records = winner_records(won, names)
        return lottery_info(lottery, raw, records)

    async def list(self, room: str) -> list[dict[str, Any]]:
        out = []
        for lottery in sorted(await self._store.room_lotteries(room)):
            try:
                out.append(await self.status(room, lottery))
            except RequestRefused:
                await self._store.forget(room, lottery)  # its keys expired
        out.sort(key=lambda lot: (lot.get("created_at") or 0, lot["lottery"]))
        return out

    async def entrants(
        self, room: str, lottery: str, *, offset: int = 0, limit: int = 100_000
    ) -> dict[str, Any]:
        """A page of the entrant list in byte order (the draw's order; frozen from the draw on),
        with what `engine lottery verify` needs beside it."""
        info = await self.status(room, lottery)
        page = await self._store.entrants_page(room, lottery, offset, limit)
        return {"lottery": lottery, "state": info["state"], "entrants": info["entrants"],
                "offset": offset, "users": page,
                "frozen": info["state"] in ("frozen", "drawn")}  # fmt: skip


def _check(lottery: Any) -> None:
    if not valid_lottery_id(lottery):
        raise RequestRefused(f"{str(lottery)[:60]!r} is not a lottery id",
                             code=ErrorCode.UNKNOWN_LOTTERY)  # fmt: skip


async def lottery_numbers(lottery: Lottery, room: str) -> dict[str, Any]:
    """`lotteries` for the live numbers: the room's lotteries not yet drawn, with entrants."""
    out = []
    for info in await lottery.list(room):
        if info["state"] in ("open", "frozen"):
            out.append({k: info[k] for k in ("lottery", "prize", "state", "entrants", "draw_at")})
    return {"lotteries": out}
