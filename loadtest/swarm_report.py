"""The swarm's figures (pure: no I/O): percentiles, a running latency histogram for the progress
line, the difference between two readings of a client process's results, chat delivery at the
probes, the summary table and the exit code."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from loadtest.seckill_report import fmt, pct

QUANTILES = (("p50_ms", 0.50), ("p90_ms", 0.90), ("p99_ms", 0.99))


def summary(samples: Iterable[float], missing: int = 0) -> dict[str, Any]:
    """Latency figures in ms from samples in seconds; `missing` answers count as infinitely
    late (so a p99 with more than 1% missing is `inf`)."""
    ordered = sorted(samples)
    out: dict[str, Any] = {"n": len(ordered), "missing": missing}
    for name, q in QUANTILES:
        out[name] = pct(ordered, q, missing)
    out["max_ms"] = (math.inf if missing else ordered[-1] * 1000) if ordered else None
    if not ordered and missing:
        out["max_ms"] = math.inf
    return out


class Histogram:
    """Latencies in buckets 1% wide on a log scale from 10 us: percentiles within 1% in
    constant memory (the progress line's "p99 so far" over millions of samples)."""

    BASE, STEP = 1e-5, math.log(1.01)

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.n = 0

    def add(self, seconds: float) -> None:
        b = int(math.log(max(seconds, self.BASE) / self.BASE) / self.STEP)
        self.counts[b] += 1
        self.n += 1

    def percentile(self, q: float) -> float | None:
        """The q-quantile in seconds (a bucket's upper edge), None when empty."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return float(self.BASE * math.exp(self.STEP * (b + 1)))
        return None  # pragma: no cover - ranks never exceed n


def floats(raw: bytes) -> array[float]:
    out = array("d")
    out.frombytes(raw)
    return out


def _sub(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: v - b.get(k, 0) for k, v in a.items() if v - b.get(k, 0)}


def diff_results(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """What one client process did between two `results` readings (counters subtracted, lists
    and latency arrays cut where the first reading ended)."""
    b = before or {}

    def cut(seq: Sequence[Any], old: Sequence[Any] | None) -> list[Any]:
        return list(seq[len(old or ()) :])

    def cut_floats(key: str) -> list[float]:
        return list(floats(after[key])[len(b[key]) // 8 if key in b else 0 :])

    return {
        "codes": {k: _sub(v, b.get("codes", {}).get(k, {})) for k, v in after["codes"].items()},
        "latency": {
            k: list(floats(v)[len(b["latency"][k]) // 8 if b else 0 :])
            for k, v in after["latency"].items()
        },
        "successes": {
            k: cut(v, b.get("successes", {}).get(k)) for k, v in after["successes"].items()
        },
        "sent": _sub(after["sent"], b.get("sent", {})),
        "recovery": _sub(after["recovery"], b.get("recovery", {})),
        "errors": _sub(after["errors"], b.get("errors", {})),
        "closes": _sub(after["closes"], b.get("closes", {})),
        "lost": _sub(after["lost"], b.get("lost", {})),
        "join_lat": cut_floats("join_lat"),
        "rejoin_lat": cut_floats("rejoin_lat"),
        "entries": cut(after["entries"], b.get("entries")),
        "retries": after["retries"] - b.get("retries", 0),
        "missing": after["missing"],  # requests unanswered now (not a difference)
        "winners_seen": cut(after["winners_seen"], b.get("winners_seen")),
    }


def merge(diffs: list[dict[str, Any]]) -> dict[str, Any]:
    """The client processes' differences added up."""
    out: dict[str, Any] = {"codes": {}, "latency": {}, "successes": {}, "missing": {}}
    counters = ("sent", "recovery", "errors", "closes", "lost")
    for key in counters:
        out[key] = Counter()
    for key in ("join_lat", "rejoin_lat", "entries", "winners_seen"):
        out[key] = []
    out["retries"] = 0
    for d in diffs:
        for action, codes in d["codes"].items():
            out["codes"].setdefault(action, Counter()).update(codes)
        for action, lat in d["latency"].items():
            out["latency"].setdefault(action, []).extend(lat)
        for action, seen in d["successes"].items():
            out["successes"].setdefault(action, []).extend(seen)
        for action, targets in d["missing"].items():
            out["missing"].setdefault(action, Counter()).update(targets)
        for key in counters:
            out[key].update(d[key])
        for key in ("join_lat", "rejoin_lat", "entries", "winners_seen"):
            out[key].extend(d[key])
        out["retries"] += d["retries"]
    return out


def probe_delivery(
    probes: dict[int, dict[str, Any]],
    sent: dict[int, Sequence[float]],
    until: float,
    states: dict[int, bytes],
) -> dict[str, Any]:
    """Chat delivery at the probes: each probe connected now and never resynced is owed every
    danmaku the room took (`states[wid][n] == 1`: its sender got `ok`) that was sent (by any
    client process, `sent[wid][n]` = when its n-th left) from its first welcome until `until`;
    a message is missing when the probe never got it. Probes that resynced (allowed to miss what
    the history no longer had) or went away are counted apart; so are danmaku the room refused
    (state 2), whose sender was cut before the answer (3) or that are still unanswered (0)."""
    expected = missing = judged = resynced = gone = 0
    for probe in probes.values():
        if probe["resynced"]:
            resynced += 1
            continue
        if not probe["connected"]:
            gone += 1
            continue
        judged += 1
        for wid, times in sent.items():  # each process's send times only grow
            got, state = probe["got"].get(wid, b""), states.get(wid, b"")
            lo, hi = bisect_left(times, probe["first"]), bisect_right(times, until)
            for n in range(lo, min(hi, len(state))):
                if state[n] == 1:
                    expected += 1
                    if n >= len(got) or not got[n]:
                        missing += 1
    fates = Counter(b for state in states.values() for b in state)
    return {
        "probes": len(probes),
        "judged": judged,
        "resynced": resynced,
        "gone": gone,
        "expected": expected,
        "missing": missing,
        "dups": sum(p["dups"] for p in probes.values()),
        "regress": sum(p["regress"] for p in probes.values()),
        "danmaku": {
            "accepted": fates[1],
            "refused": fates[2],
            "cut_before_answer": fates[3],
            "unanswered": fates[0],
        },
    }


# --- the summary table ---------------------------------------------------------------------


def _ms(v: Any) -> str:
    return fmt(v, ",.1f") if v is None or v < 100 or math.isinf(v) else fmt(v, ",.0f")


def _codes(codes: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(codes.items(), key=lambda kv: -kv[1])) or "-"


def _cpu(phase: dict[str, Any], names: Iterable[str]) -> str:
    cpu = phase.get("cpu") or {}
    vals = [cpu.get(n) for n in names]
    if not any(v is not None for v in vals):
        return "-"
    return str(round(sum(v for v in vals if v is not None and v == v)))


def _spike_lines(phase: dict[str, Any]) -> list[str]:
    f, kind = phase.get("figures") or {}, phase["kind"]
    if "error" in f:
        return [f"failed: {f['error']}"]
    out: list[str] = []
    if kind in ("seckill", "coupon") or (kind == "lottery" and f.get("entry") == "enter"):
        noun = {"seckill": "grabs", "coupon": "claims", "lottery": "lottery_enter"}[kind]
        lat = f.get("latency") or {}
        out.append(
            f"{f.get('requests', 0):,} {noun} over {phase['settings']['spread_s']:g} s: "
            f"answered {f.get('answers', 0):,} (missing {f.get('missing', 0):,}): "
            f"{_codes(f.get('codes') or {})}; p50 {_ms(lat.get('p50_ms'))} ms, p99 "
            f"{_ms(lat.get('p99_ms'))} ms, max {_ms(lat.get('max_ms'))} ms"
        )
    if kind == "seckill":
        out.append(
            f"granted {f.get('granted', 0):,} of stock {phase['settings']['stock']:,} "
            f"(limit {phase['settings']['limit']} per user)"
        )
    if kind == "coupon":
        out.append(f"granted {f.get('granted', 0):,} of {phase['settings']['quantity']:,} coupons")
    if kind == "lottery":
        if f.get("entry") == "keyword":
            out.append(
                f"{f.get('requests', 0):,} keyword danmaku over {phase['settings']['spread_s']:g} s"
            )
        out.append(
            f"{f.get('entrants', 0):,} entrants, {f.get('winners', 0)} winners drawn "
            f"(N = {phase['settings']['winners']}); draw call {_ms(f.get('draw_ms'))} ms"
        )
    reach = f.get("popup")
    if reach:
        out.append(
            f"{reach['kind']} popup reached {reach['viewers']:,} of {reach['live']:,} "
            f"viewers: p50 {_ms(reach['p50_ms'])} ms, p99 {_ms(reach['p99_ms'])} ms "
            "after the control call"
        )
    if kind == "reconnect":
        lat = f.get("rejoin") or {}
        out.append(
            f"{f.get('cut', 0):,} cut and reconnected over "
            f"{phase['settings']['spread_s']:g} s: {_codes(f.get('recovery') or {})}; "
            f"failed {f.get('failed', 0):,}; cut to welcome p50 {_ms(lat.get('p50_ms'))} "
            f"ms, p99 {_ms(lat.get('p99_ms'))} ms"
        )
    if kind == "join":
        lat = f.get("join") or {}
        out.append(
            f"{f.get('connected', 0):,} connected, {f.get('failed', 0):,} failed, in "
            f"{f.get('connect_s', 0):.1f} s; upgrade to welcome p50 "
            f"{_ms(lat.get('p50_ms'))} ms, p99 {_ms(lat.get('p99_ms'))} ms"
        )
        if f.get("errors"):
            out.append(f"connect errors: {f['errors']}")
    if kind == "danmaku" and "sent" in f:
        ack = f.get("ack") or {}
        out.append(
            f"{f['sent']:,} danmaku at {f['sent_per_s']:,.0f}/s (asked "
            f"{f['asked_per_s']:,.0f}/s, background included in the answers): "
            f"{_codes(f.get('answers') or {})}; send to result p50 "
            f"{_ms(ack.get('p50_ms'))} ms, p99 {_ms(ack.get('p99_ms'))} ms"
        )
    if kind == "likes" and f.get("likes_sent") is not None:
        out.append(
            f"{f['likes_sent']:,} likes sent; the room total a probe saw last: "
            f"{f.get('likes_seen', 0):,}"
        )
    return out


def render(report: dict[str, Any]) -> str:
    m = report.get("machine") or {}
    lines = [
        f"swarm, {report['date']}: {report['viewers']:,} viewers over "
        f"{report['client_procs']} client process{'es' if report['client_procs'] > 1 else ''} "
        f"({report['probes']} probes), room "
        f"{report['room']}",
        f"target: {report['target']['label']}",
        f"machine: {m.get('cpu_model')}, {m.get('nproc')} cores, {m.get('ram_gib')} GiB, "
        f"Python {m.get('python')}",
        "",
    ]
    engine = [k for k in (report.get("cpu_names") or []) if k.startswith("engine")]
    head = (
        f"{'phase':<11}{'s':>6}{'viewers':>9}{'sent/s':>9}{'deliv. msg/s':>14}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'lost':>6}"
        f"{'engine%':>9}{'redis%':>8}{'client%':>9}{'other%':>8}"
    )
    lines += [head, "-" * len(head)]
    for p in report["phases"]:
        lat = p.get("latency") or {}
        lines.append(
            f"{p['name'][:10]:<11}{p['seconds']:>6.1f}{p.get('viewers', 0):>9,}"
            f"{p.get('sent_per_s', 0):>9,.0f}{p.get('delivered_per_s', 0):>14,.0f}"
            f"{_ms(lat.get('p50_ms')):>9}{_ms(lat.get('p99_ms')):>9}{_ms(lat.get('max_ms')):>9}"
            f"{p.get('errors', 0):>8,}{p.get('lost', 0):>6,}{_cpu(p, engine):>9}"
            f"{_cpu(p, ['redis']):>8}{_cpu(p, ['clients']):>9}{_cpu(p, ['other']):>8}"
        )
    lines += [
        "",
        "sent/s: danmaku and like messages the viewers sent; deliv. msg/s: chat "
        "messages received by all viewers; p50/p99/max: danmaku send-to-deliver at the "
        "probes, for messages received in the phase",
        "",
    ]
    for p in report["phases"]:
        for i, text in enumerate(_spike_lines(p)):
            lines.append(f"{p['name'][:10] if i == 0 else '':<11}{text}")
    d = report.get("drops") or {}
    lines += ["", "drops and errors"]
    if "expected" in d:
        lines.append(
            f"  chat messages missing at probes: {d['missing']:,} of {d['expected']:,} "
            f"({d['judged']} probes judged, {d['resynced']} resynced, {d['gone']} gone); "
            f"delivered twice: {d['dups']}"
        )
    fates = d.get("danmaku")
    if fates:
        lines.append(
            f"  timed danmaku: {fates['accepted']:,} taken by the room, "
            f"{fates['refused']:,} refused, {fates['cut_before_answer']:,} cut before "
            f"their answer, {fates['unanswered']:,} unanswered"
        )
    lines.append(f"  connections lost (not cut by the swarm): {_codes(d.get('lost') or {})}")
    lines.append(f"  close frames from the server: {_codes(d.get('closes') or {})}")
    lines.append(f"  error frames not answering a request: {_codes(d.get('errors') or {})}")
    lines.append(
        f"  requests never answered: {_codes(d.get('unanswered') or {})}; retried "
        f"(unavailable): {d.get('retries', 0)}"
    )
    engine_drops = d.get("engine") or {}
    if engine_drops:
        lines.append(
            f"  engine: chat frames dropped for slow viewers "
            f"{engine_drops.get('frames_dropped', 0):,.0f}, slow viewers closed "
            f"{engine_drops.get('slow_consumer_closes', 0):,.0f}"
        )
    lines += ["", "invariants"]
    counts: Counter[str] = Counter()
    for p in report["phases"]:
        for c in p.get("checks") or []:
            counts[c["verdict"]] += 1
            lines.append(f"  {c['verdict']:<12}{p['name'][:10]:<11}{c['name']}: {c['detail']}")
    if not counts:
        lines.append("  (no spike phase: nothing checked)")
    if report.get("error"):
        lines += ["", f"ERROR: {report['error']} (the phases after it did not run)"]
    lines += [
        "",
        f"verdict: {report['verdict']} ({counts['PASS']} passed, {counts['FAIL']} "
        f"failed, {counts['not checked']} not checked)",
        "",
        f"command: {report['command']}",
    ]
    if report.get("json"):
        lines.append(f"json: {report['json']}")
    for chart in report.get("charts") or []:
        lines.append(f"chart: {chart}")
    return "\n".join(lines)


def verdict(phases: list[dict[str, Any]]) -> str:
    failed = any(c["verdict"] == "FAIL" for p in phases for c in p.get("checks") or [])
    return "FAIL" if failed else "PASS"
