"""The swarm's phases: what each kind of phase does to the room (through the client processes
and the control API) and the figures and invariant checks it returns. `swarm.py` runs them in
timeline order; the figures every phase shares (rates, latency, CPU) come from its sampler.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from loadtest.control import Control
from loadtest.swarm_checks import (
    Check,
    EventTail,
    check_coupon,
    check_lottery,
    check_resume,
    check_sale,
)
from loadtest.swarm_report import diff_results, floats, merge, probe_delivery, summary
from loadtest.swarm_timeline import Phase
from loadtest.swarm_workers import Workers

CHUNK_S = 0.25  # a join ramp hands each client process its next viewers this often
PRODUCT = "swarm-phone"
JUDGE_GRACE_S = 2.0  # danmaku sent this close to a delivery check are not owed yet


@dataclass
class Run:
    """What the phases share: the client processes, the control API, Redis and the event tail
    (when reachable), the room, and the results read so far."""

    workers: Workers
    admin: Control
    redis: Any | None
    tail: EventTail | None
    room: str
    tag: str  # this run's id: in sale, batch and lottery ids
    viewers: int  # the default size of a join
    background_rate: float
    log: Callable[[str], None]
    next_vid: int = 0
    phase_index: int = 0
    background_on: bool = False
    last: list[dict[str, Any] | None] = field(default_factory=list)  # results per process

    async def take(self, with_probes: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """What the client processes did since the last call (merged), and the raw readings."""
        raw = await self.workers.same(("results", with_probes), timeout=300)
        if not self.last:
            self.last = [None] * len(raw)
        diffs = [diff_results(self.last[i], r) for i, r in enumerate(raw)]
        self.last = raw
        return merge(diffs), raw

    async def counts(self) -> dict[str, Any]:
        """Counters summed over the client processes (nothing is taken from them)."""
        total: dict[str, Any] = {"live": 0, "likes_seen": 0}
        sums: dict[str, Counter[str]] = {
            "sent": Counter(),
            "answers": Counter(),
            "popups": Counter(),
        }
        for c in await self.workers.same(("counts",)):
            total["live"] += c["live"]
            total["likes_seen"] = max(total["likes_seen"], c["likes_seen"])
            for key, counter in sums.items():
                counter.update(c[key])
        return total | sums

    def ident(self, prefix: str) -> str:
        return f"{prefix}{self.tag}-{self.phase_index}"


async def _until(done: Callable[[], Awaitable[bool]], deadline: float, step: float = 0.2) -> bool:
    while True:
        if await done():
            return True
        if time.time() >= deadline:
            return False
        await trio.sleep(step)


# --- join, rates, steady -------------------------------------------------------------------


async def join(run: Run, phase: Phase) -> tuple[dict[str, Any], list[Check]]:
    """Connect viewers at `viewers / ramp_s` per second (each process its share, in chunks)."""
    workers = run.workers.all
    n_workers = len(workers)
    count = phase["viewers"] or run.viewers
    vids = range(run.next_vid, run.next_vid + count)
    run.next_vid += count
    per_s = count / phase["ramp_s"] / n_workers
    chunk = max(1, round(per_s * CHUNK_S))
    ok = failed = 0
    errors: list[str] = []
    started = time.time()

    async def feed(w: int) -> None:
        nonlocal ok, failed
        mine = [v for v in vids if v % n_workers == w]
        for i in range(0, len(mine), chunk):
            await trio.sleep(max(0.0, started + i / per_s - time.time()))
            workers[w].tell(("join", phase.name, mine[i : i + chunk], phase["concurrency"]))
            report = await workers[w].connected(timeout=120 + chunk)
            ok += report[2]
            failed += report[3]
            errors.extend(report[4])

    async with trio.open_nursery() as nursery:
        for w in range(n_workers):
            nursery.start_soon(feed, w)
    connect_s = time.time() - started
    run.log(
        f"   {ok:,} viewers connected in {connect_s:.1f} s"
        + (f", {failed:,} failed: {errors[:3]}" if failed else "")
    )
    if not run.background_on and run.background_rate > 0:
        per = run.background_rate / n_workers
        await run.workers.same(("rate", "background", "danmaku", per, 1e9, 1))
        run.background_on = True
    await trio.sleep(phase["settle_s"])
    got, _ = await run.take()
    figures = {
        "connected": ok,
        "failed": failed,
        "errors": errors[:5],
        "connect_s": round(connect_s, 2),
        "join": summary(got["join_lat"]),
    }
    return figures, []


async def rate(run: Run, phase: Phase) -> tuple[dict[str, Any], list[Check]]:
    """A danmaku or like storm at `rate` messages/s over every client process."""
    kind = "danmaku" if phase.kind == "danmaku" else "like"
    per = phase["rate"] / len(run.workers)
    size = phase.settings.get("size", 1)
    before = await run.counts()
    started = time.time()
    await run.workers.same(("rate", phase.name, kind, per, phase["duration_s"], size))
    await trio.sleep(phase["duration_s"])
    await trio.sleep(0.5)  # the last messages reach the viewers
    after = await run.counts()
    seconds = time.time() - started
    figures: dict[str, Any] = {"asked_per_s": phase["rate"]}
    if kind == "danmaku":
        sent = after["sent"]["danmaku"] - before["sent"]["danmaku"]
    else:
        sent = after["sent"]["like_msgs"] - before["sent"]["like_msgs"]
        figures["likes_sent"] = after["sent"]["likes"] - before["sent"]["likes"]
        figures["likes_total_sent"] = after["sent"]["likes"]
        figures["likes_seen"] = after["likes_seen"]
    figures["sent"] = sent
    figures["sent_per_s"] = round(sent / max(1e-9, seconds - 0.5), 1)
    skipped = after["sent"][f"{kind}_skipped"] - before["sent"][f"{kind}_skipped"]
    figures["skipped_behind"] = skipped  # the client fell behind the asked rate
    got, _ = await run.take()
    if kind == "danmaku":  # every timed danmaku asks for its result (background ones too)
        figures["answers"] = dict(got["codes"].get("danmaku", {}))
        figures["ack"] = summary(got["latency"].get("danmaku", []))
    return figures, []


async def steady(run: Run, phase: Phase) -> tuple[dict[str, Any], list[Check]]:
    await trio.sleep(phase["duration_s"])
    await run.take()
    return {}, []


# --- spikes --------------------------------------------------------------------------------


async def _spike(run: Run, phase: Phase, action: str, target: str, t0: float) -> tuple[int, float]:
    """Every process schedules its chosen viewers' requests evenly over `spread_s` from t0;
    returns how many and when the last is due."""
    salt = run.phase_index * 7919 + 17
    replies = await run.workers.same(
        ("spike", action, target, t0, phase["spread_s"], phase["fraction"], salt)
    )
    return sum(int(r[1]) for r in replies), t0 + phase["spread_s"]


async def _answered(
    run: Run, action: str, n: int, base: dict[str, Any], deadline: float, answers: bool = True
) -> dict[str, Any]:
    """Wait until the `n` requests were all sent (or found their viewer gone) and, with
    `answers`, answered; at most until `deadline`."""
    last: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal last
        last = await run.counts()
        sent = last["sent"][action] - base["sent"][action]
        gone = last["sent"][f"{action}_not_connected"] - base["sent"][f"{action}_not_connected"]
        if sent + gone < n:
            return False
        return not answers or last["answers"][action] - base["answers"][action] >= sent

    await _until(done, deadline)
    return last


async def _popup_reach(run: Run, kind: str, since: float, deadline: float) -> dict[str, Any]:
    """Wait until every viewer saw the popup (or `deadline`), then when each saw it first."""

    async def done() -> bool:
        c = await run.counts()
        return c["popups"][kind] >= c["live"]

    await _until(done, deadline)
    live = (await run.counts())["live"]
    seen: list[float] = []
    for got in await run.workers.same(("popups_collect", kind)):
        seen += [max(0.0, at - since) for at in got.values()]
    return {"kind": kind, "viewers": len(seen), "live": live} | summary(seen)


def _requests(got: dict[str, Any], action: str, target: str, n: int) -> dict[str, Any]:
    codes = dict(got["codes"].get(action, {}))
    missing = int(got["missing"].get(action, {}).get(target, 0))
    lat = summary(got["latency"].get(action, []), missing)
    return {
        "requests": n,
        "answers": sum(codes.values()),
        "missing": missing,
        "codes": codes,
        "latency": lat,
        "not_connected": got["sent"].get(f"{action}_not_connected", 0),
    }


async def seckill(run: Run, phase: Phase) -> tuple[dict[str, Any], list[Check]]:
    """A flash sale announced `lead_s` before t0; the chosen viewers grab once each."""
    sale = run.ident("s")
    base = await run.counts()
    await run.workers.same(("popups", "seckill"))
    called = time.time()
    t0 = called + phase["lead_s"]
    await run.admin.call(
        "start_seckill",
        run.room,
        product=PRODUCT,
        price=phase["price"],
        stock=phase["stock"],
        limit=phase["limit"],
        start_at=int(t0 * 1000),
        duration_s=max(600.0, phase["lead_s"] + phase["spread_s"] + phase["drain_s"] + 60),
        hold_s=phase["hold_s"],
        sale=sale,
    )
    n, last_at = await _spike(run, phase, "grab", sale, t0)
    run.log(
        f"   sale {sale}: {phase['stock']} units, {n:,} grabs from t0 over {phase['spread_s']:g} s"
    )
    popup = await _popup_reach(run, "seckill", called, t0)
    await _answered(run, "grab", n, base, last_at + phase["drain_s"])
    got, _ = await run.take()
    figures = _requests(got, "grab", sale, n) | {"sale": sale, "popup": popup}
    seen = [s for s in got["successes"].get("grab", []) if s[1] == sale]
    figures["granted"] = len(seen)
    checks = await check_sale(
        run.redis,
        run.admin,
        run.tail,
        run.room,
        sale,
        phase["limit"],
        seen,
        figures["codes"].get("sold_out", 0),
    )
    return figures, checks


async def coupon(run: Run, phase: Phase) -> tuple[dict[str, Any], list[Check]]:
    """A coupon batch dropped; `lead_s` later the chosen viewers claim once each."""
    batch = run.ident("c")
    base = await run.counts()
    await run.workers.same(("popups", "coupon"))
    called = time.time()
    await run.admin.call(
        "drop_coupon",
        run.room,
        batch=batch,
        kind="no_threshold",
        value=500,
        quantity=phase["quantity"],
        title="5 off, swarm",
    )
    t0 = max(time.time(), called + phase["lead_s"])
    n, last_at = await _spike(run, phase, "claim", batch, t0)
    run.log(
        f"   batch {batch}: {phase['quantity']} coupons, {n:,} claims from t0 over "
        f"{phase['spread_s']:g} s"
    )
    popup = await _popup_reach(run, "coupon", called, t0)
    await _answered(run, "claim", n, base, last_at + phase["drain_s"])
    got, _ = await run.take()
    figures = _requests(got, "claim", batch, n) | {"batch": batch, "popup": popup}
    seen = [s for s in got["successes"].get("claim", []) if s[1] == batch]
    figures["granted"] = len(seen)
    checks = await check_coupon(
        run.redis,
        run.admin,
        run.tail,
        run.room,
        batch,
        seen,
        figures["codes"].get("all_claimed", 0),
    )
    return figures, checks


async def lottery(run: Run, phase: Phase) -> tuple[dict[str, Any], list[Check]]:
    """A keyword lottery: the chosen viewers enter (keyword danmaku, or `lottery_enter`), the
    entries are counted, the lottery is drawn and the winners popup goes out."""
    lot = run.ident("l")
    base = await run.counts()
    await run.workers.same(("popups", "lottery"))
    called = time.time()
    info = await run.admin.call(
        "create_lottery",
        run.room,
        lottery=lot,
        prize="swarm prize",
        winners=phase["winners"],
        entry="keyword",
        keyword=phase["keyword"],
    )
    t0 = max(time.time(), called + phase["lead_s"])
    by_keyword = phase["entry"] == "keyword"
    action = "keyword" if by_keyword else "enter"
    n, last_at = await _spike(run, phase, action, phase["keyword"] if by_keyword else lot, t0)
    run.log(f"   lottery {lot}: {n:,} entries ({action}) from t0 over {phase['spread_s']:g} s")
    popup = await _popup_reach(run, "lottery", called, t0)
    await _answered(run, action, n, base, last_at + phase["drain_s"], answers=not by_keyword)
    entrants = 0
    stable_since = time.time()

    async def counted() -> bool:  # keyword entries are silent: wait for the count to settle
        nonlocal entrants, stable_since
        status = await run.admin.call("lottery_status", run.room, lottery=lot)
        now = int(status.get("entrants") or 0)
        if now != entrants:
            entrants, stable_since = now, time.time()
        return now >= n or time.time() - stable_since >= 2.0

    await _until(counted, time.time() + phase["drain_s"], step=0.25)
    await run.workers.same(("popups", "lottery_winners"))
    drawn_at = time.time()
    result = await run.admin.call("draw_lottery", run.room, lottery=lot)
    draw_ms = (time.time() - drawn_at) * 1000
    winners_popup = await _popup_reach(
        run, "lottery_winners", drawn_at, time.time() + phase["drain_s"]
    )
    got, _ = await run.take()
    figures: dict[str, Any] = {
        "lottery": lot,
        "entry": phase["entry"],
        "requests": n,
        "entrants": int(result.get("entrants") or 0),
        "winners": len(result.get("winners") or []),
        "draw_ms": draw_ms,
        "popup": popup,
        "winners_popup": winners_popup,
    }
    if not by_keyword:
        figures |= _requests(got, "enter", lot, n)
    entered = {
        user
        for user, target in got["entries"]
        if target == (phase["keyword"] if by_keyword else lot)
    }
    checks = await check_lottery(
        run.admin,
        run.tail,
        run.room,
        lot,
        str(info["commitment"]),
        entered,
        [(str(a), list(b)) for a, b in got["winners_seen"]],
    )
    return figures, checks


async def reconnect(run: Run, phase: Phase) -> tuple[dict[str, Any], list[Check]]:
    """A share of the viewers cut their socket and reconnect with `since`/`epoch`; afterwards the
    probes show whether any chat message reached them twice."""
    t0 = time.time() + 0.3
    salt = run.phase_index * 7919 + 29
    replies = await run.workers.same(
        (
            "reconnect",
            phase.name,
            phase["fraction"],
            t0,
            phase["spread_s"],
            phase["concurrency"],
            salt,
        )
    )
    n = sum(int(r[1]) for r in replies)
    run.log(f"   {n:,} viewers cut and reconnecting over {phase['spread_s']:g} s")
    ok = failed = 0
    errors: list[str] = []
    timeout = phase["spread_s"] + phase["drain_s"] + 1

    async def wait(w: int) -> None:
        nonlocal ok, failed
        report = await run.workers.all[w].connected(timeout)
        ok += report[2]
        failed += report[3]
        errors.extend(report[4])

    async with trio.open_nursery() as nursery:
        for w in range(len(run.workers)):
            nursery.start_soon(wait, w)
    await trio.sleep(phase["settle_s"])
    got, raw = await run.take(with_probes=True)
    delivery = delivery_at_probes(raw, time.time() - JUDGE_GRACE_S)
    figures = {
        "cut": n,
        "reconnected": ok,
        "failed": failed,
        "errors": errors[:5],
        "recovery": dict(got["recovery"]),
        "rejoin": summary(got["rejoin_lat"]),
        "delivery": delivery,
    }
    return figures, check_resume(delivery)


def delivery_at_probes(raw: list[dict[str, Any]], until: float) -> dict[str, Any]:
    """`swarm_report.probe_delivery` over every client process's readings (with probes)."""
    probes: dict[int, dict[str, Any]] = {}
    sent: dict[int, list[float]] = {}
    states: dict[int, bytes] = {}
    for r in raw:
        probes.update(r.get("probes") or {})
        sent[int(r["wid"])] = list(floats(r["dmk_times"]))
        states[int(r["wid"])] = r["dmk_state"]
    out = probe_delivery(probes, sent, until, states)
    out["chat_regress"] = sum(r["regress_kinds"].get("chat", 0) for r in raw)
    out["regress_examples"] = [x for r in raw for x in r["regress_examples"]][:10]
    return out


RUNNERS: dict[str, Callable[[Run, Phase], Awaitable[tuple[dict[str, Any], list[Check]]]]] = {
    "join": join,
    "danmaku": rate,
    "likes": rate,
    "steady": steady,
    "seckill": seckill,
    "coupon": coupon,
    "lottery": lottery,
    "reconnect": reconnect,
}
