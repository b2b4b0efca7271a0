"""Servers under test, as subprocesses we own: redis-server, an engine node, the baseline.

Every process is started here, watched with psutil, and stopped by its PID (SIGTERM, then
SIGKILL after a grace period). Logs go to files under the results directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from engine.supervisor import STOP_TIMEOUT_S

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        with socket.socket() as s, contextlib.suppress(OSError):
            s.settimeout(0.2)
            s.connect((HOST, port))
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout:.0f} s")


@dataclass
class Proc:
    """A subprocess we started, with psutil for CPU and memory."""

    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes] | None = None
    children: bool = False  # measure its child processes with it (a supervisor's workers)
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def members(self) -> list[psutil.Process]:
        """The process, and with `children` the ones it runs now (workers it restarted too)."""
        if not self.children:
            return [self.ps]
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.Error:
            return [self.ps]

    def _times(self) -> list[tuple[float, float]]:
        out = []
        for ps in self.members():
            try:
                t = ps.cpu_times()
            except psutil.Error:  # a worker that just exited
                continue
            out.append((float(t.user), float(t.system)))
        return out

    def cpu_s(self) -> float:
        return sum(u + s for u, s in self._times())

    def cpu_split(self) -> tuple[float, float]:
        times = self._times()
        return sum(u for u, _ in times), sum(s for _, s in times)

    def rss(self) -> int:
        total = 0
        for ps in self.members():
            try:
                total += int(ps.memory_info().rss)
            except psutil.Error:
                continue
        return total

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        if self.log is not None:
            self.log.close()


def _spawn(name: str, argv: list[str], logdir: Path, env: dict[str, str] | None = None) -> Proc:
    logdir.mkdir(parents=True, exist_ok=True)
    log = (logdir / f"{name}.log").open("wb")
    popen = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO, env=env
    )
    return Proc(name, popen, log)


def start_redis(logdir: Path) -> tuple[Proc, int]:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    argv = [exe, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(logdir)]  # fmt: skip
    proc = _spawn(f"redis-{port}", argv, logdir)
    wait_port(port, proc.popen)
    return proc, port


_TREE_LAUNCHER = """
import importlib.util, sys
tree = sys.argv.pop(1)
sys.path.insert(0, tree)
import engine
lua = tree + "/scripts/lua"
spec = importlib.util.spec_from_file_location(
    "engine.lua", lua + "/__init__.py", submodule_search_locations=[lua])
sys.modules["engine.lua"] = module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from engine.cli import main
sys.exit(main())
"""


def engine_argv(tree: Path | None = None) -> list[str]:
    """The engine's command: the venv's `engine` script, or the engine of another checkout
    (`tree`, e.g. made with `git archive <commit> | tar -x -C DIR`) on this venv's packages."""
    if tree is not None:
        return [sys.executable, "-c", _TREE_LAUNCHER, str(tree.resolve())]
    script = Path(sys.executable).parent / "engine"
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]


@dataclass
class ServerUnderTest:
    """One server for a series of scenarios: the process (and for the engine its Redis)."""

    kind: str  # "engine" | "baseline"
    label: str
    proc: Proc
    ws_port: int
    redis: Proc | None = None
    http_port: int = 0
    argv: list[str] = field(default_factory=list)

    def stop(self) -> None:
        # an engine supervisor drains its workers for up to STOP_TIMEOUT_S: killing it sooner
        # orphans them (their own session), and they lose Redis while handling the last leaves
        self.proc.stop(grace=STOP_TIMEOUT_S + 5 if self.kind == "engine" else 5.0)
        if self.redis is not None:
            self.redis.stop()

    def engine_counters(self) -> dict[str, float]:
        """Hot-path counters from the engine's /metrics (empty for the baseline)."""
        if self.kind != "engine":
            return {}
        return engine_counters(f"http://{HOST}:{self.http_port}")


