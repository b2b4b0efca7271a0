"""Across nodes and workers: the fan-out benchmark's load client against several engine nodes.

    python -m loadtest.bench_cluster                            # full run (~15 min when quiet)
    python -m loadtest.bench_cluster --only search --steps 5000,10000
    python -m loadtest.bench_cluster --engine-rev HEAD --profile docs/profiles/cluster

Parts (`--only cross,search,storm`), each on fresh redis-server and engine processes:
  cross   one node, then two nodes on one Redis with the viewers split half and half (viewer
          process i connects to node i % 2, the senders and flow-control tails to both): the
          fan-out scenario (one message per frame, closed loop, --chat-tick-ms 0) and the hot room
          (500 danmaku/s in, tick 100 ms, send-to-deliver p50/p99 on ~100 probes) of
          loadtest/bench_fanout.py, run the same way, single-node figures from the same run;
  search  `engine run --workers 2` (one port, SO_REUSEPORT): the hot room at each of --steps
          viewer counts (the viewers connected afresh for each step, so probes stay spread
          evenly over the connection order); a step holds when p99 < --target-p99 ms; the
          search stops after --search-misses steps that do not;
  storm   --storm-viewers viewers of one room reconnect evenly within --storm-spread s, each with
          `since` = the room's seq - --storm-back and the room's epoch: time until every one has
          received every chat item after its position, engine, Redis and load-client CPU
          during the storm, history reads in Redis (XRANGE calls, `INFO commandstats`: the
          history_range script is the only caller). Twice per engine: "warm" (the room is open on
          every node: the senders are still connected) and "cold" (nobody was left in the room
          and it closed on every node: each node reads the history once); with --storm-workers
          1 and 2.
The table goes to stdout, every figure to loadtest/results/cluster-<time>.json; docs/benchmarks.md
("Across nodes and workers") says how to read it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import sys
import time
import urllib.request
from array import array
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgpack
import psutil
import trio

from engine.identity import mint_token
from engine.store.store import Store, open_redis
from loadtest import cluster_report, report
from loadtest.bench_fanout import (
    KID,
    RESULTS,
    ROOM,
    SECRET,
    Bench,
    Clients,
    add_load_args,
    check_connected,
    counter_delta,
    export_rev,
    fmt_ms,
    latency_stats,
    log,
    versions,
)
from loadtest.bench_seckill import redis_version
from loadtest.profiling import Profiler
from loadtest.servers import (
    HOST,
    Proc,
    ServerUnderTest,
    engine_counters,
    machine_info,
    start_engine,
)
from loadtest.stormclient import worker_main

PARTS = ("cross", "search", "storm")


class NodeSet:
    """Several engine nodes measured as one server (what bench_fanout reads of a `Proc`)."""

    children = False

    def __init__(self, nodes: list[ServerUnderTest]) -> None:
        self.nodes = nodes

    @property
    def pid(self) -> int:  # py-spy (--profile) records the first node
        return self.nodes[0].proc.pid

    def cpu_s(self) -> float:
        return sum(n.proc.cpu_s() for n in self.nodes)

    def cpu_split(self) -> tuple[float, float]:
        splits = [n.proc.cpu_split() for n in self.nodes]
        return sum(u for u, _ in splits), sum(s for _, s in splits)

    def rss(self) -> int:
        return sum(n.proc.rss() for n in self.nodes)


class Engines:
    """The engine of one measurement: one node, several nodes on one Redis (each its own port),
    or `engine run --workers N` (one port); the `ServerUnderTest` interface Bench reads."""

    kind = "engine"

    def __init__(self, nodes: list[ServerUnderTest], workers: int) -> None:
        self.nodes, self.workers = nodes, workers
        self.redis = nodes[0].redis
        self.proc: Proc | NodeSet = nodes[0].proc if len(nodes) == 1 else NodeSet(nodes)
        self.ws_ports = [n.ws_port for n in nodes]
        self.ws_port = self.ws_ports[0]
        self.http_ports = [n.http_port + i for n in nodes for i in range(workers)]
        self.argv = nodes[0].argv if len(nodes) == 1 else [n.argv for n in nodes]
        self.label = nodes[0].label if len(nodes) == 1 else f"{len(nodes)} x {nodes[0].label}"
        argv = nodes[0].argv
        self.redis_url = argv[argv.index("--redis-url") + 1]

    def engine_counters(self) -> dict[str, float]:
        total: Counter[str] = Counter()
        for port in self.http_ports:
            total.update(engine_counters(f"http://{HOST}:{port}"))
        return dict(total)

    def gauge(self, name: str) -> list[float | None]:
        """A gauge of every node process (None where /metrics did not answer)."""
        out: list[float | None] = []
        for port in self.http_ports:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/metrics/", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                out.append(None)
                continue
            m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
            out.append(float(m.group(1)) if m else None)
        return out

    def member_cpu(self) -> dict[str, float]:
        """CPU seconds of each engine process: 'node i', or the supervisor and its workers."""
        if isinstance(self.proc, NodeSet):
            return {f"node {i}": n.proc.cpu_s() for i, n in enumerate(self.nodes)}
        out = {}
        for ps in self.proc.members():
            try:
                t = ps.cpu_times()
            except psutil.Error:
                continue
            role = "supervisor" if ps.pid == self.proc.pid and self.proc.children else "node"
            out[f"{role} {ps.pid}"] = float(t.user + t.system)
        return out

    def stop(self) -> None:
        for node in reversed(self.nodes):  # the first owns the redis-server
            node.stop()


class ClusterBench(Bench):
    def __init__(self, opts: argparse.Namespace) -> None:
        super().__init__(opts)
        self.tails = [self._path(f"tail{i}") for i in range(2)]
        self.snaps: list[dict[str, Any]] = []
        self.profile_dir = Path(opts.profile) if opts.profile else None

    # --- servers -------------------------------------------------------------------------

    def start(self, tick: int, *, nodes: int = 1, workers: int = 1, extra: tuple[str, ...] = ()
              ) -> Engines:  # fmt: skip
        keys = f"{KID}:{SECRET}"
        first = start_engine(tick, keys, self.logdir, self.engine_tree, workers=workers,
                             extra=extra)  # fmt: skip
        started = [first]
        try:
            assert first.redis is not None
            url = first.argv[first.argv.index("--redis-url") + 1]
            redis_port = int(url.rsplit(":", 1)[1].split("/")[0])
            for _ in range(nodes - 1):
                started.append(start_engine(tick, keys, self.logdir, self.engine_tree,
                                            workers=workers, redis=(first.redis, redis_port),
                                            extra=extra))  # fmt: skip
        except BaseException:
            for node in reversed(started):
                node.stop()
            raise
        eng = Engines(started, workers)
        log(f"== {eng.label}: pids {[n.proc.pid for n in started]}, ports {eng.ws_ports}")
        return eng

    def profile_as(self, name: str) -> None:
        if self.profile_dir is not None:
            self.profiler = Profiler(self.profile_dir / name)

    def snapshot(self, sut: Any) -> dict[str, Any]:
        snap = super().snapshot(sut)
        snap["members"] = sut.member_cpu()
        snap["procs"] = all_processes()
        self.snaps.append(snap)
        return snap

    def ours(self, eng: Engines) -> set[int]:
        clients = self.clients
        assert clients is not None
        pids = {os.getpid(), *(ps.pid for ps in clients.ps.values())}
        for node in eng.nodes:
            pids |= {ps.pid for ps in node.proc.members()}
        if eng.redis is not None:
            pids.add(eng.redis.pid)
        return pids

    def window_extras(self, eng: Engines) -> dict[str, Any]:
        """Per engine process CPU % and per node delivered messages/s in the last window, and
        the processes outside the benchmark that used the most CPU meanwhile."""
        a, b = self.snaps[-2], self.snaps[-1]
        wall = b["t"] - a["t"]
        members = {k: 100 * (b["members"][k] - v) / wall for k, v in a["members"].items()
                   if k in b["members"]}  # fmt: skip
        per_node = [0.0] * len(eng.ws_ports)
        for i, (va, vb) in enumerate(zip(a["viewers"], b["viewers"], strict=True)):
            per_node[i % len(eng.ws_ports)] += (vb["msgs"] - va["msgs"]) / (vb["t"] - va["t"])
        return {"engine_cpu_by_process": members, "msgs_per_s_by_node": per_node,
                "other_top": top_others(a["procs"], b["procs"], wall, self.ours(eng))}  # fmt: skip

    def measured(self, fn: Callable[[], dict[str, Any]], eng: Engines) -> dict[str, Any]:
        """One window, measured again while other processes disturbed it (--retries); the
        least disturbed of the attempts is kept."""
        runs: list[dict[str, Any]] = []
        while True:
            runs.append(fn() | self.window_extras(eng))
            if runs[-1]["other_cpu"] <= report.NOISY_CPU or len(runs) > self.opts.retries:
                break
            log(f"   other processes used {runs[-1]['other_cpu']:.0f}% of a core: "
                "measuring again")  # fmt: skip
        best = min(runs, key=lambda r: r["other_cpu"])
        noisy = [round(r["other_cpu"], 1) for r in runs if r is not best]
        return best | {"discarded_noisy_runs": noisy}

    def settle(self, eng: Engines) -> float:
        """Wait until the engine is nearly idle (joins and presence done), at most --settle s."""
        started = time.monotonic()
        last = eng.proc.cpu_s()
        while time.monotonic() - started < self.opts.settle:
            time.sleep(1.0)
            now = eng.proc.cpu_s()
            if now - last < 0.15:
                break
            last = now
        return round(time.monotonic() - started, 1)

    def connect_room(self, eng: Engines, viewers: list[tuple[str, bool]], *, senders: int,
                     tails: bool) -> dict[str, Any]:  # fmt: skip
        """Senders (split over the nodes), viewers (process i on node i % nodes), then one
        flow-control tail per node (the last viewers of each node)."""
        clients = self.clients
        assert clients is not None
        ports = eng.ws_ports
        for i, port in enumerate(ports):
            part = [(p, False) for p in self.senders[:senders][i :: len(ports)]]
            if part:
                reply = clients.pub(("connect", "sender", HOST, port, part, 50))
                check_connected("senders", reply, len(part))
        res: dict[str, Any] = {}
        if viewers:
            started = time.monotonic()
            replies = self.connect_viewers(ports, viewers)
            res = {"connect_s": round(time.monotonic() - started, 2),
                   "viewers": sum(r[2] for r in replies),
                   "connect_failed": sum(r[3] for r in replies),
                   "connect_errors": [e for r in replies for e in r[4]][:5]}  # fmt: skip
            log(f"   {res['viewers']} viewers connected in {res['connect_s']} s"
                + (f", {res['connect_failed']} failed: {res['connect_errors']}"
                   if res["connect_failed"] else ""))  # fmt: skip
        if tails:
            for port, tail in zip(ports, self.tails, strict=False):
                check_connected("tail", clients.pub(("connect", "tail", HOST, port,
                                                     [(tail, True)], 1)), 1)  # fmt: skip
        return res

    # --- the run -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        opts = self.opts
        out: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": command_line(),
            "machine": machine_info() | versions() | {"redis": redis_version()},
            "settings": dict(vars(opts)),
            "engine_source": self.engine_source,
        }
        started = time.monotonic()
        self.clients = Clients(opts.client_procs, target=worker_main)
        try:
            if "cross" in opts.only:
                out["cross"] = self.cross()
            if "search" in opts.only:
                out["search"] = self.search()
            if "storm" in opts.only:
                out["storm"] = {f"workers-{w}": self.storm(w) for w in opts.storm_workers}
        finally:
            self.clients.shutdown()
        out["wall_s"] = round(time.monotonic() - started, 1)
        return out

    # --- 1. one node vs two nodes --------------------------------------------------------

    def cross(self) -> dict[str, Any]:
        clients, opts = self.clients, self.opts
        assert clients is not None
        out: dict[str, Any] = {}
        for nodes in (1, 2):
            res: dict[str, Any] = {}
            for tick, scenario in ((0, "fanout"), (100, "hot")):
                eng = self.start(tick, nodes=nodes)
                try:
                    self.profile_as(f"cross-{nodes}node-{scenario}")
                    res[f"{scenario}_room"] = self.connect_room(
                        eng, self.viewers, senders=opts.hot_senders, tails=True
                    )
                    fn: Callable[[], dict[str, Any]] = (
                        partial(self.throughput, eng, opts.window, "fanout")
                        if scenario == "fanout"
                        else partial(self.hot, eng)
                    )
                    res[scenario] = self.measured(fn, eng)
                    res[f"{scenario}_argv"] = eng.argv
                finally:
                    try:
                        clients.close_all()
                    finally:
                        eng.stop()
            out[f"nodes-{nodes}"] = res
        return out

    # --- 2. the largest hot room --workers 2 holds ---------------------------------------

    def search(self) -> dict[str, Any]:
        clients, opts = self.clients, self.opts
        assert clients is not None
        eng = self.start(100, workers=opts.search_workers)
        out: dict[str, Any] = {"argv": eng.argv, "workers": opts.search_workers, "steps": []}
        misses = 0
        try:
            self.connect_room(eng, [], senders=opts.hot_senders, tails=False)
            for n in opts.steps:
                log(f"-- {n} viewers")
                step: dict[str, Any] = {"step": n}
                step |= self.connect_room(eng, self._viewer_paths(n, opts.probes), senders=0,
                                          tails=False)  # fmt: skip
                step["settle_s"] = self.settle(eng)
                self.profile_as(f"search-{n}")
                step["hot"] = self.measured(lambda: self.hot(eng), eng)
                p99 = step["hot"]["latency"]["p99_ms"]
                step["held"] = (p99 is not None and p99 < opts.target_p99
                                and step["viewers"] == n)  # fmt: skip
                out["steps"].append(step)
                log(f"   {n} viewers: p99 {fmt_ms(p99)} ms: "
                    f"{'held' if step['held'] else 'NOT held'}")  # fmt: skip
                clients.ask_viewers(("close_all",))
                if not step["held"]:
                    misses += 1
                    if misses >= opts.search_misses:
                        break
        finally:
            try:
                clients.close_all()
            finally:
                eng.stop()
        return out

    # --- 3. resume storms ----------------------------------------------------------------

    def storm(self, workers: int) -> dict[str, Any]:
        clients, opts = self.clients, self.opts
        assert clients is not None
        # the history outlives the waits for a quiet machine (default TTL: 300 s after the last
        # message; an expired history would turn the storm into resyncs)
        extra = ("--room-linger-s", str(opts.storm_linger), "--history-ttl-s", "3600")
        eng = self.start(100, workers=workers, extra=extra)
        out: dict[str, Any] = {"argv": eng.argv, "workers": workers}
        try:
            senders = min(opts.storm_senders, len(self.senders))
            self.connect_room(eng, [], senders=senders, tails=False)
            out["keepers"] = self.keep_open(eng)
            count = opts.storm_back + opts.storm_extra
            log(f"   publishing {count} danmaku at {opts.storm_fill_rate:g}/s")
            clients.pub(("run_rate", opts.storm_fill_rate, count / opts.storm_fill_rate))
            time.sleep(count / opts.storm_fill_rate + 1.0)
            clients.pub(("stop",))
            time.sleep(1.0)
            out["rooms_open_warm"] = eng.gauge("engine_rooms")
            out["fresh"] = self.one_storm(eng, "fresh")
            out["warm"] = self.one_storm(eng, "warm")
            clients.pub(("close_all",))  # nobody left: the room closes on every node
            deadline = time.monotonic() + 30
            while any(r != 0 for r in eng.gauge("engine_rooms")):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rooms still open: {eng.gauge('engine_rooms')}")
                time.sleep(0.25)
            out["rooms_open_cold"] = eng.gauge("engine_rooms")
            out["cold"] = self.one_storm(eng, "cold")
        finally:
            try:
                clients.close_all()
            finally:
                eng.stop()
        return out

    def keep_open(self, eng: Engines) -> int:
        """Connect "keeper" viewers until the room is open on every node (the kernel picks a
        worker for each connection), so that the warm storm finds it in every node's memory."""
        clients = self.clients
        assert clients is not None
        keepers = 0
        while 0 in eng.gauge("engine_rooms") and keepers < 64:
            path = self._path(f"keeper{keepers}")
            reply = clients.pub(("connect", "keeper", HOST, eng.ws_port, [(path, False)], 1))
            check_connected("keeper", reply, 1)
            keepers += 1
        return keepers

    def storm_paths(self, mode: str, since: int | None, epoch: str) -> list[tuple[str, bool]]:
        """Each storm its own people (`<mode><i>`): every storm pays the same presence work."""
        tail = "" if since is None else f"&since={since}&epoch={quote(epoch)}"
        keys = self.keys
        return [
            (f"/v1/ws?token={mint_token(keys, user=f'{mode}{i}', room=ROOM, ttl_s=3600)}{tail}",
             False)
            for i in range(self.opts.storm_viewers)
        ]  # fmt: skip

    def one_storm(self, eng: Engines, mode: str) -> dict[str, Any]:
        clients, opts = self.clients, self.opts
        assert clients is not None
        fresh = mode == "fresh"  # joins without a position: the cost of the joins alone
        settled = self.settle(eng)  # the last storm's leaves are done before this one starts
        quiet = self.wait_quiet(eng)
        pos = trio.run(room_position, eng.redis_url, opts.storm_back)
        paths = self.storm_paths(mode, None if fresh else pos["since"], pos["epoch"])
        if fresh:
            log(f"   {mode} storm: {len(paths)} viewers joining without a position")
        else:
            log(f"   {mode} storm: {len(paths)} viewers resuming from seq {pos['since']} "
                f"(room at {pos['seq']}, {pos['chat_items']} chat items to catch up)")  # fmt: skip
        if pos["messages"] < pos["seq"] - pos["since"]:
            log(f"   the history holds {pos['messages']} of them: expect resyncs")
        clients.ask_viewers(("pace", 0.0))
        clients.ask_viewers(("storm_target", 0 if fresh else pos["chat_items"]))
        reads0 = trio.run(history_reads, eng.redis_url)
        counters0 = eng.engine_counters()
        a = self.snapshot(eng)
        bench0 = _own_cpu_s()
        prof = None
        if self.profile_dir is not None:
            prof = Profiler(self.profile_dir / f"storm-{eng.workers}w").start(
                eng, f"engine-{mode}", opts.storm_spread + 12
            )
        t0 = time.time()
        names = clients.viewer_names
        conc = max(1, opts.storm_concurrency)
        for i, name in enumerate(names):
            clients.pipes[name].send(("connect", "storm", HOST, eng.ws_port,
                                      paths[i :: len(names)], conc, opts.storm_spread))  # fmt: skip
        replies = []
        for name in names:
            if not clients.pipes[name].poll(opts.storm_timeout + 60):
                raise TimeoutError(f"{name}: storm viewers not connected")
            replies.append(clients.pipes[name].recv())
        ok = sum(r[2] for r in replies)
        deadline = t0 + opts.storm_timeout
        while True:
            stats = clients.ask_viewers(("storm_stats", "storm"))
            key = "welcomed" if fresh else "caught"
            caught = sum(1 for s in stats for c in array("d", s[key]) if c > 0)
            if caught >= ok or time.time() > deadline:
                break
            time.sleep(0.05)
        t1 = time.time()
        b = self.snapshot(eng)
        bench_cpu = _own_cpu_s() - bench0
        if prof is not None:
            prof.finish()
        reads1 = trio.run(history_reads, eng.redis_url)
        res = storm_figures(stats, t0, len(paths), fresh=fresh)
        wall = t1 - t0
        res |= {
            "mode": mode,
            "position": pos,
            "connected": ok,
            "connect_failed": sum(r[3] for r in replies),
            "connect_errors": [e for r in replies for e in r[4]][:5],
            "other_before": quiet,
            "settle_s": settled,
            "history_reads": reads1 - reads0,
            "engine_counters": counter_delta(counters0, eng.engine_counters()),
            "wall_s": wall,
            "other_top": top_others(a["procs"], b["procs"], wall, self.ours(eng)),
            "engine_cpu_s": b["server_cpu"] - a["server_cpu"],
            "redis_cpu_s": (b["redis_cpu"] or 0) - (a["redis_cpu"] or 0),
            "client_cpu_s": sum(b["clients_cpu"].values()) - sum(a["clients_cpu"].values()),
            "bench_cpu_s": bench_cpu,  # this process: starting the storm, polling the clients
            "engine_cpu_by_process_s": {
                k: b["members"][k] - v for k, v in a["members"].items() if k in b["members"]
            },
        }
        res["other_cpu"] = other_cpu(a, b, res)
        log(
            f"   {mode}: {res['caught_up']}/{len(paths)} caught up, all within "
            f"{fmt_s(res['all_caught_up_s'])} s; engine {res['engine_cpu_s']:.2f} CPU s, "
            f"redis {res['redis_cpu_s']:.2f} CPU s, {res['history_reads']} history reads"
        )
        clients.ask_viewers(("storm_target", 0))
        clients.ask_viewers(("close_all",))
        clients.ask_viewers(("pace", opts.pace))
        time.sleep(opts.storm_rest)  # their people are swept (presence grace) before the next
        return res


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def all_processes() -> dict[int, tuple[str, float]]:
    """(name, CPU seconds) of every process we may read."""
    out = {}
    for ps in psutil.process_iter(["name", "cpu_times"]):
        t = ps.info["cpu_times"]
        if t is not None:
            out[ps.pid] = (ps.info["name"] or "?", float(t.user + t.system))
    return out


