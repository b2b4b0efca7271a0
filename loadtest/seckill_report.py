"""The flash-sale benchmark's table and its PASS/MISS verdicts (`loadtest.bench_seckill`)."""

from __future__ import annotations

import math
from typing import Any

TARGET_RATIO = 0.60  # end-to-end decisions/s vs redis-benchmark's, one grab per call
TARGET_P99_MS = 100.0


def pct(samples: list[float], q: float, missing: int) -> float | None:
    """Percentile in ms, with every missing answer counted as infinitely late."""
    total = len(samples) + missing
    if not total:
        return None
    i = max(0, math.ceil(q * total) - 1)
    return samples[i] * 1000 if i < len(samples) else math.inf


def fmt(v: float | None, spec: str = ",.0f") -> str:
    if v is None:
        return "-"
    return "inf" if isinstance(v, float) and math.isinf(v) else format(v, spec)


def verdicts(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    v: dict[str, dict[str, Any]] = {}
    single = out.get("redis", {}).get("per_call_1", {}).get("decisions_per_s")
    e2e = out.get("e2e", {}).get("decisions_per_s")
    if single and e2e is not None:
        v["e2e_ratio"] = {
            "value": e2e / single,
            "target": f">= {TARGET_RATIO:.0%} of redis-benchmark (1 grab per call)",
            "pass": e2e / single >= TARGET_RATIO,
        }
    spike = out.get("spike")
    if spike:
        p99 = spike["p99_ms"]
        v["spike_p99"] = {
            "value": p99,
            "target": f"< {TARGET_P99_MS:g} ms",
            "pass": p99 is not None and p99 < TARGET_P99_MS,
        }
        v["no_oversell"] = {
            "value": spike["redis"]["granted"],
            "target": f"granted == stock ({spike['stock']}), stock = left + held + sold",
            "pass": not spike["oversell"] and spike["exact"],
        }
    return v


def render(out: dict[str, Any]) -> str:
    m = out["machine"]
    lines = [
        f"flash-sale benchmark, {out['date']}",
        f"machine: {m.get('cpu_model')}, {m.get('nproc')} cores, {m.get('ram_gib')} GiB, "
        f"Python {m.get('python')}, redis {m.get('redis')}",
        "",
        f"{'figure':<58} {'value':>14}",
        "-" * 73,
    ]

    def row(name: str, value: str) -> None:
        lines.append(f"{name:<58} {value:>14}")

    rb = out.get("redis", {})
    for key, label in (
        ("per_call_1", "1 grab per EVALSHA"),
        ("per_call_100", "100 grabs per EVALSHA"),
    ):
        if key in rb:
            row(f"redis-benchmark, {label}: decisions/s", fmt(rb[key]["decisions_per_s"]))
    e2e = out.get("e2e")
    if e2e:
        row(
            f"end to end, 1 node, {e2e['connections']} viewers x {e2e['window']} in flight: "
            "decisions/s",
            fmt(e2e["decisions_per_s"]),
        )
        row(
            "  engine CPU % / redis-server CPU % / load client CPU %",
            f"{e2e['engine_cpu']:.0f} / {e2e['redis_cpu']:.0f} / {e2e['client_cpu']:.0f}",
        )
    spike = out.get("spike")
    if spike:
        row(
            f"spike, {spike['viewers']:,} viewers in {spike['spread_s']:g} s, "
            f"{spike['nodes']} node(s): grab p50 ms",
            fmt(spike["p50_ms"], ",.1f"),
        )
        row("  grab p99 ms", fmt(spike["p99_ms"], ",.1f"))
        row(
            f"  granted of stock {spike['stock']} (answers {spike['codes']})",
            f"{spike['redis']['granted']}",
        )
        row("  missing answers", str(spike["missing"]))
        row("  grab p50 / p99 ms to the answer's arrival (kernel stamp)",
            f"{fmt(spike.get('kernel_p50_ms'))} / {fmt(spike.get('kernel_p99_ms'))}")  # fmt: skip
        row("  engine CPU, % of a core per node",
            " ".join(f"{c:.0f}" for c in spike["engine_cpu"]))  # fmt: skip
    base = out.get("baseline")
    if base:
        row("baseline spike (plain websockets, stock in memory): grab p50 ms",
            fmt(base["p50_ms"], ",.1f"))  # fmt: skip
        row("  grab p99 ms", fmt(base["p99_ms"], ",.1f"))
        row(f"  granted of stock {base['stock']} (answers {base['codes']})",
            str(base["codes"].get("ok", 0)))  # fmt: skip
        row("  server CPU, % of a core", f"{base['server_cpu']:.0f}")
    quiet = [f"{part} {out[part]['other_cpu_before']:.0f}%"
             for part in ("redis", "e2e", "spike", "baseline")
             if out.get(part, {}).get("other_cpu_before") is not None]  # fmt: skip
    if quiet:
        row("other processes' CPU before each part, % of a core", ", ".join(quiet))
    lines.append("")
    for name, verdict in out["verdicts"].items():
        value = verdict["value"]
        shown = f"{value:.0%}" if name == "e2e_ratio" else fmt(value, ",.1f")
        lines.append(
            f"{'PASS' if verdict['pass'] else 'MISS'}  {name}: {shown} (target {verdict['target']})"
        )
    lines += ["", f"command: {out['command']}"]
    return "\n".join(lines)
