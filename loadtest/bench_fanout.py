"""Fan-out benchmark: the engine against a plain `websockets` broadcast server, same load client.

    python -m loadtest.bench_fanout                       # full run: 5000 viewers, 10 s windows
    python -m loadtest.bench_fanout --viewers 500 --duration 3 --only fanout,memory

Scenarios (each server runs in its own subprocess, started and stopped here):
  fanout  one room, N viewers, one chat message per frame (engine --chat-tick-ms 0, baseline
          broadcasts each danmaku at once); closed loop: at most --window messages in flight,
          "delivered" meaning seen by the viewer that connected last;
  batch   the same with 100 ms tick batching (engine default; baseline collects and broadcasts
          one frame every 100 ms), window --batch-window; delivered *messages* are counted;
  memory  server RSS growth per idle connected viewer, after a settle period;
  hot     500 danmaku/s in (50 senders x 10/s, open loop), N viewers: server CPU and
          send-to-deliver latency p50/p99 measured on ~100 probe viewers.
The table goes to stdout, every figure to loadtest/results/fanout-<time>.json.
See docs/benchmarks.md for how the load client works.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from engine.identity import mint_token
from loadtest import report
from loadtest.clientproc import worker_main
from loadtest.profiling import Profiler
from loadtest.servers import HOST, REPO, ServerUnderTest, machine_info, start_baseline, start_engine

KID, SECRET, ROOM = "bench", "fanout-benchmark-secret-" + "0123456789abcdef" * 2, "bench"
SCENARIOS = ("fanout", "batch", "memory", "hot")
RESULTS = REPO / "loadtest" / "results"
DRAIN_CAP = 60.0  # s: a server that cannot carry the load is counted as it stands


class Clients:
    """The load-client processes: `procs` viewer loops and one publisher loop (`target`: the
    processes' entry point, `clientproc.worker_main` or a variant with more commands)."""

    def __init__(self, procs: int, target: Callable[[Connection, str], None] = worker_main) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: dict[str, Connection] = {}
        self.procs: dict[str, Any] = {}
        for name, role in [*((f"viewers-{i}", "viewers") for i in range(procs)),
                           ("publisher", "publisher")]:  # fmt: skip
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=target, args=(child, role), name=name, daemon=True)
            proc.start()
            child.close()
            self.pipes[name], self.procs[name] = parent, proc
        self.ps = {name: psutil.Process(p.pid) for name, p in self.procs.items()}
        self.viewer_names = [n for n in self.pipes if n != "publisher"]

    def ask(self, name: str, cmd: tuple[Any, ...], timeout: float = 60.0) -> Any:
        pipe = self.pipes[name]
        pipe.send(cmd)
        if not pipe.poll(timeout):
            raise TimeoutError(f"{name} did not answer {cmd[0]!r} within {timeout:.0f} s")
        return pipe.recv()

    def ask_viewers(self, cmd: tuple[Any, ...], timeout: float = 60.0) -> list[Any]:
        for name in self.viewer_names:
            self.pipes[name].send(cmd)
        out = []
        for name in self.viewer_names:
            if not self.pipes[name].poll(timeout):
                raise TimeoutError(f"{name} did not answer {cmd[0]!r} within {timeout:.0f} s")
            out.append(self.pipes[name].recv())
        return out

    def pub(self, cmd: tuple[Any, ...]) -> Any:
        return self.ask("publisher", cmd)

    def cpu_s(self) -> dict[str, float]:
        out = {}
        for name, ps in self.ps.items():
            t = ps.cpu_times()
            out[name] = float(t.user + t.system)
        return out

    def close_all(self) -> None:
        self.ask_viewers(("close_all",))
        self.pub(("close_all",))

    def shutdown(self) -> None:
        for name, pipe in self.pipes.items():
            try:
                pipe.send(("exit",))
            except OSError:
                pass
            self.procs[name].join(5)
            if self.procs[name].is_alive():
                self.procs[name].terminate()
                self.procs[name].join(5)