def top_others(
    a: dict[int, tuple[str, float]], b: dict[int, tuple[str, float]], wall: float, ours: set[int]
) -> list[str]:
    """The processes outside the benchmark that used the most CPU between two readings."""
    used = [(100 * (cpu - a[pid][1]) / wall, name, pid) for pid, (name, cpu) in b.items()
            if pid in a and pid not in ours]  # fmt: skip
    return [f"{name} {pid}: {pct:.0f}%" for pct, name, pid in sorted(used, reverse=True)[:3]
            if pct >= 1.0]  # fmt: skip


def storm_figures(stats: list[dict[str, Any]], t0: float, total: int, *, fresh: bool
                  ) -> dict[str, Any]:  # fmt: skip
    """What the viewer processes saw: when each socket opened, got its welcome and caught up
    (a fresh viewer, with no position, has caught up with its welcome)."""
    opened: list[float] = []
    out: dict[str, Any] = {"viewers": total}
    recovery: Counter[str] = Counter()
    for s in stats:
        opened += array("d", s["opened"])
        recovery.update(s["recovery"])
    out["recovery"] = dict(recovery)
    out["opened_over_s"] = (max(opened) - min(opened)) if opened else None
    for what, key in (("welcome", "welcomed"), ("catch_up", "welcomed" if fresh else "caught")):
        done: list[float] = []
        lags: list[float] = []
        for s in stats:
            o, d = array("d", s["opened"]), array("d", s[key])
            done += [x for x in d if x > 0]
            lags += [y - x for x, y in zip(o, d, strict=True) if y > 0]
        lat = latency_stats(sorted(lags), total)  # one that never got there counts as inf
        out[f"{what}_count"] = len(done)
        out[f"all_{what}_s"] = (max(done) - t0) if len(done) == total else math.inf
        out |= {f"{what}_p50_ms": lat["p50_ms"], f"{what}_p99_ms": lat["p99_ms"],
                f"{what}_max_ms": lat["max_ms"]}  # fmt: skip
    out["caught_up"] = out["catch_up_count"]
    out["all_caught_up_s"] = out["all_catch_up_s"]
    return out


