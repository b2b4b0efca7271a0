"""A recorded locust run: a private redis-server and engine, a quiet machine, the locust scenarios
(loadtest/locustfile.py) headless, and who used the CPU while they ran.

    flock /tmp/bench.lock .venv/bin/python -m loadtest.locust_bench -u 300 -r 50 -t 60s
    python -m loadtest.locust_bench -u 300 -t 60s --processes 2 --workers 2 -- --codec msgpack

The engine runs with its anti-fraud defaults, trusting 127.0.0.1 as a proxy so that each
viewer's X-Forwarded-For address counts as its IP (one machine, hundreds of people), and
`--workers` node processes (default 1: the other core is locust's). Before starting it waits
(at most --quiet-wait s) until other processes use at most --quiet-max % of a core, and runs
again (--retries) when they used more than --others-max % on average during the run. Printed:
the command, machine and date, the CPU each party used (engine, redis-server, locust, everything
else: on average and in the busiest second), and the locust statistics as a Markdown table;
locust's CSV files and a JSON summary (with the CPU of every second) go to
loadtest/results/locust-<time>*. Arguments after `--` go to locust as they are.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from loadtest.servers import (
    HOST,
    Proc,
    engine_argv,
    free_port,
    machine_info,
    start_redis,
    wait_port,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "loadtest" / "results"
KEYS = "bench:locust-benchmark-secret-0123456789abcdef0123456789"
COLUMNS = ["Request Count", "Failure Count", "50%", "95%", "99%", "Max Response Time", "Requests/s"]


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-u", "--users", type=int, default=300, help="locust users (one anchor)")
    p.add_argument("-r", "--spawn-rate", type=float, default=50.0)
    p.add_argument("-t", "--run-time", default="60s")
    p.add_argument("--processes", type=int, default=1, help="locust processes (--processes)")
    p.add_argument("--workers", type=int, default=1, help="engine node processes")
    p.add_argument("--quiet-wait", type=float, default=120.0, help="s to wait for a quiet machine")
    p.add_argument("--quiet-max", type=float, default=15.0, help="%% of a core others may use")
    p.add_argument(
        "--others-max",
        type=float,
        default=30.0,
        help="%% of a core others may use on average during the run, else --retries",
    )
    p.add_argument("--retries", type=int, default=0, help="runs again when others were busy")
    p.add_argument("--out", default="", help="CSV prefix (default loadtest/results/locust-<time>)")
    args, rest = p.parse_known_args(argv)
    return args, [a for a in rest if a != "--"]


def tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds of a process and its children (0 for what is gone)."""
    total = 0.0
    for p in [proc, *_children(proc)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def busy_s() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - t.iowait


def sample(
    parties: dict[str, psutil.Process], proc: subprocess.Popen[bytes]
) -> list[dict[str, float]]:
    """Until `proc` ends: each second, the % of a core each party used and everything else
    (`others`). Sampled, because locust's worker processes are gone when it ends."""
    seconds: list[dict[str, float]] = []
    last = {k: tree_cpu(p) for k, p in parties.items()}
    busy, t = busy_s(), time.monotonic()
    while proc.poll() is None:
        time.sleep(1.0)
        now = {k: tree_cpu(p) for k, p in parties.items()}
        busy_now, t_now = busy_s(), time.monotonic()
        dt = t_now - t
        row = {k: max(0.0, now[k] - last[k]) for k in parties}
        row["others"] = max(0.0, busy_now - busy - sum(row.values()))
        seconds.append({k: round(100 * v / dt, 1) for k, v in row.items()})
        last, busy, t = now, busy_now, t_now
    return seconds or [dict.fromkeys([*parties, "others"], 0.0)]


def wait_quiet(ours: list[psutil.Process], limit_s: float, max_pct: float) -> float:
    """Wait until others use <= max_pct % of a core for 3 s in a row (at most limit_s); returns
    the last reading."""
    deadline, quiet, other = time.monotonic() + limit_s, 0, 0.0
    while limit_s > 0:
        b0, o0, t0 = busy_s(), sum(map(tree_cpu, ours)), time.monotonic()
        time.sleep(1.0)
        other = 100 * (busy_s() - b0 - (sum(map(tree_cpu, ours)) - o0)) / (time.monotonic() - t0)
        quiet = quiet + 1 if other <= max_pct else 0
        if quiet >= 3 or time.monotonic() > deadline:
            break
    return round(other, 1)


def start_engine(workers: int, logdir: Path) -> tuple[Proc, Proc, int, int]:
    redis, redis_port = start_redis(logdir)
    ws_port, http_port = free_port(), free_port()
    argv = [
        *engine_argv(),
        "run",
        "--redis-url",
        f"redis://{HOST}:{redis_port}/0",
        "--host",
        HOST,
        "--ws-port",
        str(ws_port),
        "--http-port",
        str(http_port),
        "--workers",
        str(workers),
        "--token-keys",
        KEYS,
        "--trusted-proxies",
        HOST,
        "--control-socket",
        "none",
        "--log-level",
        "warning",
    ]
    log = (logdir / f"engine-{ws_port}.log").open("wb")
    popen = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO
    )
    engine = Proc(f"engine-{ws_port}", popen, log)
    try:
        wait_port(http_port, popen)
        wait_port(ws_port, popen)
    except BaseException:
        engine.stop()
        redis.stop()
        raise
    return engine, redis, ws_port, http_port