class Bench:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.keys = {KID: SECRET.encode()}
        self.logdir = RESULTS / "logs"
        self.clients: Clients | None = None
        self.profiler = Profiler(Path(opts.profile)) if opts.profile else None
        self.engine_tree = Path(opts.engine_tree) if opts.engine_tree else None
        self.engine_source = engine_source(self.engine_tree, opts.engine_rev)
        self.viewers = self._viewer_paths(opts.viewers, opts.probes)
        self.senders = [self._path(f"s{i}") for i in range(opts.hot_senders)]
        self.tail = self._path("tail")

    def _path(self, user: str) -> str:
        token = mint_token(self.keys, user=user, room=ROOM, ttl_s=3 * 3600)
        return f"/v1/ws?token={token}"

    def _viewer_paths(self, n: int, probes: int) -> list[tuple[str, bool]]:
        every = max(1, n // max(1, probes))
        return [(self._path(f"u{i}"), probes > 0 and i % every == every // 2) for i in range(n)]

    # --- the run -------------------------------------------------------------------------

    def plans(self) -> list[tuple[str, int, list[str]]]:
        only = set(self.opts.only)
        hot_base = self.opts.hot_baseline
        plans: list[tuple[str, int, list[str]]] = []
        if "fanout" in only:
            plans.append(("engine", 0, ["fanout"]))
        if only & {"batch", "hot", "memory"}:
            plans.append(("engine", 100, [s for s in ("batch", "hot") if s in only]))
        if only & {"fanout", "memory"} or ("hot" in only and hot_base in ("plain", "both")):
            hot = ["hot"] if "hot" in only and hot_base in ("plain", "both") else []
            plans.append(("baseline", 0, [s for s in ("fanout",) if s in only] + hot))
        if "batch" in only or ("hot" in only and hot_base in ("batched", "both")):
            hot = ["hot"] if "hot" in only and hot_base in ("batched", "both") else []
            plans.append(("baseline", 100, [s for s in ("batch",) if s in only] + hot))
        return [p for p in plans if p[0] in self.opts.servers]

    def run(self) -> dict[str, Any]:
        opts = self.opts
        out: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": command_line(),
            "machine": machine_info() | versions(),
            "settings": {k: v for k, v in vars(opts).items()},
            "engine_source": self.engine_source,
            "servers": {},
        }
        started = time.monotonic()
        self.clients = Clients(opts.client_procs)
        try:
            for kind, tick, scenarios in self.plans():
                keys = f"{KID}:{SECRET}"
                if kind == "engine":
                    sut = start_engine(tick, keys, self.logdir, self.engine_tree)
                else:
                    sut = start_baseline(tick, keys, self.logdir)
                key = f"{kind}-{tick}"
                log(f"== {sut.label}: pid {sut.proc.pid}, port {sut.ws_port}")
                try:
                    out["servers"][key] = self.run_server(sut, scenarios)
                finally:
                    try:
                        self.clients.close_all()
                    finally:
                        sut.stop()
        finally:
            self.clients.shutdown()
        out["wall_s"] = round(time.monotonic() - started, 1)
        return out

    def run_server(self, sut: ServerUnderTest, scenarios: list[str]) -> dict[str, Any]:
        clients, opts = self.clients, self.opts
        assert clients is not None
        res: dict[str, Any] = {"label": sut.label, "pid": sut.proc.pid, "argv": sut.argv}
        reply = clients.pub(("connect", "sender", HOST, sut.ws_port,
                             [(p, False) for p in self.senders], 50))  # fmt: skip
        res["senders"] = check_connected("senders", reply, len(self.senders))
        time.sleep(0.5)
        rss0 = sut.proc.rss()
        started = time.monotonic()
        replies = self.connect_viewers(sut.ws_port)
        res["connect_s"] = round(time.monotonic() - started, 2)
        res["viewers"] = sum(r[2] for r in replies)
        res["connect_failed"] = sum(r[3] for r in replies)
        res["connect_errors"] = [e for r in replies for e in r[4]][:5]
        log(f"   {res['viewers']} viewers connected in {res['connect_s']} s"
            + (f", {res['connect_failed']} failed: {res['connect_errors']}"
               if res["connect_failed"] else ""))  # fmt: skip
        if "memory" in opts.only:
            time.sleep(opts.settle)
            rss1 = sut.proc.rss()
            res["memory"] = {"rss_before": rss0, "rss_after": rss1, "settle_s": opts.settle,
                             "per_conn_bytes": (rss1 - rss0) / max(1, res["viewers"])}  # fmt: skip
            if sut.redis is not None:
                res["memory"]["redis_rss"] = sut.redis.rss()
            log(f"   idle memory: {res['memory']['per_conn_bytes'] / 1024:.2f} KiB/connection")
        check_connected("tail", clients.pub(("connect", "tail", HOST, sut.ws_port,
                                             [(self.tail, True)], 1)), 1)  # fmt: skip
        runs: dict[str, Callable[[], dict[str, Any]]] = {
            "fanout": lambda: self.throughput(sut, opts.window, "fanout"),
            "batch": lambda: self.throughput(sut, opts.batch_window, "batch"),
            "hot": lambda: self.hot(sut),
        }
        for scenario in scenarios:
            noisy: list[float] = []
            while True:  # a window disturbed by other processes is measured again
                figures = runs[scenario]()
                if figures["other_cpu"] <= report.NOISY_CPU or len(noisy) >= opts.retries:
                    break
                noisy.append(round(figures["other_cpu"], 1))
                log(f"   other processes used {noisy[-1]:.0f}% of a core: measuring again")
            res[scenario] = figures | {"discarded_noisy_runs": noisy}
        return res

    def connect_viewers(
        self, port: int | list[int], viewers: list[tuple[str, bool]] | None = None
    ) -> list[Any]:
        """Connect `viewers` (default: all of them) spread over the viewer processes; with
        several ports (nodes), viewer process i connects to port i % len(ports)."""
        clients = self.clients
        assert clients is not None
        names = clients.viewer_names
        ports = port if isinstance(port, list) else [port]
        parts: list[list[tuple[str, bool]]] = [[] for _ in names]
        plain = probes = 0
        # in connection order; probes spread evenly over processes
        for item in self.viewers if viewers is None else viewers:
            if item[1]:
                parts[probes % len(names)].append(item)
                probes += 1
            else:
                parts[plain % len(names)].append(item)
                plain += 1
        for i, (name, part) in enumerate(zip(names, parts, strict=True)):
            clients.pipes[name].send(
                ("connect", "viewer", HOST, ports[i % len(ports)], part, self.opts.concurrency)
            )
        replies = []
        for name in names:
            if not clients.pipes[name].poll(300):
                raise TimeoutError(f"{name}: viewers not connected after 300 s")
            replies.append(clients.pipes[name].recv())
        return replies

    # --- measurements --------------------------------------------------------------------

    def snapshot(self, sut: ServerUnderTest) -> dict[str, Any]:
        clients = self.clients
        assert clients is not None
        snap = {
            "t": time.time(),
            "server_cpu": sut.proc.cpu_s(),
            "server_split": sut.proc.cpu_split(),
            "redis_cpu": sut.redis.cpu_s() if sut.redis is not None else None,
            "clients_cpu": clients.cpu_s(),
            "machine": psutil.cpu_times()._asdict(),
        }
        snap["viewers"] = clients.ask_viewers(("stats",))
        snap["pub"] = clients.pub(("pub_stats",))
        return snap

    def wait_quiet(self, sut: ServerUnderTest) -> float | None:
        """Wait (at most --quiet-wait s) until processes that are not ours use less than
        --quiet-max % of a core: a shared 2-core machine skews every figure. Returns the last
        reading."""
        clients = self.clients
        assert clients is not None
        if self.opts.quiet_wait <= 0:
            return None
        ours = [sut.proc] + ([sut.redis] if sut.redis is not None else [])
        deadline = time.monotonic() + self.opts.quiet_wait
        warned = False
        quiet_for = 0
        while True:
            m0, o0 = (
                psutil.cpu_times(),
                sum(p.cpu_s() for p in ours) + sum(clients.cpu_s().values()),
            )
            t0 = time.monotonic()
            time.sleep(1.0)
            m1, o1 = (
                psutil.cpu_times(),
                sum(p.cpu_s() for p in ours) + sum(clients.cpu_s().values()),
            )
            wall = time.monotonic() - t0
            other = 100 * (_busy(m0._asdict(), m1._asdict()) - (o1 - o0)) / wall
            quiet_for = quiet_for + 1 if other <= self.opts.quiet_max else 0
            if quiet_for >= self.opts.quiet_secs or time.monotonic() > deadline:
                if warned or other > self.opts.quiet_max:
                    log(f"   other processes use {other:.0f}% of a core; going on")
                return other
            if not warned:
                log(f"   waiting for a quiet machine: other processes use {other:.0f}% of a core")
                warned = True

    def window(self, sut: ServerUnderTest, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        opts = self.opts
        time.sleep(opts.warmup)
        a = self.snapshot(sut)
        prof = self.profiler.start(sut, name, opts.duration) if self.profiler else None
        time.sleep(opts.duration)
        b = self.snapshot(sut)
        if prof is not None:
            prof.finish()
        return a, b

    def throughput(self, sut: ServerUnderTest, window: int, name: str) -> dict[str, Any]:
        clients, opts = self.clients, self.opts
        assert clients is not None
        clients.ask_viewers(("pace", opts.pace))
        quiet = self.wait_quiet(sut)
        counters = sut.engine_counters()
        start = clients.ask_viewers(("stats",))
        clients.pub(("run_window", window, opts.warmup + opts.duration + 60))
        a, b = self.window(sut, f"{sut.kind}-{name}")
        clients.pub(("stop",))
        sent = clients.pub(("pub_stats",))["sent"]
        ready = sum(s["ready"] for s in start)
        end = self.drain(lambda: sum(s["msgs"] for s in start) + sent * ready)
        res = rates(a, b, sut) | {"window": window, "sent": sent, "other_before": quiet}
        res["expected"] = sent * ready
        res["delivered"] = sum(e["msgs"] - s["msgs"] for s, e in zip(start, end, strict=True))
        res["lost"] = res["expected"] - res["delivered"]
        res["server_closed"] = sum(e["server_closed"] for e in end)
        res["engine_counters"] = counter_delta(counters, sut.engine_counters())
        log(f"   {name}: {res['msgs_per_s']:,.0f} msgs/s delivered, server CPU "
            f"{res['server_cpu']:.0f}%, lost {res['lost']}")  # fmt: skip
        return res

    def hot(self, sut: ServerUnderTest) -> dict[str, Any]:
        clients, opts = self.clients, self.opts
        assert clients is not None
        clients.ask_viewers(("pace", opts.pace))
        quiet = self.wait_quiet(sut)
        counters = sut.engine_counters()
        rate = opts.hot_rate
        start = clients.ask_viewers(("stats",))
        clients.pub(("run_rate", rate, opts.warmup + opts.duration + 1))
        time.sleep(opts.warmup)
        t0 = time.time()
        clients.ask_viewers(("lat_start", t0))
        a = self.snapshot(sut)
        prof = self.profiler.start(sut, f"{sut.kind}-hot", opts.duration) if self.profiler else None
        time.sleep(opts.duration)
        t1 = time.time()
        clients.ask_viewers(("lat_stop", t1))
        b = self.snapshot(sut)
        if prof is not None:
            prof.finish()
        clients.pub(("stop",))
        expected = clients.pub(("count_sent", t0, t1))
        sent = clients.pub(("pub_stats",))["sent"]
        ready = sum(s["ready"] for s in start)
        end = self.drain(lambda: sum(s["msgs"] for s in start) + sent * ready)
        triples: array[float] = array("d")  # (send time, latency, server intake latency)
        probes = 0
        for raw, n in clients.ask_viewers(("lat_collect",)):
            triples.frombytes(raw)
            probes += n
        res = rates(a, b, sut) | {"rate_target": rate, "sent_in_window": expected}
        res["other_before"] = quiet
        res["sent_per_s"] = expected / (t1 - t0)
        res["sent"], res["expected"] = sent, sent * ready
        res["delivered"] = sum(e["msgs"] - s["msgs"] for s, e in zip(start, end, strict=True))
        res["lost"] = res["expected"] - res["delivered"]  # by the end of the drain
        res["latency"] = latency_stats(sorted(triples[1::3]), probes * expected)
        intake = sorted(triples[2::3])
        res["latency"]["intake_p50_ms"] = intake[len(intake) // 2] * 1000 if intake else None
        res["latency"]["intake_p99_ms"] = (
            intake[int(0.99 * (len(intake) - 1))] * 1000 if intake else None
        )
        res["latency_by_second"] = by_second(triples, t0)
        res["probes"] = probes
        res["publisher_unsent_bytes"] = b["pub"]["queued"]
        res["engine_counters"] = counter_delta(counters, sut.engine_counters())
        lat = res["latency"]
        log(
            f"   hot: server CPU {res['server_cpu']:.0f}%, p50 {fmt_ms(lat['p50_ms'])} "
            f"p99 {fmt_ms(lat['p99_ms'])} ms, {lat['missing']} probe deliveries missing"
        )
        return res

    def drain(self, target: Callable[[], int] | None, limit: float | None = None) -> list[Any]:
        """Wait until the viewers got `target` messages in all, or got none for `--drain` s.

        A server that buffered a lot (the batched baseline takes danmaku in far faster than it
        delivers them) drains for as long as deliveries keep coming, so its backlog is counted
        rather than spilling into the next scenario's window; DRAIN_CAP bounds a run anyway."""
        clients = self.clients
        assert clients is not None
        patience = limit if limit is not None else self.opts.drain
        started = time.monotonic()
        last, quiet_since = -1, started
        goal = target() if target is not None else None
        while True:
            stats = clients.ask_viewers(("stats",))
            total = sum(s["msgs"] for s in stats)
            now = time.monotonic()
            if total != last:
                last, quiet_since = total, now
            if (goal is not None and total >= goal) or now - quiet_since > patience:
                return stats
            if now - started > DRAIN_CAP:
                log(f"   still delivering after {DRAIN_CAP:.0f} s of drain; counting what arrived")
                return stats
            time.sleep(0.25)


def engine_source(tree: Path | None, rev: str | None) -> dict[str, Any]:
    """Which engine code runs: a commit exported from git (--engine-rev), another checkout
    (--engine-tree), or this working tree (then: its HEAD and whether engine/ has changes)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    if tree is not None:
        return {"tree": str(tree), "rev": rev}
    dirty = git("status", "--porcelain", "--", "engine", "scripts")
    return {"tree": str(REPO), "rev": git("rev-parse", "HEAD"), "engine_dirty": bool(dirty)}


def export_rev(rev: str) -> tuple[Path, str]:
    """`git archive` of a commit into a temporary directory (for --engine-rev)."""
    full = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    tree = Path(tempfile.mkdtemp(prefix=f"engine-{full[:10]}-"))
    archive = subprocess.run(["git", "archive", full], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree, full


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    out = {k: v - before.get(k, 0.0) for k, v in after.items()}
    if out.get("tick_seconds_count"):
        out["tick_mean_ms"] = 1000 * out["tick_seconds_sum"] / out["tick_seconds_count"]
    return out


def check_connected(what: str, reply: Any, want: int) -> int:
    _, _, ok, failed, errors, _ = reply
    if ok != want:
        raise RuntimeError(f"{what}: {ok}/{want} connected, {failed} failed: {errors}")
    return int(ok)


def rates(a: dict[str, Any], b: dict[str, Any], sut: ServerUnderTest) -> dict[str, Any]:
    wall = b["t"] - a["t"]
    msgs = frames = nbytes = 0.0
    for va, vb in zip(a["viewers"], b["viewers"], strict=True):
        dt = vb["t"] - va["t"]
        msgs += (vb["msgs"] - va["msgs"]) / dt
        frames += (vb["frames"] - va["frames"]) / dt
        nbytes += (vb["bytes"] - va["bytes"]) / dt
    ma, mb = a["machine"], b["machine"]
    busy = _busy(ma, mb)
    split = [
        100 * (y - x) / wall for x, y in zip(a["server_split"], b["server_split"], strict=True)
    ]
    out = {
        "seconds": round(wall, 3),
        "server_cpu_user": split[0],
        "server_cpu_sys": split[1],
        "machine_softirq": 100 * (mb.get("softirq", 0) - ma.get("softirq", 0)) / wall,
        "msgs_per_s": msgs,
        "frames_per_s": frames,
        "mbytes_per_s": nbytes / 1e6,
        "server_cpu": 100 * (b["server_cpu"] - a["server_cpu"]) / wall,
        "redis_cpu": None
        if a["redis_cpu"] is None
        else 100 * (b["redis_cpu"] - a["redis_cpu"]) / wall,
        "client_cpu": {
            name: 100 * (b["clients_cpu"][name] - a["clients_cpu"][name]) / wall
            for name in a["clients_cpu"]
        },
        "machine_busy": 100 * busy / wall,  # in % of one core; the machine has nproc cores
        "pub_sent_per_s": (b["pub"]["sent"] - a["pub"]["sent"]) / (b["pub"]["t"] - a["pub"]["t"]),
    }
    out["client_cpu_total"] = sum(out["client_cpu"].values())
    # CPU of processes that are not part of the benchmark (kernel softirq/irq time excluded)
    kernel = sum(mb.get(k, 0) - ma.get(k, 0) for k in ("softirq", "irq")) * 100 / wall
    out["other_cpu"] = max(0.0, out["machine_busy"] - out["server_cpu"] - (out["redis_cpu"] or 0)
                        - out["client_cpu_total"] - kernel)  # fmt: skip
    return out


def _busy(ma: dict[str, float], mb: dict[str, float]) -> float:
    """CPU seconds the whole machine was busy between two psutil.cpu_times() readings."""
    skip = ("idle", "iowait", "guest", "guest_nice")  # guest time is already in user
    return sum(mb[k] - ma[k] for k in mb if k not in skip)


def latency_stats(samples: list[float], expected: int) -> dict[str, Any]:
    """Percentiles with every expected-but-missing delivery counted as infinitely late."""
    total = max(expected, len(samples))
    missing = total - len(samples)

    def pct(q: float) -> float | None:
        if not total:
            return None
        i = max(0, math.ceil(q * total) - 1)
        return samples[i] * 1000 if i < len(samples) else math.inf

    return {"samples": len(samples), "missing": missing, "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "max_ms": samples[-1] * 1000 if samples else None}  # fmt: skip


def by_second(triples: array[float], t0: float) -> list[dict[str, Any]]:
    """p50/p99/max latency of the probe deliveries per second of send time (is it stable?)."""
    buckets: dict[int, list[float]] = {}
    for i in range(0, len(triples), 3):
        buckets.setdefault(int(triples[i] - t0), []).append(triples[i + 1])
    out = []
    for second in sorted(buckets):
        lat = sorted(buckets[second])
        out.append({"s": second, "n": len(lat), "p50_ms": round(lat[len(lat) // 2] * 1000, 1),
                    "p99_ms": round(lat[int(0.99 * (len(lat) - 1))] * 1000, 1),
                    "max_ms": round(lat[-1] * 1000, 1)})  # fmt: skip
    return out


def fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else ("inf" if math.isinf(v) else f"{v:.0f}")


def versions() -> dict[str, str]:
    import trio
    import websockets

    return {"trio": trio.__version__, "websockets": websockets.__version__}


def command_line() -> str:
    return shlex.join([Path(sys.executable).name, "-m", "loadtest.bench_fanout", *sys.argv[1:]])


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_load_args(p: argparse.ArgumentParser, *, viewers: int = 5000) -> None:
    """The load client's and the measurement's options (loadtest/bench_cluster.py has them
    too)."""
    p.add_argument("--viewers", type=int, default=viewers, help="viewers in the room (N)")
    p.add_argument("--duration", type=float, default=10.0, help="measured window, s")
    p.add_argument("--warmup", type=float, default=2.0, help="load before the window, s")
    p.add_argument("--drain", type=float, default=5.0,
                   help="give up a drain after this many seconds without a delivery")  # fmt: skip
    p.add_argument("--client-procs", type=int, default=2, help="viewer client processes")
    p.add_argument("--concurrency", type=int, default=64, help="upgrades in flight per process")
    p.add_argument("--pace", type=float, default=0.5,
                   help="seconds between reads of a non-probe viewer socket")  # fmt: skip
    p.add_argument("--window", type=int, default=16, help="fanout: messages in flight")
    p.add_argument("--hot-rate", type=float, default=500.0, help="hot room: danmaku/s in")
    p.add_argument("--hot-senders", type=int, default=50, help="sender connections")
    p.add_argument("--probes", type=int, default=100, help="latency probe viewers")
    p.add_argument(
        "--quiet-max",
        type=float,
        default=10.0,
        help="before a window: wait until other processes use less CPU (%% of a core)",
    )
    p.add_argument("--quiet-secs", type=int, default=3, help="seconds of quiet wanted")
    p.add_argument("--quiet-wait", type=float, default=120.0, help="longest such wait, s")
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="measure a window again when other processes disturbed it",
    )
    p.add_argument("--profile", metavar="DIR", help="py-spy the engine in each measured window")
    p.add_argument(
        "--engine-rev",
        metavar="REV",
        help="run the engine of this git commit (exported with git archive)",
    )
    p.add_argument("--engine-tree", metavar="DIR",
                   help="run the engine of this checkout (default: the installed one)")  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="results file (default loadtest/results/...)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench_fanout",
        description="Fan-out benchmark: the engine vs a plain websockets broadcast server.",
    )
    add_load_args(p)
    p.add_argument("--settle", type=float, default=3.0, help="idle time before RSS, s")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma list of scenarios")
    p.add_argument("--servers", default="engine,baseline", help="which servers to measure")
    p.add_argument("--batch-window", type=int, default=2000, help="batch: messages in flight")
    p.add_argument("--hot-baseline", choices=["plain", "batched", "both", "none"],
                   default="both", help="baseline variants in the hot scenario")  # fmt: skip
    opts = p.parse_args(argv)
    opts.only = [s.strip() for s in opts.only.split(",") if s.strip()]
    opts.servers = [s.strip() for s in opts.servers.split(",") if s.strip()]
    unknown = set(opts.only) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    exported = None
    if opts.engine_rev:
        exported, opts.engine_rev = export_rev(opts.engine_rev)
        opts.engine_tree = str(exported)
    try:
        results = Bench(opts).run()
    finally:
        if exported is not None:
            shutil.rmtree(exported, ignore_errors=True)
    text = report.render(results)
    print(text)
    path = (
        Path(opts.json) if opts.json else RESULTS / f"fanout-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    results["verdicts"] = report.verdicts(results)
    path.write_text(json.dumps(results, indent=2, default=str, allow_nan=True))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