def other_cpu(a: dict[str, Any], b: dict[str, Any], res: dict[str, Any]) -> float:
    """% of a core used by processes that are not the benchmark's during the storm."""
    wall = b["t"] - a["t"]
    ma, mb = a["machine"], b["machine"]
    skip = ("idle", "iowait", "guest", "guest_nice", "softirq", "irq")
    busy = sum(mb[k] - ma[k] for k in mb if k not in skip)
    ours = res["engine_cpu_s"] + res["redis_cpu_s"] + res["client_cpu_s"] + res["bench_cpu_s"]
    return max(0.0, 100 * (busy - ours) / wall)


async def room_position(redis_url: str, back: int) -> dict[str, Any]:
    """The room's epoch and seq, the position `back` messages earlier, and how many chat items
    lie between (what a viewer resuming from there must receive)."""
    async with open_redis(redis_url) as redis:
        store = Store(redis)
        epoch, seq = await store.meta(ROOM)
        since = max(0, seq - back)
        _, entries = await store.history(ROOM, since, seq)
    items = 0
    for _, payload in entries:
        message = msgpack.unpackb(payload)
        if message.get("k") == "chat":
            batch = message.get("ms")
            items += len(batch) if isinstance(batch, list) else 1
    return {"epoch": epoch, "seq": seq, "since": since, "messages": len(entries),
            "chat_items": items}  # fmt: skip


