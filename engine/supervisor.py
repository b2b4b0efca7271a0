"""`engine run --workers N`: N node processes on one machine sharing the viewer port.

Each worker is a whole engine node (one process, one Trio loop) that binds the viewer port with
SO_REUSEPORT, so the kernel spreads new connections over them; their HTTP sides listen on
consecutive ports (metrics per process). The supervisor starts a private redis-server first when
no Redis URL is given, restarts a worker that dies (with backoff), and on SIGTERM/SIGINT asks
every worker to drain (their viewers reconnect and resume on the others, or on the restarted
node), then stops Redis.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TextIO

import structlog
import trio

from engine.config import Config
from engine.devkeys import resolve_keys
from engine.store.devredis import free_port, private_redis

log = structlog.get_logger("engine.supervisor")

RESTART_BACKOFF_START_S = 0.5
RESTART_BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 30.0  # a worker that ran this long starts its next backoff from the start
STOP_TIMEOUT_S = 15.0


def worker_count(config: Config) -> int:
    """Node processes `engine run` starts: `workers`, or one per core when it is 0 (the
    default)."""
    return config.workers if config.workers > 0 else max(1, os.cpu_count() or 1)


def worker_overrides(config: Config, redis_url: str, index: int) -> list[str]:
    """Flags appended to a worker's command line (the last occurrence of a flag wins)."""
    http_port = config.http_port + index if config.http_port else 0
    return ["--workers", "1", "--reuse-port", "--redis-url", redis_url,
            "--ws-port", str(config.ws_port), "--http-port", str(http_port)]  # fmt: skip


class Supervisor:
    def __init__(self, config: Config, argv: list[str], out: TextIO) -> None:
        self.config = config
        self.count = worker_count(config)
        self.argv = argv  # the worker command line (the same `engine run` flags)
        self.out = out
        self.stopping = False
        self.workers: dict[int, trio.Process] = {}
        self.restarts = 0

    async def run(self) -> None:
        if self.config.ws_port == 0:  # one free port for all: each worker would pick its own
            self.config = self.config.replace(ws_port=free_port())
        config = self.config
        if config.dev:
            resolve_keys(config)  # create the dev key once, before the workers read it
        async with (
            private_redis(f"{config.data_dir}/redis")
            if not config.redis_url
            else _given(config.redis_url) as redis_url
        ):
            self.out.write(self._banner(redis_url))
            self.out.flush()
            async with trio.open_nursery() as nursery:
                for index in range(self.count):
                    nursery.start_soon(self._keep_running, index, redis_url)
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        log.info("stopping workers", signal=signal.Signals(signum).name)
                        await self._stop_all()
                        nursery.cancel_scope.cancel()
                        break

    async def _keep_running(self, index: int, redis_url: str) -> None:
        backoff = RESTART_BACKOFF_START_S
        while not self.stopping:
            started = trio.current_time()
            proc = await trio.lowlevel.open_process(
                [*self.argv, *worker_overrides(self.config, redis_url, index)],
                start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only
            )
            self.workers[index] = proc
            log.info("worker started", worker=index, pid=proc.pid)
            try:
                code = await proc.wait()
            finally:
                self.workers.pop(index, None)
            if self.stopping:
                return
            self.restarts += 1
            if trio.current_time() - started > HEALTHY_AFTER_S:
                backoff = RESTART_BACKOFF_START_S
            log.error("worker died, restarting", worker=index, pid=proc.pid, code=code,
                      in_s=backoff)  # fmt: skip
            await trio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX_S)

    async def _stop_all(self) -> None:
        """SIGTERM every worker (each drains its viewers), then wait; kill what lingers."""
        self.stopping = True
        procs = list(self.workers.values())
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        with trio.CancelScope(shield=True):
            with trio.move_on_after(STOP_TIMEOUT_S):
                for proc in procs:
                    await proc.wait()
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    def _banner(self, redis_url: str) -> str:
        c = self.config
        host = c.host if c.host not in ("0.0.0.0", "::") else "127.0.0.1"
        http = (
            ", ".join(f"http://{host}:{c.http_port + i}/metrics" for i in range(self.count))
            if c.http_port
            else "(free ports, see the workers' logs)"
        )
        lines = [
            f"engine: {self.count} worker processes sharing one viewer port",
            f"  viewer WebSocket: ws://{host}:{c.ws_port}/v1/ws?token=<JWT>",
            f"  metrics:          {http}",
            f"  redis:            {redis_url}",
        ]
        if c.dev:
            lines.append(
                "  dev token:        .venv/bin/engine token --dev --user alice --room demo"
            )
        text = "\n".join(lines) + "\n"
        if c.demo_pages and c.http_port:  # any worker serves the pages: show the first
            from engine.web import demo_banner

            text += demo_banner(f"http://{host}:{c.http_port}", dev=c.dev)
        return text


class _given:
    """An async context manager yielding an already known Redis URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> str:
        return self.url

    async def __aexit__(self, *exc: object) -> None:
        return None


def worker_argv() -> list[str]:
    """The command that runs one worker: this process's own command line, as the interpreter
    got it (`engine run ...`, `python -m engine.cli run ...`, or a launcher that runs another
    checkout's engine: the workers run the same code), the supervisor appending each worker's
    flags."""
    return [sys.executable, *sys.orig_argv[1:]]