def markdown(stats_csv: Path) -> str:
    with stats_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    head = "| type | name | requests | failures | p50 ms | p95 ms | p99 ms | max ms | per s |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        values = [
            r["Request Count"],
            r["Failure Count"],
            r["50%"],
            r["95%"],
            r["99%"],
            f"{float(r['Max Response Time']):.0f}",
            f"{float(r['Requests/s']):.1f}",
        ]
        lines.append(f"| {r['Type']} | {r['Name'] or '(all)'} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def locust_argv(
    args: argparse.Namespace, extra: list[str], prefix: Path, ws_port: int, http_port: int
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO / "loadtest" / "locustfile.py"),
        "--headless",
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        args.run_time,
        "--csv",
        str(prefix),
        "--only-summary",
        "--host",
        f"http://{HOST}:{http_port}",
        "--ws-url",
        f"ws://{HOST}:{ws_port}/v1/ws",
        "--engine-secret",
        KEYS,
        *(["--processes", str(args.processes)] if args.processes > 1 else []),
        *extra,
    ]


def run_once(args: argparse.Namespace, extra: list[str], prefix: Path) -> dict[str, Any]:
    """A fresh engine and redis-server, a quiet machine, one locust run; its summary."""
    logdir = prefix.parent / f"{prefix.name}-logs"
    logdir.mkdir(parents=True, exist_ok=True)
    engine, redis, ws_port, http_port = start_engine(args.workers, logdir)
    try:
        other_before = wait_quiet([engine.ps, redis.ps], args.quiet_wait, args.quiet_max)
        locust = locust_argv(args, extra, prefix, ws_port, http_port)
        log_path = logdir / "locust.log"
        with log_path.open("wb") as log:
            t0 = time.monotonic()
            proc = subprocess.Popen(locust, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            parties = {
                "engine": engine.ps,
                "redis-server": redis.ps,
                "locust": psutil.Process(proc.pid),
            }
            seconds = sample(parties, proc)
        wall = time.monotonic() - t0
    finally:
        engine.stop()
        redis.stop()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "locust": locust,
        "exit": proc.returncode,
        "output": log_path.read_text(errors="replace")[-20000:],
        "cpu_pct_of_a_core": {
            k: round(sum(s[k] for s in seconds) / len(seconds), 1) for k in seconds[0]
        },
        "cpu_pct_peak_1s": {k: round(max(s[k] for s in seconds), 1) for k in seconds[0]},
        "cpu_pct_per_s": seconds,
        "others_before_pct": other_before,
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    prefix = Path(args.out) if args.out else RESULTS / f"locust-{stamp}"
    command = shlex.join(["python", "-m", "loadtest.locust_bench", *(argv or sys.argv[1:])])
    print("command:", command)
    for attempt in range(args.retries + 1):
        summary = run_once(args, extra, prefix)
        others = summary["cpu_pct_of_a_core"]["others"]
        if others <= args.others_max or attempt == args.retries:
            break
        print(f"other processes used {others}% of a core during the run: running it again")
    summary["command"], summary["attempts"] = command, attempt + 1
    prefix.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    sys.stdout.write(summary.pop("output"))
    m, cpu, peak = summary["machine"], summary["cpu_pct_of_a_core"], summary["cpu_pct_peak_1s"]
    print(f"\nmachine: {m['nproc']} cores {m['cpu_model']}, {m['ram_gib']} GiB; {summary['date']}")
    print(
        "CPU, % of one core over the run:",
        ", ".join(f"{k} {v}" for k, v in cpu.items()),
        f"(others before the start: {summary['others_before_pct']}; attempt {attempt + 1})",
    )
    print("  busiest second:", ", ".join(f"{k} {v}" for k, v in peak.items()))
    print(
        f"engine: {args.workers} worker(s), anti-fraud defaults; "
        f"locust: {args.processes} process(es)"
    )
    print(markdown(Path(f"{prefix}_stats.csv")))
    print(f"files: {prefix}_*.csv, {prefix.with_suffix('.json')}")
    return int(summary["exit"])


if __name__ == "__main__":
    sys.exit(main())