async def history_reads(redis_url: str) -> int:
    """XRANGE calls Redis has run (the history_range script's read; scripts' calls count)."""
    async with open_redis(redis_url) as redis:
        info = await redis.info("commandstats")
    entry: Any = info.get("cmdstat_xrange")
    if isinstance(entry, dict):
        return int(entry.get("calls", 0))
    if isinstance(entry, (str, bytes)):  # "calls=3,usec=..." unparsed
        text = entry.decode() if isinstance(entry, bytes) else entry
        m = re.search(r"calls=(\d+)", text)
        return int(m.group(1)) if m else 0
    return 0


def fmt_s(v: float | None) -> str:
    return "n/a" if v is None else ("inf" if math.isinf(v) else f"{v:.2f}")


def command_line() -> str:
    return shlex.join([Path(sys.executable).name, "-m", "loadtest.bench_cluster", *sys.argv[1:]])


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench_cluster",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    add_load_args(p)
    p.set_defaults(client_procs=4)  # 19,900 viewers: open-files limit 20,000 per process
    p.add_argument("--only", default=",".join(PARTS), help="comma list: cross, search, storm")
    p.add_argument("--settle", type=float, default=30.0,
                   help="after connecting: wait at most this long for an idle engine")  # fmt: skip
    p.add_argument("--steps", default="2000,5000,7500,10000,15000,19900",
                   help="search: viewer counts, in order")  # fmt: skip
    p.add_argument("--search-workers", type=int, default=2, help="search: engine run --workers")
    p.add_argument("--search-misses", type=int, default=1,
                   help="search: stop after this many steps over the p99 target")  # fmt: skip
    p.add_argument("--target-p99", type=float, default=250.0, help="search: p99 bound, ms")
    p.add_argument("--goal", type=int, default=19_900, help="search: viewers wanted")
    p.add_argument("--storm-viewers", type=int, default=5000)
    p.add_argument("--storm-back", type=int, default=200, help="since = seq - this")
    p.add_argument("--storm-extra", type=int, default=20,
                   help="danmaku published before the storm's range")  # fmt: skip
    p.add_argument("--storm-spread", type=float, default=1.0, help="reconnects within, s")
    p.add_argument("--storm-workers", default="1,2", help="engine run --workers of each storm")
    p.add_argument("--storm-senders", type=int, default=16, help="connections that publish")
    p.add_argument("--storm-fill-rate", type=float, default=25.0,
                   help="danmaku/s published before a storm (slow: about one per seq)")  # fmt: skip
    p.add_argument("--storm-linger", type=float, default=1.0, help="engine --room-linger-s")
    p.add_argument("--storm-concurrency", type=int, default=5000,
                   help="storm upgrades in flight per process (the spread paces them)")  # fmt: skip
    p.add_argument("--storm-timeout", type=float, default=60.0, help="s to wait for catch-up")
    p.add_argument("--storm-rest", type=float, default=12.0,
                   help="s after a storm's viewers left (engine presence grace: 8 s)")  # fmt: skip
    opts = p.parse_args(argv)
    opts.only = [s.strip() for s in opts.only.split(",") if s.strip()]
    unknown = set(opts.only) - set(PARTS)
    if unknown:
        p.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    opts.steps = _ints(opts.steps)
    opts.storm_workers = _ints(opts.storm_workers)
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    exported = None
    if opts.engine_rev:
        exported, opts.engine_rev = export_rev(opts.engine_rev)
        opts.engine_tree = str(exported)
    try:
        results = ClusterBench(opts).run()
    finally:
        if exported is not None:
            shutil.rmtree(exported, ignore_errors=True)
    results["verdicts"] = cluster_report.verdicts(results)
    print(cluster_report.render(results))
    path = (
        Path(opts.json) if opts.json else RESULTS / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str, allow_nan=True))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
