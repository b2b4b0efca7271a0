"""Flash-sale benchmark: the Redis limit, the engine end to end, and a 10,000-viewer spike.

    python -m loadtest.bench_seckill                      # full run
    python -m loadtest.bench_seckill --requests 2000 --connections 20 --duration 1 \\
        --spike-viewers 50 --spike-stock 10              # smoke size

In one run, against one engine node (`engine run`, its own redis-server) on this machine:
  redis   `redis-benchmark` calling the grab script by EVALSHA (random users and request ids,
          every grab granted): one grab per call (the per-call limit), and 100 grabs per call
          (what the engine's batches cost Redis), in grab decisions per second;
  e2e     grab decisions per second through the node: --connections viewers (one user each) over
          WebSockets, each keeping --window grabs in flight (closed loop); every grab is granted,
          so each is a full decision in Redis (stock and limit are too large to run out);
  spike   --spike-viewers viewers connected, a sale of --spike-stock units (limit 1) opening at
          t0; each viewer grabs once, the grabs spread evenly over --spread seconds: grab
          latency p50/p99 (send to answer) and the oversell check (granted = stock, and
          stock = left + held + sold in Redis, one `seckill.reserved` per hold).
The load clients are epoll loops over raw sockets in their own processes (loadtest/grabclient.py).
The table goes to stdout, every figure to loadtest/results/seckill-<time>.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import multiprocessing as mp
import os
import shlex
import shutil
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
import trio

from engine.features.seckill import rid_key, sale_spec
from engine.identity import mint_token
from engine.store import keys
from engine.store.seckill import SeckillStore, grab_keys
from engine.store.store import open_redis
from loadtest.grabclient import worker_main
from loadtest.profiling import Profiler
from loadtest.seckill_report import fmt, pct, render, verdicts
from loadtest.servers import (
    HOST,
    REPO,
    Proc,
    ServerUnderTest,
    free_port,
    machine_info,
    start_baseline,
    start_engine,
    wait_port,
)

KID, SECRET, ROOM = "bench", "seckill-benchmark-secret-" + "0123456789abcdef" * 2, "bench-seckill"
RESULTS = REPO / "loadtest" / "results"
BIG = 100_000_000  # stock and limit that never run out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Clients:
    """Load-client processes (loadtest/grabclient.py), one pipe each."""

    def __init__(self, procs: int, target: Callable[[Connection], None] = worker_main) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=target, args=(child,), name=f"grabs-{i}", daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.ps = [psutil.Process(p.pid) for p in self.procs]

    def ask_all(self, cmds: list[tuple[Any, ...]], timeout: float = 120.0) -> list[Any]:
        for pipe, cmd in zip(self.pipes, cmds, strict=True):
            pipe.send(cmd)
        out = []
        for i, pipe in enumerate(self.pipes):
            if not pipe.poll(timeout):
                raise TimeoutError(f"client {i} did not answer {cmds[i][0]!r} in {timeout:.0f} s")
            out.append(pipe.recv())
        return out

    def same(self, cmd: tuple[Any, ...], timeout: float = 120.0) -> list[Any]:
        return self.ask_all([cmd] * len(self.pipes), timeout)

    def cpu_s(self) -> float:
        return sum(float(t.user + t.system) for t in (p.cpu_times() for p in self.ps))

    def wait_answered(self, want: int, drain_s: float) -> None:
        """Until `want` answers arrived in all (one per viewer), or `drain_s` is up."""
        deadline = time.time() + drain_s
        while sum(s["results"] for s in self.same(("stats",))) < want:
            if time.time() > deadline:
                return
            time.sleep(0.2)

    def fire_spike(
        self,
        target: str,
        t0: float,
        spread_s: float,
        want: int,
        drain_s: float,
        server_cpu: Callable[[], list[float]],
        profile: Callable[[], Any] | None = None,
    ) -> tuple[list[float], float]:
        """Every viewer sends one request for `target`, spread evenly over `spread_s` from `t0`;
        waits for `want` answers (or `drain_s`). Returns the servers' CPU % (per process, from
        just before t0 to the last answer) and the load clients' CPU %; `profile()` starts a
        recording over the same window (its `finish()` is called)."""
        self.same(("spike", target, t0, spread_s))
        time.sleep(max(0.0, t0 - time.time() - 0.2))
        a = (time.time(), server_cpu(), self.cpu_s())
        recording = profile() if profile is not None else None
        time.sleep(max(0.0, t0 + spread_s - time.time()))
        self.wait_answered(want, drain_s)
        b = (time.time(), server_cpu(), self.cpu_s())
        if recording is not None:
            recording.finish()
        wall = max(1e-9, b[0] - a[0])
        servers = [100 * (y - x) / wall for x, y in zip(a[1], b[1], strict=True)]
        return servers, 100 * (b[2] - a[2]) / wall

    def spike_results(self) -> tuple[list[float], dict[str, int], int, dict[str, int]]:
        """A spike's answers from every client process: (sorted latencies, answers by code,
        requests never answered, sockets lost by why)."""
        answers, codes, missing, lost = self.spike_answers()
        return sorted(lat for _, lat, _ in answers), codes, missing, lost

    def spike_answers(
        self,
    ) -> tuple[list[tuple[float, float, float]], dict[str, int], int, dict[str, int]]:
        """As `spike_results`, with each answer as (send time, latency, latency to the answer's
        arrival in the client's kernel) in send order."""
        sent: array[float] = array("d")
        samples: array[float] = array("d")
        arrivals: array[float] = array("d")
        codes: dict[str, int] = {}
        lost: dict[str, int] = {}
        missing = 0
        for raw, got, miss, dropped, raw_sent, raw_kernel in self.same(("spike_collect",)):
            samples.frombytes(raw)
            sent.frombytes(raw_sent)
            arrivals.frombytes(raw_kernel)
            for code, count in got.items():
                codes[code] = codes.get(code, 0) + count
            for why, count in dropped.items():
                lost[why] = lost.get(why, 0) + count
            missing += miss
        return sorted(zip(sent, samples, arrivals, strict=True)), codes, missing, lost

    def connect(
        self, ports: list[int], paths: list[str], concurrency: int, timeout: float
    ) -> tuple[int, int, list[str]]:
        """Connect `paths` spread evenly over the nodes (`ports`) and the client processes."""
        ok = failed = 0
        errors: list[str] = []
        for i, port in enumerate(ports):
            mine = paths[i :: len(ports)]
            parts = [mine[j :: len(self.pipes)] for j in range(len(self.pipes))]
            replies = self.ask_all(
                [("connect", HOST, port, part, concurrency) for part in parts], timeout
            )
            ok += sum(r[1] for r in replies)
            failed += sum(r[2] for r in replies)
            errors += [e for r in replies for e in r[3]]
        return ok, failed, errors[:5]

    def shutdown(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            try:
                pipe.send(("exit",))
            except OSError:
                pass
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


class Bench:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.keys = {KID: SECRET.encode()}
        self.logdir = RESULTS / "logs"
        self.profiler = Profiler(Path(opts.profile)) if opts.profile else None

    def paths(self, prefix: str, n: int) -> list[str]:
        return [
            f"/v1/ws?token={mint_token(self.keys, user=f'{prefix}{i}', room=ROOM, ttl_s=4 * 3600)}"
            for i in range(n)
        ]

    def run(self) -> dict[str, Any]:
        opts = self.opts
        out: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": command_line(),
            "machine": machine_info() | {"trio": trio.__version__, "redis": redis_version()},
            "settings": dict(vars(opts)),
        }
        started = time.monotonic()
        sut = start_engine(100, f"{KID}:{SECRET}", self.logdir)
        redis_url = sut.argv[sut.argv.index("--redis-url") + 1]
        out["engine"] = {"pid": sut.proc.pid, "argv": sut.argv, "redis_url": redis_url}
        clients = Clients(opts.client_procs)
        try:
            trio.run(self.setup, redis_url)
            ours = [sut.proc, *([sut.redis] if sut.redis else [])]
            if "redis" in opts.only:
                other = self.wait_quiet(ours, clients)
                out["redis"] = self.redis_benchmark(redis_url) | {"other_cpu_before": other}
            if "e2e" in opts.only:
                other = self.wait_quiet(ours, clients)
                out["e2e"] = self.e2e(sut, clients) | {"other_cpu_before": other}
            if "spike" in opts.only:
                out["spike"] = self.spike(sut, clients, redis_url)
            if "baseline" in opts.only:
                out["baseline"] = self.baseline_spike(clients)
        finally:
            clients.shutdown()
            sut.stop()
        out["wall_s"] = round(time.monotonic() - started, 1)
        out["verdicts"] = verdicts(out)
        return out

    def wait_quiet(self, ours: list[Proc], clients: Clients) -> float | None:
        """Wait (at most --quiet-wait s) until processes that are not ours use at most
        --quiet-max % of a core for 3 s in a row: the machine is shared, and every figure here
        is CPU-bound. Returns the last reading (% of a core), None when not waiting."""
        if self.opts.quiet_wait <= 0:
            return None
        deadline = time.monotonic() + self.opts.quiet_wait
        quiet_for, other = 0, 0.0
        while True:
            m0, o0, t0 = (
                psutil.cpu_times(),
                sum(p.cpu_s() for p in ours) + clients.cpu_s(),
                time.monotonic(),
            )
            time.sleep(1.0)
            m1, o1 = psutil.cpu_times(), sum(p.cpu_s() for p in ours) + clients.cpu_s()
            busy = sum(m1) - sum(m0) - (m1.idle - m0.idle) - (m1.iowait - m0.iowait)
            other = 100 * (busy - (o1 - o0)) / (time.monotonic() - t0)
            quiet_for = quiet_for + 1 if other <= self.opts.quiet_max else 0
            if quiet_for >= 3 or time.monotonic() > deadline:
                if other > self.opts.quiet_max:
                    log(f"   other processes still use {other:.0f}% of a core; going on")
                return round(other, 1)

    # --- setup ---------------------------------------------------------------------------

    async def setup(self, redis_url: str) -> None:
        async with open_redis(redis_url) as redis:
            store = SeckillStore(redis, event_maxlen=100_000)
            await store.set_products(
                ROOM,
                [
                    {
                        "id": "phone",
                        "name": "Phone",
                        "price": 99900,
                        "list_price": 129900,
                        "image": "https://i/p.png",
                        "stock": BIG,
                        "order": 0,
                        "promo": "",
                    }
                ],
            )
            for sale in ("rb1", "rb100", "e2e"):
                await self.start_sale(store, sale, stock=BIG, limit=1_000_000, start_ms=None)
            self.sha = store.sha("seckill_grab")

    async def start_sale(
        self, store: SeckillStore, sale: str, *, stock: int, limit: int, start_ms: int | None
    ) -> None:
        spec = sale_spec(
            sale=sale,
            product="phone",
            price=49900,
            stock=stock,
            limit=limit,
            start_ms=start_ms,
            end_ms=None,
            duration_s=3 * 3600,
            hold_s=900,
            now=store.now_ms(),
        )
        code, *_ = await store.start(ROOM, spec, spec.view(None), spec.event())
        if code != "ok":
            raise RuntimeError(f"start {sale}: {code}")
        await store.index_sale(ROOM, sale)

    # --- the Redis limit -----------------------------------------------------------------

    def redis_benchmark(self, redis_url: str) -> dict[str, Any]:
        opts = self.opts
        port = redis_url.rsplit(":", 1)[1].split("/")[0]
        exe = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
        out: dict[str, Any] = {}
        for sale, per_call in (("rb1", 1), ("rb100", 100)):
            items: list[str] = []
            for _ in range(per_call):
                items += ["u__rand_int__", rid_key(0)[:1] + "__rand_int__", "1"]
            argv = [
                exe,
                "-h",
                HOST,
                "-p",
                port,
                "-c",
                str(opts.rb_clients),
                "-n",
                str(max(1000, opts.requests // per_call)),
                "-r",
                "1000000000",
                "--csv",
                "EVALSHA",
                self.sha,
                "9",
                *grab_keys(ROOM, sale),
                "",
                "100000",
                "0" * 24,
                sale,
                *items,
            ]
            shown = [
                *argv[:15],
                "<9 keys>",
                '""',
                "100000",
                "<event id prefix>",
                sale,
                *items[:3],
                *(["..."] if per_call > 1 else []),
            ]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True)
            rows = list(csv.reader(io.StringIO(proc.stdout)))
            rps, p50, p99 = float(rows[1][1]), float(rows[1][4]), float(rows[1][6])
            out[f"per_call_{per_call}"] = {
                "grabs_per_call": per_call,
                "calls_per_s": rps,
                "decisions_per_s": rps * per_call,
                "us_per_grab_wall": 1e6 / (rps * per_call),
                "p50_ms": p50,
                "p99_ms": p99,
                "command": shlex.join(shown),
            }
            log(
                f"   redis-benchmark, {per_call} grab(s) per EVALSHA: "
                f"{rps * per_call:,.0f} decisions/s"
            )
        return out

    # --- end to end ----------------------------------------------------------------------

    def e2e(self, sut: ServerUnderTest, clients: Clients) -> dict[str, Any]:
        opts = self.opts
        paths = self.paths("e", opts.connections)
        ok, failed, errors = clients.connect([sut.ws_port], paths, 64, 300)
        log(f"   e2e: {ok} viewers connected" + (f", {failed} failed: {errors}" if failed else ""))
        time.sleep(1)
        clients.same(("stats",))
        for pipe in clients.pipes:
            pipe.send(("run_closed", "e2e", opts.window, opts.warmup, opts.duration))
        time.sleep(opts.warmup)
        a = (
            time.time(),
            sut.proc.cpu_s(),
            sut.redis.cpu_s() if sut.redis else 0.0,
            clients.cpu_s(),
        )
        prof = self.profiler.start(sut, "engine-e2e", opts.duration) if self.profiler else None
        time.sleep(opts.duration)
        b = (
            time.time(),
            sut.proc.cpu_s(),
            sut.redis.cpu_s() if sut.redis else 0.0,
            clients.cpu_s(),
        )
        replies = []
        for i, pipe in enumerate(clients.pipes):
            if not pipe.poll(60):
                raise TimeoutError(f"client {i}: closed loop did not finish")
            replies.append(pipe.recv())
        if prof is not None:
            prof.finish()
        rate = 0.0
        oks = results = 0
        for _, marks, _, _ in replies:
            (t0, r0, o0, _), (t1, r1, o1, _) = marks
            rate += (r1 - r0) / (t1 - t0)
            results += r1 - r0
            oks += o1 - o0
        wall = b[0] - a[0]
        res = {
            "connections": ok,
            "window": opts.window,
            "seconds": round(wall, 2),
            "decisions_per_s": rate,
            "answers_in_window": results,
            "granted_in_window": oks,
            "engine_cpu": 100 * (b[1] - a[1]) / wall,
            "redis_cpu": 100 * (b[2] - a[2]) / wall,
            "client_cpu": 100 * (b[3] - a[3]) / wall,
            "client_procs": len(clients.pipes),
        }
        if prof is not None:
            res["profile"] = str(prof.summary)
        log(
            f"   e2e: {rate:,.0f} decisions/s, engine CPU {res['engine_cpu']:.0f}%, redis "
            f"{res['redis_cpu']:.0f}%, load client {res['client_cpu']:.0f}%"
        )
        clients.same(("close_all",))
        return res

    # --- the spike -----------------------------------------------------------------------

    def spike(self, sut: ServerUnderTest, clients: Clients, redis_url: str) -> dict[str, Any]:
        opts = self.opts
        nodes = [sut, *(start_node(sut, self.logdir) for _ in range(opts.spike_nodes - 1))]
        try:
            return self._spike(nodes, clients, redis_url)
        finally:
            for node in nodes[1:]:
                node.proc.stop()

    def _spike(
        self, nodes: list[ServerUnderTest], clients: Clients, redis_url: str
    ) -> dict[str, Any]:
        opts = self.opts
        n, stock = opts.spike_viewers, opts.spike_stock
        started = time.monotonic()
        ports = [node.ws_port for node in nodes]
        ok, failed, errors = clients.connect(ports, self.paths("s", n), 128, 900)
        connect_s = time.monotonic() - started
        log(
            f"   spike: {ok} viewers connected in {connect_s:.1f} s"
            + (f", {failed} failed: {errors}" if failed else "")
        )
        settle_s = wait_quiet(nodes)  # joining viewers keep the nodes busy (online counts)
        ours = [node.proc for node in nodes] + ([nodes[0].redis] if nodes[0].redis else [])
        other = self.wait_quiet(ours, clients)
        t0 = time.time() + 1.0
        trio.run(self._start_spike_sale, redis_url, int(t0 * 1000), stock)
        frames0 = sum(node.engine_counters().get("frames_sent", 0.0) for node in nodes)
        profiler = self.profiler
        engine_cpu, client_cpu = clients.fire_spike(
            "spike", t0, opts.spread, ok, opts.drain,
            lambda: [node.proc.cpu_s() for node in nodes],
            (lambda: profiler.start(nodes[0], "engine-spike", opts.spread + 2)) if profiler
            else None,
        )  # fmt: skip
        answers, codes, missing, lost = clients.spike_answers()
        lat = sorted(latency for _, latency, _ in answers)
        kernel_lat = sorted(latency for _, _, latency in answers)
        check = trio.run(self._spike_check, redis_url, stock)
        res = {
            "viewers": ok,
            "connect_failed": failed,
            "connect_s": round(connect_s, 1),
            "settle_s": round(settle_s, 1),
            "other_cpu_before": other,
            "stock": stock,
            "spread_s": opts.spread,
            **latency_summary(lat, missing),
            "codes": codes,
            "kernel_p50_ms": pct(kernel_lat, 0.50, missing),
            "kernel_p99_ms": pct(kernel_lat, 0.99, missing),
            "timeline": timeline(answers, t0),
            "nodes": len(nodes),
            "engine_cpu": engine_cpu,
            "client_cpu": client_cpu,
            "connections_lost": lost,
            "frames_sent_in_spike": sum(
                node.engine_counters().get("frames_sent", 0.0) for node in nodes
            )
            - frames0,
            "redis": check,
        }
        res["oversell"] = check["granted"] > stock or check["conserved"] is False
        res["exact"] = check["granted"] == min(stock, ok) == codes.get("ok", 0)
        log(
            f"   spike: p50 {fmt(res['p50_ms'])} ms, p99 {fmt(res['p99_ms'])} ms (to the kernel's "
            f"receive: p50 {fmt(res['kernel_p50_ms'])}, p99 {fmt(res['kernel_p99_ms'])}), granted "
            f"{check['granted']} of {stock}, answers {codes}, missing {missing}"
        )
        log_timeline(res["timeline"])
        clients.same(("close_all",))
        return res

    def baseline_spike(self, clients: Clients) -> dict[str, Any]:
        """The same spike against the plain `websockets` server (loadtest/baseline_server.py):
        no Redis, the stock in memory, the same frames out: what the least Python server
        achieves on this machine with this load client."""
        opts = self.opts
        n, stock = opts.spike_viewers, opts.spike_stock
        sut = start_baseline(0, f"{KID}:{SECRET}", self.logdir, ("--stock", str(stock)))
        try:
            ok, failed, errors = clients.connect([sut.ws_port], self.paths("b", n), 128, 900)
            log(
                f"   baseline spike: {ok} viewers connected"
                + (f", {failed} failed: {errors}" if failed else "")
            )
            other = self.wait_quiet([sut.proc], clients)
            t0 = time.time() + 1.0
            (server_cpu,), client_cpu = clients.fire_spike(
                "spike", t0, opts.spread, ok, opts.drain, lambda: [sut.proc.cpu_s()]
            )
            answers, codes, missing, lost = clients.spike_answers()
            lat = sorted(latency for _, latency, _ in answers)
            res = {
                "viewers": ok,
                "other_cpu_before": other,
                "stock": stock,
                **latency_summary(lat, missing),
                "codes": codes,
                "timeline": timeline(answers, t0),
                "server_cpu": server_cpu,
                "client_cpu": client_cpu,
                "connections_lost": lost,
            }
            log(f"   baseline spike: p50 {fmt(res['p50_ms'])} ms, p99 {fmt(res['p99_ms'])} ms, "
                f"answers {codes}, missing {missing}")  # fmt: skip
            log_timeline(res["timeline"])
            clients.same(("close_all",))
            return res
        finally:
            sut.stop()

    async def _start_spike_sale(self, redis_url: str, t0_ms: int, stock: int) -> None:
        async with open_redis(redis_url) as redis:
            store = SeckillStore(redis, event_maxlen=100_000)
            await self.start_sale(store, "spike", stock=stock, limit=1, start_ms=t0_ms)

    async def _spike_check(self, redis_url: str, stock: int) -> dict[str, Any]:
        async with open_redis(redis_url) as redis:
            info = {
                k.decode(): int(v) if v.isdigit() else v.decode()
                for k, v in (await redis.hgetall(keys.sale(ROOM, "spike"))).items()
            }
            holds = await redis.hlen(keys.sale_holds(ROOM, "spike"))
            reserved = 0
            async for entry in _stream_back(redis, keys.events(ROOM)):
                spike = b'"sale":"spike"' in entry[b"data"]
                if spike and entry[b"type"] == b"seckill.started":
                    break  # everything of the spike is newer than this
                if spike and entry[b"type"] == b"seckill.reserved":
                    reserved += 1
        s, left, held, sold = info["stock"], info["left"], info["held"], info["sold"]
        return {
            "stock": s,
            "left": left,
            "held": held,
            "sold": sold,
            "holds": holds,
            "reserved_events": reserved,
            "granted": held + sold,
            "conserved": s == left + held + sold == stock and holds == reserved == held + sold,
        }


async def _stream_back(redis: Any, key: str) -> Any:
    """The stream's entries, newest first."""
    last = "+"
    while True:
        entries = await redis.xrevrange(key, end=last, count=1000)
        for entry in entries:
            yield entry.field_values
        if len(entries) < 1000:
            return
        ident = entries[-1].identifier
        last = "(" + (ident.decode() if isinstance(ident, bytes) else ident)


def wait_quiet(
    nodes: list[ServerUnderTest], *, below: float = 0.15, limit_s: float = 60.0
) -> float:
    """Wait until every node uses less than `below` of a core (its viewers have settled);
    returns the time waited."""
    started = time.monotonic()
    last = [node.proc.cpu_s() for node in nodes]
    while time.monotonic() - started < limit_s:
        time.sleep(0.5)
        now = [node.proc.cpu_s() for node in nodes]
        if all(y - x < below * 0.5 for x, y in zip(last, now, strict=True)):
            break
        last = now
    return time.monotonic() - started


def start_node(first: ServerUnderTest, logdir: Path) -> ServerUnderTest:
    """Another engine node on the same Redis as `first` (its own viewer and HTTP ports)."""
    # the recorded argv starts with the env it ran under (for the report): not a program
    argv = list(itertools.dropwhile(lambda arg: "=" in arg and arg.split("=")[0].isupper(),
                                    first.argv))  # fmt: skip
    ws_port, http_port = free_port(), free_port()
    argv[argv.index("--ws-port") + 1] = str(ws_port)
    argv[argv.index("--http-port") + 1] = str(http_port)
    logdir.mkdir(parents=True, exist_ok=True)
    log_file = (logdir / f"engine-node-{ws_port}.log").open("wb")
    env = {**os.environ, "ENGINE_ANTIFRAUD": "false"}  # one IP, 10,000 accounts: not fraud here
    popen = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd=REPO, env=env)  # fmt: skip
    proc = Proc(f"engine-node-{ws_port}", popen, log_file)
    try:
        wait_port(ws_port, popen)
    except BaseException:
        proc.stop()
        raise
    return ServerUnderTest("engine", "engine node", proc, ws_port, None, http_port, argv)


def latency_summary(lat: list[float], missing: int) -> dict[str, Any]:
    """The answer counts and p50/p99/max of a spike's sorted latencies (s), in ms."""
    return {
        "answers": len(lat),
        "missing": missing,
        "p50_ms": pct(lat, 0.50, missing),
        "p99_ms": pct(lat, 0.99, missing),
        "max_ms": lat[-1] * 1000 if lat else None,
    }


def log_timeline(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        log(f"     sent {row['from_ms']:>5} ms after t0: {row['sent']:>5} grabs, "
            f"p50 {row['p50_ms']:>7,.1f} ms, p99 {row['p99_ms']:>7,.1f}, "
            f"max {row['max_ms']:>7,.1f}")  # fmt: skip


def timeline(
    answers: list[tuple[float, float, float]], t0: float, step_s: float = 0.1
) -> list[dict[str, Any]]:
    """Latency by when the request was sent: per `step_s` after t0, how many were sent and
    their p50/p99/max, ms (where in the spike the time goes)."""
    buckets: dict[int, list[float]] = {}
    for sent, latency, _ in answers:
        buckets.setdefault(int((sent - t0) // step_s), []).append(latency)
    rows = []
    for k in sorted(buckets):
        lats = sorted(buckets[k])
        rows.append({"from_ms": round(k * step_s * 1000), "sent": len(lats),
                     "p50_ms": round(pct(lats, 0.50, 0) or 0, 1),
                     "p99_ms": round(pct(lats, 0.99, 0) or 0, 1),
                     "max_ms": round(lats[-1] * 1000, 1)})  # fmt: skip
    return rows


def redis_version() -> str:
    try:
        text = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "?"
    return text.split("v=")[1].split()[0] if "v=" in text else text.strip()


def command_line() -> str:
    return shlex.join([Path(sys.executable).name, "-m", "loadtest.bench_seckill", *sys.argv[1:]])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench_seckill", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--only", default="redis,e2e,spike,baseline",
                   help="comma list: redis, e2e, spike, baseline (the spike against a plain "
                        "websockets server)")  # fmt: skip
    p.add_argument("--requests", type=int, default=300_000, help="redis-benchmark grabs")
    p.add_argument("--rb-clients", type=int, default=50, help="redis-benchmark connections")
    p.add_argument("--connections", type=int, default=400, help="e2e: viewers (one user each)")
    p.add_argument("--window", type=int, default=8, help="e2e: grabs in flight per viewer")
    p.add_argument("--warmup", type=float, default=2.0, help="e2e: load before the window, s")
    p.add_argument("--duration", type=float, default=10.0, help="e2e: measured window, s")
    p.add_argument("--spike-viewers", type=int, default=10_000, help="spike: viewers")
    p.add_argument("--spike-stock", type=int, default=1_000, help="spike: units for sale")
    p.add_argument(
        "--spike-nodes",
        type=int,
        default=1,
        help="spike: engine nodes on the one Redis (viewers spread evenly)",
    )
    p.add_argument("--spread", type=float, default=1.0, help="spike: grabs spread over, s")
    p.add_argument("--drain", type=float, default=30.0, help="spike: max wait for answers, s")
    p.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="load client processes (10,000 sockets fit in one)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each part, wait up to this long for a quiet machine, s",
    )
    p.add_argument(
        "--quiet-max",
        type=float,
        default=30.0,
        help="quiet: other processes use at most this %% of a core",
    )
    p.add_argument("--profile", metavar="DIR", help="py-spy the engine in the e2e window")
    p.add_argument("--json", metavar="FILE", help="results file (default loadtest/results/...)")
    opts = p.parse_args(argv)
    opts.only = [s.strip() for s in opts.only.split(",") if s.strip()]
    if set(opts.only) - {"redis", "e2e", "spike", "baseline"}:
        p.error("--only takes redis, e2e, spike, baseline")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    results = Bench(opts).run()
    print(render(results))
    path = (
        Path(opts.json) if opts.json else RESULTS / f"seckill-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str, allow_nan=True))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
