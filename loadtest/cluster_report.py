"""`loadtest.bench_cluster`'s tables and verdicts: one node vs two, the --workers 2 search, the
resume storms."""

from __future__ import annotations

import math
from typing import Any

from loadtest.report import NOISY_CPU, TARGET_HOT_P99_MS

GOAL_VIEWERS = 19_900


def _num(v: Any, spec: str = ",.0f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def _ms(v: Any) -> str:
    return "-" if v is None else ("> drain" if math.isinf(v) else f"{v:,.0f}")


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def largest_held(search: dict[str, Any]) -> int:
    held = [s["viewers"] for s in search.get("steps", []) if s.get("held")]
    return max(held, default=0)


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    cross = results.get("cross")
    if cross:
        for nodes in (1, 2):
            p99 = _get(cross, f"nodes-{nodes}", "hot", "latency", "p99_ms")
            if p99 is not None:
                out[f"hot_p99_{nodes}_node{'s' if nodes > 1 else ''}"] = {
                    "value": p99,
                    "target": f"<= {TARGET_HOT_P99_MS:g} ms",
                    "pass": p99 <= TARGET_HOT_P99_MS,
                }
    search = results.get("search")
    if search:
        goal = results.get("settings", {}).get("goal", GOAL_VIEWERS)
        best = largest_held(search)
        out["search_goal"] = {
            "value": best,
            "target": f"{goal:,} viewers at p99 < {results['settings']['target_p99']:g} ms "
            f"(--workers {search['workers']})",
            "pass": best >= goal,
        }
    for key, storm in (results.get("storm") or {}).items():
        nodes = storm["workers"]
        warm, cold = storm.get("warm") or {}, storm.get("cold") or {}
        reads = (warm.get("history_reads"), cold.get("history_reads"))
        if None not in reads:
            out[f"storm_reads_{key}"] = {
                "value": f"warm {reads[0]}, cold {reads[1]}",
                "target": f"warm 0, cold <= {nodes} (one per node)",
                "pass": reads[0] == 0 and reads[1] <= nodes,
            }
        for mode, res in (("warm", warm), ("cold", cold)):
            if res:
                resumed = res["recovery"].get("resumed", 0)
                out[f"storm_all_resumed_{key}_{mode}"] = {
                    "value": f"{resumed:,} resumed, {res['caught_up']:,} caught up",
                    "target": f"all {res['viewers']:,}",
                    "pass": resumed == res["viewers"] == res["caught_up"],
                }
    return out


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append(" | ".join(cells).rstrip())
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return lines


def _cpu_by_process(res: dict[str, Any] | None) -> str:
    procs = (res or {}).get("engine_cpu_by_process") or {}
    workers = [v for k, v in procs.items() if not k.startswith("supervisor")]
    return " + ".join(f"{v:.0f}" for v in workers) or "-"


def _cross(results: dict[str, Any]) -> list[str]:
    cross = results["cross"]
    one, two = cross.get("nodes-1", {}), cross.get("nodes-2", {})

    def row(
        label: str, path: tuple[str, ...], f: Any = _num, ratio: bool = False
    ) -> tuple[str, str, str, str]:
        a, b = _get(one, *path), _get(two, *path)
        numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
        shown = f"{b / a:.2f}x" if ratio and numbers and a and math.isfinite(a + b) else ""
        return (label, f(a), f(b), shown)

    def by_node(res: dict[str, Any], scen: str) -> str:
        per = _get(res, scen, "msgs_per_s_by_node") or []
        return " / ".join(_num(v) for v in per) or "-"

    def clients(res: dict[str, Any], scen: str) -> str:
        return _num(_get(res, scen, "client_cpu_total"))

    rate = results.get("settings", {}).get("hot_rate", 500)
    rows: list[tuple[str, ...]] = [("figure", "1 node", "2 nodes, one Redis", "2 / 1")]
    if one.get("fanout") or two.get("fanout"):
        rows += [
            ("fan-out, one message per frame (tick 0, closed loop)", "", "", ""),
            row("  delivered messages/s", ("fanout", "msgs_per_s"), ratio=True),
            ("  of which on node A / node B", by_node(one, "fanout"), by_node(two, "fanout"), ""),
            row("  danmaku/s in", ("fanout", "pub_sent_per_s")),
            row("  engine CPU %, all nodes", ("fanout", "server_cpu"), ratio=True),
            ("  engine CPU % per node", _cpu_by_process(one.get("fanout")),
             _cpu_by_process(two.get("fanout")), ""),
            row("  redis-server CPU %", ("fanout", "redis_cpu")),
            ("  load client CPU %", clients(one, "fanout"), clients(two, "fanout"), ""),
            row("  other processes' CPU %", ("fanout", "other_cpu")),
            row("  deliveries lost", ("fanout", "lost")),
        ]  # fmt: skip
    if one.get("hot") or two.get("hot"):
        rows += [
            (f"hot room: {rate:g} danmaku/s in, tick 100 ms", "", "", ""),
            row("  danmaku/s sent in window", ("hot", "sent_per_s")),
            row("  send-to-deliver p50 ms", ("hot", "latency", "p50_ms"), _ms, ratio=True),
            row("  send-to-deliver p99 ms", ("hot", "latency", "p99_ms"), _ms, ratio=True),
            row("  engine CPU %, all nodes", ("hot", "server_cpu"), ratio=True),
            ("  engine CPU % per node", _cpu_by_process(one.get("hot")),
             _cpu_by_process(two.get("hot")), ""),
            row("  redis-server CPU %", ("hot", "redis_cpu")),
            ("  load client CPU %", clients(one, "hot"), clients(two, "hot"), ""),
            row("  other processes' CPU %", ("hot", "other_cpu")),
            row("  deliveries lost", ("hot", "lost")),
            row("  probe deliveries missing", ("hot", "latency", "missing")),
        ]  # fmt: skip
    viewers = _get(one, "fanout_room", "viewers") or _get(one, "hot_room", "viewers")
    return [f"1. one node vs two nodes on one Redis, {_num(viewers)} viewers "
            "(two nodes: half on each)", *_table(rows)]  # fmt: skip


def _search(results: dict[str, Any]) -> list[str]:
    search = results["search"]
    rows: list[tuple[str, ...]] = [
        ("viewers", "p50 ms", "p99 ms", "held", "engine CPU % (workers)", "redis %",
         "clients %", "other %", "lost", "dropped / closed")
    ]  # fmt: skip
    for step in search["steps"]:
        hot = step["hot"]
        lat = hot["latency"]
        c = hot.get("engine_counters") or {}
        short = "" if step["viewers"] == step["step"] else f" of {step['step']:,}"
        rows.append((
            _num(step["viewers"]) + short,
            _ms(lat["p50_ms"]), _ms(lat["p99_ms"]), "yes" if step["held"] else "NO",
            f"{hot['server_cpu']:.0f} ({_cpu_by_process(hot)})", _num(hot["redis_cpu"]),
            _num(hot["client_cpu_total"]), _num(hot["other_cpu"]), _num(hot["lost"]),
            f"{c.get('frames_dropped', 0):,.0f} / {c.get('slow_consumer_closes', 0):,.0f}",
        ))  # fmt: skip
    rate = results.get("settings", {}).get("hot_rate", 500)
    return [f"2. hot room ({rate:g} danmaku/s in) on `engine run --workers {search['workers']}`: "
            f"largest held with p99 < {results['settings']['target_p99']:g} ms: "
            f"{largest_held(search):,} viewers", *_table(rows)]  # fmt: skip


def _storm(results: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, ...]] = [
        ("engine", "storm", "welcome: recovery", "opened over s", "all welcomed s",
         "welcome p50 / p99 ms", "all caught up s", "catch-up p50 / p99 ms", "engine CPU s (%)",
         "redis CPU s (%)", "clients CPU s", "other %", "history reads")
    ]  # fmt: skip
    for storm in (results.get("storm") or {}).values():
        for mode in ("fresh", "warm", "cold"):
            r = storm.get(mode)
            if not r:
                continue
            wall = r["wall_s"] or 1.0
            recovery = ", ".join(f"{v:,} {k}" for k, v in sorted(r["recovery"].items()))
            missing = r["viewers"] - sum(r["recovery"].values())
            rows.append((
                f"--workers {storm['workers']}", mode,
                recovery + (f", {missing:,} none" if missing else ""),
                _num(r["opened_over_s"], ".2f"), _num(r.get("all_welcome_s"), ".2f"),
                f"{_ms(r.get('welcome_p50_ms'))} / {_ms(r.get('welcome_p99_ms'))}",
                _num(r["all_caught_up_s"], ".2f"),
                f"{_ms(r['catch_up_p50_ms'])} / {_ms(r['catch_up_p99_ms'])}",
                f"{r['engine_cpu_s']:.2f} ({100 * r['engine_cpu_s'] / wall:.0f})",
                f"{r['redis_cpu_s']:.2f} ({100 * r['redis_cpu_s'] / wall:.0f})",
                f"{r['client_cpu_s']:.2f}", _num(r["other_cpu"]), str(r["history_reads"]),
            ))  # fmt: skip
    s = results.get("settings", {})
    return [f"3. resume storm: {s.get('storm_viewers', 0):,} viewers connecting within "
            f"{s.get('storm_spread', 0):g} s: fresh (no position), warm and cold (since = seq - "
            f"{s.get('storm_back', 0)}, the room open on every node / on none)",
            *_table(rows)]  # fmt: skip


