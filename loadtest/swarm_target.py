"""What the swarm loads: its own engine (a private redis-server and `--nodes` engine nodes, the
way `make run` starts one, through `loadtest/servers.py`), or a deployed engine given by URLs
and a token key. Also the machine-level figures: CPU of the processes we started, the CPU of
everything else, and the wait for a quiet machine.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from engine.config import Config
from engine.supervisor import STOP_TIMEOUT_S
from loadtest.servers import HOST, Proc, ServerUnderTest, engine_counters, start_engine

DEV_KEYS = Path("var/dev-keys.json")  # `make run`'s development key (engine/devkeys.py)


class TargetError(ValueError):
    pass


@dataclass
class Target:
    label: str
    ws: list[tuple[str, int, str]]  # (host, port, path) per node; client process i uses i % n
    http_url: str  # the control API (and /metrics of the first node)
    redis_url: str | None  # None: the checks use the control API's counts only
    keys: dict[str, bytes]  # token keys: the first one signs
    admin_token: str | None = None  # given: used for the control API instead of a minted one
    metrics_urls: list[str] = field(default_factory=list)
    nodes: list[ServerUnderTest] = field(default_factory=list)  # started by us
    redis: Proc | None = None

    @property
    def kid(self) -> str:
        return next(iter(self.keys))

    def procs(self) -> dict[str, Proc]:
        """Our server processes by role (for CPU figures): empty for a deployed engine."""
        out = {"engine": self.nodes[0].proc} if self.nodes else {}  # supervisor and nodes
        if self.redis is not None:
            out["redis"] = self.redis
        return out

    def counters(self) -> dict[str, float]:
        """The engine's drop counters summed over the nodes we can read."""
        total: dict[str, float] = {}
        for url in self.metrics_urls:
            for name, value in engine_counters(url).items():
                total[name] = total.get(name, 0.0) + value
        return total

    def describe(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "ws": [f"ws://{h}:{p}{path}" for h, p, path in self.ws],
            "http_url": self.http_url,
            "redis_url": self.redis_url,
            "nodes": [{"pid": n.proc.pid, "argv": shown_argv(n.argv)} for n in self.nodes],
        }

    def stop(self) -> None:
        """The engine first, given the time its supervisor gives its nodes to drain (a SIGKILL
        sooner would orphan the nodes, which run in their own session, and stop their Redis
        under them), then its redis-server."""
        for node in self.nodes:
            node.proc.stop(grace=STOP_TIMEOUT_S + 5)
            if node.redis is not None:
                node.redis.stop()


def shown_argv(argv: list[str]) -> list[str]:
    """An engine's command line as the report shows it: the token secret masked, and without
    the benchmarks' ENGINE_ANTIFRAUD=false when a flag decides (a flag wins over the env)."""
    out = list(argv)
    if "--token-keys" in out:
        i = out.index("--token-keys") + 1
        out[i] = ",".join(k.split(":", 1)[0] + ":***" for k in out[i].split(","))
    if "--antifraud" in out or "--no-antifraud" in out:
        out = [a for a in out if not a.startswith("ENGINE_ANTIFRAUD=")]
    return out


def parse_ws_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise TargetError(f"--ws-url {url!r}: the swarm speaks plain ws:// (put TLS in front)")
    if not parts.hostname:
        raise TargetError(f"--ws-url {url!r}: no host")
    return parts.hostname, parts.port or 80, parts.path or "/v1/ws"


def read_keys(secret: str | None, keys_file: str | None) -> dict[str, bytes]:
    """`KID:SECRET`, or a JSON file `{kid: secret}` (`make run` writes var/dev-keys.json)."""
    if secret:
        kid, colon, value = secret.partition(":")
        if not colon or not kid or len(value) < 32:
            raise TargetError("--secret is KID:SECRET, the secret at least 32 characters")
        return {kid: value.encode()}
    path = Path(keys_file) if keys_file else DEV_KEYS
    if not path.exists():
        raise TargetError(f"no token key: give --secret KID:SECRET or --keys-file (no {path})")
    stored = json.loads(path.read_text())
    if not isinstance(stored, dict) or not stored:
        raise TargetError(f"{path}: expected a JSON object {{kid: secret}}")
    return {str(k): str(v).encode() for k, v in stored.items()}