def engine_counters(http_url: str) -> dict[str, float]:
    """Hot-path counters from an engine node's /metrics (`http_url`: its HTTP side); empty when
    it cannot be read."""
    try:
        with urllib.request.urlopen(http_url.rstrip("/") + "/metrics/", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for name in ("frames_sent", "frames_dropped", "slow_consumer_closes", "bytes_sent"):
        m = re.search(rf"^engine_{name}(?:_total)? ([0-9.e+]+)$", text, re.M)
        if m:
            out[name] = float(m.group(1))
    for name in ("sum", "count"):  # mean time one broadcaster tick over all rooms takes
        m = re.search(rf"^engine_tick_duration_seconds_{name} ([0-9.e+]+)$", text, re.M)
        if m:
            out[f"tick_seconds_{name}"] = float(m.group(1))
    closes = re.findall(r'^engine_closes_total\{code="([^"]+)"\} ([0-9.e+]+)$', text, re.M)
    out["closes"] = sum(float(v) for _, v in closes)
    return out


def free_ports(n: int) -> int:
    """The first of `n` consecutive free ports (a supervisor's workers' HTTP sides)."""
    while True:
        first = free_port()
        try:
            for port in range(first + 1, first + n):
                with socket.socket() as s:
                    s.bind((HOST, port))
        except OSError:
            continue
        return first


def start_engine(
    tick_ms: int,
    token_keys: str,
    logdir: Path,
    tree: Path | None = None,
    *,
    workers: int = 1,
    redis: tuple[Proc, int] | None = None,
    extra: tuple[str, ...] = (),
) -> ServerUnderTest:
    """`engine run` on a fresh redis-server of its own, or on `redis` (proc, port: another
    node's, which stays its owner's to stop). `workers` > 1: one supervisor and its workers
    sharing the viewer port, measured together; their HTTP sides are http_port + i."""
    own_redis = redis is None
    redis_proc, redis_port = start_redis(logdir) if redis is None else redis
    try:
        ws_port, http_port = free_port(), free_ports(workers)
        # one node unless told: `engine run` starts one per core by default
        argv = [*engine_argv(tree), "run", "--workers", str(workers),
                "--redis-url", f"redis://{HOST}:{redis_port}/0",
                "--host", HOST, "--ws-port", str(ws_port), "--http-port", str(http_port),
                "--token-keys", token_keys, "--chat-tick-ms", str(tick_ms),
                "--heartbeat-interval-s", "600", "--heartbeat-timeout-s", "1800",
                "--log-level", "warning", *extra]  # fmt: skip
        # the benchmark measures fan-out: its senders, all on one IP and faster than any person,
        # would be rate limited by the anti-fraud layer (an env var: older trees ignore it)
        env = {**os.environ, "ENGINE_ANTIFRAUD": "false"}
        proc = _spawn(f"engine-tick{tick_ms}-{ws_port}", argv, logdir, env)
        proc.children = workers > 1
        try:
            # a busy machine, and an exported tree without bytecode, start slowly
            wait_port(ws_port, proc.popen, timeout=90.0)
            for i in range(workers):  # every worker up, or the first takes every viewer
                wait_port(http_port + i, proc.popen, timeout=90.0)
        except BaseException:
            proc.stop()
            raise
    except BaseException:
        if own_redis:
            redis_proc.stop()
        raise
    label = f"engine (tick {tick_ms} ms{f', {workers} workers' if workers > 1 else ''})"
    return ServerUnderTest("engine", label, proc, ws_port, redis_proc if own_redis else None,
                           http_port, ["ENGINE_ANTIFRAUD=false", *argv])  # fmt: skip


def start_baseline(
    batch_ms: int, token_keys: str, logdir: Path, extra: tuple[str, ...] = ()
) -> ServerUnderTest:
    port = free_port()
    argv = [sys.executable, "-m", "loadtest.baseline_server", "--port", str(port),
            "--batch-ms", str(batch_ms), "--token-key", token_keys, *extra]  # fmt: skip
    proc = _spawn(f"baseline-batch{batch_ms}-{port}", argv, logdir)
    try:
        wait_port(port, proc.popen)
    except BaseException:
        proc.stop()
        raise
    label = "websockets baseline" + (f" (batch {batch_ms} ms)" if batch_ms else " (plain)")
    return ServerUnderTest("baseline", label, proc, port, argv=argv)


def machine_info() -> dict[str, object]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
    }