def _source(results: dict[str, Any]) -> str:
    src = results.get("engine_source") or {}
    rev = (src.get("rev") or "?")[:12]
    if src.get("tree") and "engine_dirty" not in src:
        return f"engine: commit {rev}, exported to {src['tree']}"
    dirty = " + uncommitted changes in engine/ or scripts/" if src.get("engine_dirty") else ""
    return f"engine: working tree at {rev}{dirty}"


def render(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    lines = [
        f"across nodes and workers, {results.get('date', '')}",
        f"command: {results.get('command', '')}",
        _source(results),
        f"machine: {m.get('cpu_model')}, {m.get('nproc')} cores, {m.get('ram_gib')} GiB, "
        f"Python {m.get('python')}, redis {m.get('redis')}",
    ]
    for key, part in (("cross", _cross), ("search", _search), ("storm", _storm)):
        if results.get(key):
            lines += ["", *part(results)]
    noisy = _noisy(results)
    if noisy:
        lines += ["", f"WARNING: other processes used > {NOISY_CPU:g}% of a core during "
                  f"{', '.join(noisy)}: the machine was not quiet"]  # fmt: skip
    ver = results.get("verdicts") or verdicts(results)
    lines += ["", "verdicts:"]
    for name, v in ver.items():
        value = v["value"]
        shown = _ms(value) + " ms" if name.startswith("hot_p99") else (
            f"{value:,}" if isinstance(value, int) else str(value))  # fmt: skip
        lines.append(f"  {name}: {shown} (target {v['target']}): {'PASS' if v['pass'] else 'MISS'}")
    return "\n".join(lines)


def _noisy(results: dict[str, Any]) -> list[str]:
    """The disturbed windows, each with the processes outside the benchmark that used most."""
    windows: list[tuple[str, Any]] = []
    for nodes, res in (results.get("cross") or {}).items():
        windows += [(f"cross {nodes}/{scen}", res.get(scen)) for scen in ("fanout", "hot")]
    for step in (results.get("search") or {}).get("steps", []):
        windows.append((f"search {step['step']}", step["hot"]))
    for key, storm in (results.get("storm") or {}).items():
        windows += [(f"storm {key}/{mode}", storm.get(mode)) for mode in ("fresh", "warm", "cold")]
    out = []
    for name, figures in windows:
        if isinstance(figures, dict) and (figures.get("other_cpu") or 0) > NOISY_CPU:
            top = ", ".join(figures.get("other_top") or [])
            out.append(f"{name} ({figures['other_cpu']:.0f}%{': ' + top if top else ''})")
    return out
