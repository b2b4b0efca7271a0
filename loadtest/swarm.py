"""The Trio swarm: tens of thousands of WebSocket viewers in one live room, driven through a
scripted timeline (join ramp, danmaku storm, like storm, flash sale at t0, coupon drop, lottery
draw, reconnect storm), with the invariants checked after every spike.

    python -m loadtest.swarm                                  # own engine, 2,000 viewers
    python -m loadtest.swarm --viewers 10000 --procs 2        # bigger
    python -m loadtest.swarm --phases seckill,coupon --set seckill.stock=500
    python -m loadtest.swarm --timeline my-live.json          # a timeline file (JSON or YAML)
    python -m loadtest.swarm --ws-url ws://127.0.0.1:8900/v1/ws \\
        --http-url http://127.0.0.1:8901 --redis-url redis://127.0.0.1:PORT/0   # `make run`

Without `--ws-url` it starts its own engine (a private redis-server and `--nodes` engine nodes);
with it, it loads that engine, signing viewer tokens with `--secret KID:SECRET` (or
`--keys-file`, default `var/dev-keys.json`, the key `make run` made) and calling the control API
at `--http-url` with an admin token (minted, or `--admin-token`). The viewers are spread over
`--procs` client processes (`loadtest/swarmclient.py`: epoll loops over raw sockets; 20,000
open files each). While it runs, a progress line a second goes to stderr; at the end the summary
table goes to stdout, every figure to `<out>/swarm-<time>.json` and two PNG charts beside it.
Exit status: 0 every invariant held, 1 an invariant FAILED, 2 bad arguments or no target, 3 a
phase could not finish (the error is in the table and the JSON).
The timeline and every figure: loadtest/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shlex
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import trio

from engine.identity import mint_token
from engine.store.store import open_redis
from loadtest.bench_seckill import redis_version
from loadtest.control import Control, ControlError
from loadtest.servers import REPO, machine_info
from loadtest.swarm_checks import EventTail
from loadtest.swarm_phases import PRODUCT, RUNNERS, Run, delivery_at_probes
from loadtest.swarm_report import render, summary, verdict
from loadtest.swarm_sampler import Sampler, log, phase_figures
from loadtest.swarm_target import CpuMeter, Target, TargetError, deployed, start_own, wait_quiet
from loadtest.swarm_timeline import Timeline, TimelineError, build_timeline
from loadtest.swarm_workers import Workers

RESULTS = REPO / "loadtest" / "results"
MAX_PER_PROC = 19_000  # sockets per client process (open-files limit 20,000, pipes and files)


def worker_configs(
    opts: argparse.Namespace, target: Target, n: int, room: str, tag: str, probes: int
) -> list[dict[str, Any]]:
    every = max(1, opts.viewers // max(1, probes))
    out = []
    for i in range(n):
        host, port, path = target.ws[i % len(target.ws)]
        out.append(
            {
                "wid": i,
                "workers": n,
                "prefix": f"sw{tag}-",
                "room": room,
                "kid": target.kid,
                "secret": target.keys[target.kid].decode(),
                "ttl_s": 6 * 3600,
                "path": path,
                "host": host,
                "port": port,
                "probe_every": every,
                "forwarded_for": not opts.real_ip,
            }
        )
    return out


async def setup_room(admin: Control, room: str) -> None:
    """The room created and live, with a product to sell (a room that exists already is fine)."""
    try:
        await admin.call("create_room", room, title="swarm load test", anchor="swarm-anchor")
    except ControlError as exc:
        if exc.code != "room_exists":
            raise
    try:
        await admin.call("start_room", room)
    except ControlError as exc:
        if exc.code != "bad_state":
            raise
    await admin.call(
        "set_products",
        room,
        products=[
            {
                "id": PRODUCT,
                "name": "Swarm phone",
                "price": 9900,
                "list_price": 12900,
                "image": "https://example.com/swarm-phone.png",
                "stock": 1_000_000,
            }
        ],
    )


async def swarm(
    opts: argparse.Namespace, timeline: Timeline, target: Target, report: dict[str, Any]
) -> None:
    """Run the timeline against `target`; fills `report`."""
    n_procs = report["client_procs"]
    tag = time.strftime("%H%M%S") + secrets.token_hex(2)
    room = opts.room or f"swarm-{tag}"
    report["room"] = room
    workers = Workers(n_procs)
    try:
        async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
            workers.start(nursery)
            cfgs = worker_configs(opts, target, n_procs, room, tag, report["probes"])
            await workers.ask_all([("setup", cfg) for cfg in cfgs])
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=60))
            token = target.admin_token or mint_token(
                target.keys, user="swarm-admin", room=room, role="admin", ttl_s=6 * 3600
            )
            admin = Control(http, target.http_url, token)
            await admin.load()
            await setup_room(admin, room)
            redis = tail = None
            if target.redis_url:
                redis = await stack.enter_async_context(open_redis(target.redis_url))
                tail = EventTail(redis, room)
                await tail.start()
                nursery.start_soon(tail.run)
            meter = CpuMeter(target.procs(), workers.cpu_s)
            if opts.quiet_wait > 0:
                log(f"waiting up to {opts.quiet_wait:g} s for a quiet machine")
                report["other_cpu_before"] = await trio.to_thread.run_sync(
                    wait_quiet, meter, opts.quiet_wait, opts.quiet_max, log
                )
            report["cpu_names"] = [*target.procs(), "clients", "other"]
            counters0 = await trio.to_thread.run_sync(target.counters)
            started = time.time()
            sampler = Sampler(workers, meter, started, not opts.quiet)
            run = Run(
                workers,
                admin,
                redis,
                tail,
                room,
                tag,
                opts.viewers,
                timeline.background["danmaku_rate"],
                log,
            )
            report["series"] = sampler.series
            nursery.start_soon(sampler.run)
            for index, phase in enumerate(timeline.phases):
                run.phase_index = index
                sampler.phase = phase.name
                log(f"-- phase {phase.name} ({phase.kind})")
                t0 = time.time()
                try:
                    figures, checks = await RUNNERS[phase.kind](run, phase)
                except Exception as exc:  # the harness or the engine failed: report, stop
                    log(f"   phase {phase.name} failed: {exc!r}")
                    report["error"] = f"phase {phase.name}: {exc!r}"
                    figures, checks = {"error": repr(exc)}, []
                t1 = time.time()
                entry = {
                    "name": phase.name,
                    "kind": phase.kind,
                    "settings": phase.settings,
                    "start_s": round(t0 - started, 2),
                    "end_s": round(t1 - started, 2),
                    "seconds": round(t1 - t0, 2),
                    "figures": figures,
                    "checks": [c.as_dict() for c in checks],
                }
                report["phases"].append(entry)
                for c in checks:
                    log(f"   {c.line()}")
                if "error" in report:
                    break
            sampler.phase = "end"
            if run.background_on:
                await workers.same(("rate", "background", "danmaku", 0, 0, 1))
            await trio.sleep(1.5)  # the last sample, the last deliveries
            for entry in report["phases"]:
                entry.update(phase_figures(sampler, entry["name"]))
            _, raw = await run.take(with_probes=True)
            drops = delivery_at_probes(raw, time.time() - 3.0)
            counters1 = await trio.to_thread.run_sync(target.counters)
            totals = [r for r in raw]
            drops |= {
                "lost": _sum_dicts(r["lost"] for r in totals),
                "closes": _sum_dicts(r["closes"] for r in totals),
                "errors": _sum_dicts(r["errors"] for r in totals),
                "unanswered": {
                    a: sum(t.values()) for a, t in _sum_nested(r["missing"] for r in totals).items()
                },
                "retries": sum(r["retries"] for r in totals),
                "regress_examples": [x for r in totals for x in r["regress_examples"]][:10],
                "engine": {k: v - counters0.get(k, 0.0) for k, v in counters1.items()},
            }
            report["drops"] = drops
            report["probes"] = drops["probes"]
            report["latency"] = summary([x for lat in sampler.phase_lat.values() for x in lat])
            report["events_seen"] = dict(tail.types) if tail is not None else None
            report["control_calls"] = len(admin.calls)
            nursery.cancel_scope.cancel()
    finally:
        workers.shutdown()


def _sum_dicts(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in items:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _sum_nested(items: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for d in items:
        for k, inner in d.items():
            slot = out.setdefault(k, {})
            for t, v in inner.items():
                slot[t] = slot.get(t, 0) + v
    return out


def command_line(argv: list[str]) -> str:
    if Path(sys.argv[0]).name == "engine-swarm":
        return shlex.join(["engine-swarm", *argv])
    return shlex.join(["python", "-m", "loadtest.swarm", *argv])


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="engine-swarm"
        if Path(sys.argv[0]).name == "engine-swarm"
        else "python -m loadtest.swarm",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--viewers", type=int, default=2000, help="viewers of a join (default 2000)")
    p.add_argument(
        "--procs",
        type=int,
        default=0,
        help="client processes (0: enough for 19,000 sockets each, 2 from 1,000 viewers)",
    )
    p.add_argument(
        "--probes",
        type=int,
        default=0,
        help="viewers that decode every frame to time danmaku (0: viewers/50, 3..100)",
    )
    t = p.add_argument_group("timeline")
    t.add_argument("--timeline", metavar="FILE", help="a timeline file (JSON, or YAML)")
    t.add_argument(
        "--phases",
        default="",
        help="comma list: run only these phases (names or kinds; the first join is kept)",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PHASE.SETTING=VALUE",
        help="change one setting (e.g. seckill.stock=500, background.danmaku_rate=0)",
    )
    t.add_argument("--room", help="room id (default swarm-<time>: a new room each run)")
    own = p.add_argument_group("own engine (without --ws-url)")
    own.add_argument(
        "--nodes",
        type=int,
        default=0,
        help="engine nodes (engine run --workers N) on the one Redis; 0: one per "
        "core, like make run",
    )
    own.add_argument(
        "--no-antifraud",
        dest="antifraud",
        action="store_false",
        help="turn the anti-fraud layer off (on by default, trusting 127.0.0.1 as a proxy, so "
        "each viewer's X-Forwarded-For address counts for the per-IP limits)",
    )
    own.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass to `engine run` (e.g. --engine-arg=--chat-tick-ms=50)",
    )
    dep = p.add_argument_group("deployed engine")
    dep.add_argument("--ws-url", help="viewer WebSocket URL, e.g. ws://10.0.0.5:8900/v1/ws")
    dep.add_argument("--http-url", help="the control API, e.g. http://10.0.0.5:8901")
    dep.add_argument("--redis-url", help="its Redis, for the full checks (else counts only)")
    dep.add_argument("--secret", help="token key KID:SECRET the engine trusts (ENGINE_TOKEN_KEYS)")
    dep.add_argument("--keys-file", help="JSON {kid: secret} (default var/dev-keys.json)")
    dep.add_argument("--admin-token", help="control API token (default: minted, role admin)")
    p.add_argument(
        "--real-ip",
        action="store_true",
        help="send no X-Forwarded-For (by default each viewer names its own 10.x.y.z address, "
        "which an engine trusting 127.0.0.1 as a proxy uses for its per-IP limits)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", help="JSON and charts here (default loadtest/results)")
    out.add_argument("--no-charts", action="store_true", help="no PNG charts")
    out.add_argument("--quiet", action="store_true", help="no progress line")
    out.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="first wait up to this long for other processes to go quiet, s",
    )
    out.add_argument(
        "--quiet-max",
        type=float,
        default=15.0,
        help="quiet: other processes use at most this %% of a core",
    )
    opts = p.parse_args(argv)
    if opts.nodes <= 0:
        opts.nodes = os.cpu_count() or 1
    if opts.viewers < 1:
        p.error("--viewers must be at least 1")
    if opts.procs <= 0:
        opts.procs = max(math.ceil(opts.viewers / MAX_PER_PROC), 2 if opts.viewers >= 1000 else 1)
    if opts.viewers / opts.procs > MAX_PER_PROC:
        p.error(f"--procs {opts.procs}: over {MAX_PER_PROC:,} viewers per client process")
    if opts.probes <= 0:
        opts.probes = min(100, max(3, opts.viewers // 50))
    opts.phases = [s.strip() for s in opts.phases.split(",") if s.strip()]
    return opts


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    opts = parse_args(args)
    try:
        timeline = build_timeline(
            Path(opts.timeline) if opts.timeline else None, opts.set, opts.phases
        )
        out_dir = Path(opts.out) if opts.out else RESULTS
        out_dir.mkdir(parents=True, exist_ok=True)
        target = (
            deployed(opts)
            if opts.ws_url
            else start_own(opts.nodes, opts.antifraud, opts.engine_arg, out_dir / "logs")
        )
    except (TimelineError, TargetError, OSError) as exc:
        log(f"swarm: {exc}")
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": command_line(args),
        "machine": machine_info() | {"trio": trio.__version__, "redis": redis_version()},
        "target": target.describe(),
        "settings": {k: v for k, v in vars(opts).items() if k not in ("secret", "admin_token")},
        "timeline": timeline.as_dict(),
        "viewers": opts.viewers,
        "client_procs": opts.procs,
        "probes": opts.probes,
        "phases": [],
    }
    log(
        f"swarm: {target.label}; {opts.viewers:,} viewers over {opts.procs} client processes; "
        f"phases {', '.join(p.name for p in timeline.phases)}"
    )
    try:
        trio.run(swarm, opts, timeline, target, report)
    finally:
        target.stop()
    if sys.stderr.isatty() and not opts.quiet:
        sys.stderr.write("\n")
    report["verdict"] = verdict(report["phases"])
    if report.get("error") and report["verdict"] == "PASS":
        report["verdict"] = "ERROR"  # a phase did not finish: its invariants were not checked
    path = out_dir / f"swarm-{stamp}.json"
    report["json"] = str(path)
    if not opts.no_charts:
        from loadtest.swarm_charts import write_charts  # matplotlib: only in the parent

        report["charts"] = [str(c) for c in write_charts(report, out_dir / f"swarm-{stamp}")]
    path.write_text(json.dumps(report, indent=1, default=str, allow_nan=True))
    print(render(report))
    return {"PASS": 0, "FAIL": 1}.get(report["verdict"], 3)


if __name__ == "__main__":
    sys.exit(main())
