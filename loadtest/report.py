"""The benchmark's table and its PASS/MISS verdicts against the targets."""

from __future__ import annotations

import math
from typing import Any

TARGET_FANOUT_RATIO = 1.1  # engine one-msg-per-frame delivered msgs/s vs the baseline
TARGET_HOT_CPU = 35.0  # % of one core
TARGET_HOT_P99_MS = 250.0
TARGET_IDLE_KIB = 14.0
NOISY_CPU = 15.0  # % of a core used by processes outside the benchmark during a window

Row = tuple[str, str, str, str, str, str]


def _get(results: dict[str, Any], server: str, *path: str) -> Any:
    node: Any = results.get("servers", {}).get(server)
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _num(v: Any, fmt: str = ",.0f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, fmt)


def _ms(v: Any) -> str:
    return "-" if v is None else ("> drain" if math.isinf(v) else f"{v:,.0f}")


def _ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: the engine's figure, the target, PASS or MISS (absent if not measured)."""
    out: dict[str, dict[str, Any]] = {}
    e = _get(results, "engine-0", "fanout", "msgs_per_s")
    b = _get(results, "baseline-0", "fanout", "msgs_per_s")
    if e is not None and b:
        out["fanout_ratio"] = {"value": e / b, "target": f">= {TARGET_FANOUT_RATIO}x baseline",
                               "pass": e / b >= TARGET_FANOUT_RATIO}  # fmt: skip
    cpu = _get(results, "engine-100", "hot", "server_cpu")
    if cpu is not None:
        out["hot_cpu"] = {"value": cpu, "target": f"<= {TARGET_HOT_CPU:g}% of one core",
                          "pass": cpu <= TARGET_HOT_CPU}  # fmt: skip
    p99 = _get(results, "engine-100", "hot", "latency", "p99_ms")
    if p99 is not None:
        out["hot_p99"] = {"value": p99, "target": f"<= {TARGET_HOT_P99_MS:g} ms",
                          "pass": p99 <= TARGET_HOT_P99_MS}  # fmt: skip
    mems = [m for m in (_get(results, s, "memory", "per_conn_bytes")
                        for s in ("engine-100", "engine-0")) if m is not None]  # fmt: skip
    if mems:
        worst = max(mems) / 1024
        out["idle_memory"] = {"value": worst, "target": f"<= {TARGET_IDLE_KIB:g} KiB/connection",
                              "pass": worst <= TARGET_IDLE_KIB}  # fmt: skip
    return out


def _verdict(v: dict[str, Any] | None) -> tuple[str, str]:
    if v is None:
        return "", ""
    return v["target"], "PASS" if v["pass"] else "MISS"


def _cpu_rows(results: dict[str, Any], eng: str, base: str, scen: str) -> list[Row]:
    def clients(server: str) -> str:
        cpu = _get(results, server, scen, "client_cpu")
        if not cpu:
            return "-"
        parts = " + ".join(f"{v:.0f}" for v in cpu.values())
        return f"{sum(cpu.values()):.0f} ({parts})"

    return [
        ("  server CPU % (100 = one core)", _num(_get(results, eng, scen, "server_cpu")),
         _num(_get(results, base, scen, "server_cpu")), "", "", ""),
        ("  redis-server CPU %", _num(_get(results, eng, scen, "redis_cpu")), "n/a", "", "", ""),
        ("  load client CPU % (viewers.. + publisher)", clients(eng), clients(base), "", "", ""),
        ("  machine busy % (200 = both cores)", _num(_get(results, eng, scen, "machine_busy")),
         _num(_get(results, base, scen, "machine_busy")), "", "", ""),
        ("  other processes' CPU % (not ours)", _num(_get(results, eng, scen, "other_cpu")),
         _num(_get(results, base, scen, "other_cpu")), "", "", ""),
    ]  # fmt: skip


def _throughput_rows(results: dict[str, Any], scen: str, eng: str, base: str,
                     title: str, v: dict[str, Any] | None) -> list[Row]:  # fmt: skip
    e = _get(results, eng, scen, "msgs_per_s")
    b = _get(results, base, scen, "msgs_per_s")
    target, verdict = _verdict(v)
    rows: list[Row] = [
        (title, "", "", "", "", ""),
        ("  delivered messages/s", _num(e), _num(b), _ratio(e, b), target, verdict),
        ("  delivered frames/s", _num(_get(results, eng, scen, "frames_per_s")),
         _num(_get(results, base, scen, "frames_per_s")), "", "", ""),
        ("  danmaku/s in (publisher)", _num(_get(results, eng, scen, "pub_sent_per_s")),
         _num(_get(results, base, scen, "pub_sent_per_s")), "", "", ""),
    ]  # fmt: skip
    rows += _cpu_rows(results, eng, base, scen)
    rows.append(("  deliveries lost (expected - counted)", _num(_get(results, eng, scen, "lost")),
                 _num(_get(results, base, scen, "lost")), "", "", ""))  # fmt: skip
    rows.append(("  engine: frames dropped / slow-consumer closes", _drops(results, eng, scen),
                 "n/a", "", "", ""))  # fmt: skip
    return rows


def _hot_rows(results: dict[str, Any], ver: dict[str, Any]) -> list[Row]:
    def both(*path: str, f: Any = _num) -> str:
        vals = [(n, _get(results, s, "hot", *path)) for n, s in
                (("plain", "baseline-0"), ("batched", "baseline-100"))]  # fmt: skip
        vals = [(n, v) for n, v in vals if v is not None]
        return " / ".join(f"{n} {f(v)}" for n, v in vals) or "-"

    eng = "engine-100"
    cpu_t, cpu_v = _verdict(ver.get("hot_cpu"))
    p99_t, p99_v = _verdict(ver.get("hot_p99"))
    rate = _get(results, eng, "hot", "rate_target") or _get(results, "baseline-0", "hot",
                                                              "rate_target")  # fmt: skip
    return [
        (f"5. hot room: {_num(rate)} danmaku/s in, engine tick 100 ms", "", "", "", "", ""),
        ("  danmaku/s sent in window", _num(_get(results, eng, "hot", "sent_per_s")),
         both("sent_per_s"), "", "", ""),
        ("  server CPU % (100 = one core)", _num(_get(results, eng, "hot", "server_cpu")),
         both("server_cpu"), "", cpu_t, cpu_v),
        ("  redis-server CPU %", _num(_get(results, eng, "hot", "redis_cpu")), "n/a", "", "", ""),
        ("  send-to-deliver p50 ms", _ms(_get(results, eng, "hot", "latency", "p50_ms")),
         both("latency", "p50_ms", f=_ms), "", "", ""),
        ("  send-to-deliver p99 ms", _ms(_get(results, eng, "hot", "latency", "p99_ms")),
         both("latency", "p99_ms", f=_ms), "", p99_t, p99_v),
        ("  of which until the server took it in, p50 / p99",
         _intake(_get(results, eng, "hot", "latency")), both("latency", f=_intake), "", "", ""),
        ("  deliveries lost (expected - counted)", _num(_get(results, eng, "hot", "lost")),
         both("lost"), "", "", ""),
        ("  engine: frames dropped / slow-consumer closes", _drops(results, eng, "hot"), "n/a",
         "", "", ""),
        ("  probe deliveries measured / missing",
         _pair(_get(results, eng, "hot", "latency")), both("latency", f=_pair), "", "", ""),
        ("  load client CPU % (all processes)",
         _num(_get(results, eng, "hot", "client_cpu_total")), both("client_cpu_total"), "", "",
         ""),
        ("  machine busy % (200 = both cores)", _num(_get(results, eng, "hot", "machine_busy")),
         both("machine_busy"), "", "", ""),
        ("  other processes' CPU % (not ours)", _num(_get(results, eng, "hot", "other_cpu")),
         both("other_cpu"), "", "", ""),
    ]  # fmt: skip


def _source(results: dict[str, Any]) -> str:
    src = results.get("engine_source") or {}
    rev = (src.get("rev") or "?")[:12]
    if src.get("tree") and "engine_dirty" not in src:
        return f"engine: commit {rev}, exported to {src['tree']}"
    dirty = " + uncommitted changes in engine/ or scripts/" if src.get("engine_dirty") else ""
    return f"engine: working tree at {rev}{dirty}"


def _drops(results: dict[str, Any], server: str, scen: str) -> str:
    c = _get(results, server, scen, "engine_counters")
    if not c:
        return "-"
    return f"{c.get('frames_dropped', 0):,.0f} / {c.get('slow_consumer_closes', 0):,.0f}"


def _method(results: dict[str, Any]) -> list[str]:
    o = results.get("settings", {})
    if not o:
        return []
    return [
        f"method: one room; windows of {o['duration']:g} s after {o['warmup']:g} s of load; "
        f"{o['client_procs']} viewer processes + 1 publisher (select.epoll, raw sockets);",
        f"  fan-out/batch: closed loop, at most {o['window']} / {o['batch_window']} messages in "
        "flight (delivered = seen by the viewer that connected last);",
        f"  hot: open loop, {o['hot_rate']:g} danmaku/s over {o['hot_senders']} senders; "
        f"latency on {o['probes']} probe viewers read at once, the other viewers read every "
        f"{o['pace']:g} s;",
        "  CPU % = CPU seconds / wall seconds x 100 (100 = one core), per process, via psutil.",
    ]


def _intake(lat: Any) -> str:
    if not lat or lat.get("intake_p50_ms") is None:
        return "-"
    return f"{lat['intake_p50_ms']:,.0f} / {lat['intake_p99_ms']:,.0f}"


def _pair(lat: Any) -> str:
    return "-" if not lat else f"{lat['samples']:,} / {lat['missing']:,}"


def render(results: dict[str, Any]) -> str:
    ver = verdicts(results)
    viewers = next((s.get("viewers") for s in results.get("servers", {}).values()), None)
    rows: list[Row] = [("figure", "engine", "websockets baseline", "ratio", "target", "result")]
    if _get(results, "engine-0", "fanout") or _get(results, "baseline-0", "fanout"):
        rows += _throughput_rows(results, "fanout", "engine-0", "baseline-0",
                                 "1. fan-out, one message per frame (engine tick 0 / plain)",
                                 ver.get("fanout_ratio"))  # fmt: skip
    if _get(results, "engine-100", "batch") or _get(results, "baseline-100", "batch"):
        rows += _throughput_rows(
            results,
            "batch",
            "engine-100",
            "baseline-100",
            "2. tick batching, 100 ms (engine default / batched)",
            None,
        )
    mem = {s: _get(results, s, "memory", "per_conn_bytes") for s in results.get("servers", {})}
    if any(v is not None for v in mem.values()):
        t, v = _verdict(ver.get("idle_memory"))

        def kib(server: str) -> str:
            return "-" if mem.get(server) is None else f"{mem[server] / 1024:.2f}"

        rows += [
            ("4. idle memory per connection, KiB (RSS growth / N)", "", "", "", "", ""),
            ("  engine tick 100 ms / baseline plain", kib("engine-100"), kib("baseline-0"),
             "", t, v),
            ("  engine tick 0 / baseline batched", kib("engine-0"), kib("baseline-100"),
             "", "", ""),
        ]  # fmt: skip
    if any(_get(results, s, "hot") for s in ("engine-100", "baseline-0", "baseline-100")):
        rows += _hot_rows(results, ver)
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = [f"fan-out benchmark, {viewers} viewers in one room, {results.get('date', '')}",
             f"command: {results.get('command', '')}", _source(results), ""]  # fmt: skip
    for i, row in enumerate(rows):
        values = zip(row[1:4], widths[1:4], strict=True)
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in values]
        cells += [row[4].ljust(widths[4]), row[5]]
        lines.append(" | ".join(cells).rstrip())
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    noisy = [
        f"{server}/{scen}"
        for server, res in results.get("servers", {}).items()
        for scen in ("fanout", "batch", "hot")
        if isinstance(res.get(scen), dict) and res[scen].get("other_cpu", 0) > NOISY_CPU
    ]
    if noisy:
        lines.append("")
        lines.append(
            f"WARNING: other processes used > {NOISY_CPU:g}% of a core during "
            f"{', '.join(noisy)}: the machine was not quiet, rerun those figures"
        )
    lines += ["", *_method(results)]
    misses = [k for k, v in ver.items() if not v["pass"]]
    lines.append("")
    lines.append("targets: " + (", ".join(f"{k} {'PASS' if v['pass'] else 'MISS'}"
                                          for k, v in ver.items()) or "none measured"))  # fmt: skip
    if misses:
        lines.append(
            f"MISSED: {', '.join(misses)} (see docs/benchmarks.md for where the time goes)"
        )
    return "\n".join(lines)