def deployed(opts: Any) -> Target:
    keys = read_keys(opts.secret, opts.keys_file)
    if not opts.http_url:
        raise TargetError("--http-url is needed with --ws-url (the control API)")
    return Target(
        label=f"deployed engine at {opts.ws_url}",
        ws=[parse_ws_url(opts.ws_url)],
        http_url=opts.http_url.rstrip("/"),
        redis_url=opts.redis_url or None,
        keys=keys,
        admin_token=opts.admin_token or None,
        metrics_urls=[opts.http_url.rstrip("/")],
    )


def start_own(nodes: int, antifraud: bool, extra: list[str], logdir: Path) -> Target:
    """A private redis-server and `engine run --workers <nodes>` on it (`make run`'s shape: one
    supervisor and its nodes sharing the viewer port), stopped by `Target.stop()`."""
    kid, secret = "swarm", secrets.token_hex(32)
    # anti-fraud as deployed, behind a proxy it trusts: each viewer's X-Forwarded-For address
    # counts for the per-IP limits (every socket comes from 127.0.0.1)
    guard = ("--antifraud", "--trusted-proxies", HOST) if antifraud else ("--no-antifraud",)
    # the engine's own heartbeat (start_engine sets the benchmarks' 600 s; the last flag wins)
    beat = (
        "--heartbeat-interval-s",
        str(Config().heartbeat_interval_s),
        "--heartbeat-timeout-s",
        str(Config().heartbeat_timeout_s),
    )
    flags = ("--control-socket", "none", "--event-stream-maxlen", "2000000", *guard, *beat, *extra)
    sut = start_engine(100, f"{kid}:{secret}", logdir, workers=nodes, extra=flags)
    assert sut.redis is not None
    redis_url = sut.argv[sut.argv.index("--redis-url") + 1]
    n = f"{nodes} node{'s' if nodes > 1 else ''}"
    return Target(
        label=f"own engine: {n} (engine run --workers {nodes}) on a private redis-server"
        + (
            ", anti-fraud on (viewers' X-Forwarded-For trusted)"
            if antifraud
            else ", anti-fraud off"
        ),
        ws=[(HOST, sut.ws_port, "/v1/ws")],
        http_url=f"http://{HOST}:{sut.http_port}",
        redis_url=redis_url,
        keys={kid: secret.encode()},
        metrics_urls=[f"http://{HOST}:{sut.http_port + i}" for i in range(nodes)],
        nodes=[sut],
        redis=sut.redis,
    )


class CpuMeter:
    """CPU used since the last reading, in % of one core: per named process, our total, and
    everything else on the machine (busy time minus ours)."""

    def __init__(self, procs: dict[str, Proc], clients_cpu: Callable[[], float]) -> None:
        self.procs, self.clients_cpu = procs, clients_cpu
        self.last = self._read()

    def _read(self) -> tuple[float, float, dict[str, float], float]:
        m = psutil.cpu_times()
        busy = sum(m) - m.idle - getattr(m, "iowait", 0.0)
        ours: dict[str, float] = {}
        for name, proc in self.procs.items():
            try:
                ours[name] = proc.cpu_s()
            except psutil.Error:
                ours[name] = float("nan")
        return time.monotonic(), busy, ours, self.clients_cpu()

    def read(self) -> dict[str, float]:
        t0, busy0, ours0, cl0 = self.last
        self.last = now = self._read()
        t1, busy1, ours1, cl1 = now
        dt = max(1e-6, t1 - t0)
        out = {name: 100 * (ours1[name] - ours0[name]) / dt for name in ours1}
        out["clients"] = 100 * (cl1 - cl0) / dt
        mine = sum(v for v in out.values() if v == v)
        out["other"] = max(0.0, 100 * (busy1 - busy0) / dt - mine)
        return out


def wait_quiet(
    meter: CpuMeter, limit_s: float, max_pct: float, log: Callable[[str], None]
) -> float:
    """Wait (at most `limit_s`) until processes that are not ours use at most `max_pct` % of a
    core for 3 s in a row: the machine is shared and every figure is CPU-bound. Returns the last
    reading."""
    deadline = time.monotonic() + limit_s
    quiet_for, other = 0, 0.0
    meter.read()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        other = meter.read()["other"]
        quiet_for = quiet_for + 1 if other <= max_pct else 0
        if quiet_for >= 3:
            return other
    log(f"   other processes still use {other:.0f}% of a core; going on")
    return other
