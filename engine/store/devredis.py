"""A private `redis-server` for `make run`, embedding without a Redis URL, and the tests.

It listens on 127.0.0.1 on a free port, keeps its files under `data_dir`, and is stopped when
the context exits (including by cancellation).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
import trio

log = structlog.get_logger("engine.devredis")


class RedisServerMissing(RuntimeError):
    pass


def redis_server_path() -> str:
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if path is None:
        raise RedisServerMissing(
            "redis-server not found: install it (apt-get install -y redis-server) "
            "or set ENGINE_REDIS_URL to an existing Redis"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_args(port: int, data_dir: Path, *, persistent: bool) -> list[str]:
    args = [
        redis_server_path(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--logfile", str(data_dir / "redis.log"),
        "--daemonize", "no",
        "--protected-mode", "yes",
    ]  # fmt: skip
    if persistent:
        args += ["--appendonly", "yes", "--save", "60 1000"]
    else:
        args += ["--appendonly", "no", "--save", ""]
    return args


async def wait_ready(port: int, timeout_s: float = 10.0, proc: trio.Process | None = None) -> None:
    """Wait until redis-server answers PING; TooSlowError if it does not (or exited)."""
    with trio.fail_after(timeout_s):
        while True:
            if proc is not None and proc.poll() is not None:
                raise trio.TooSlowError(f"redis-server exited with {proc.returncode}")
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.02)
                continue
            async with stream:
                await stream.send_all(b"PING\r\n")
                reply = await stream.receive_some(64)
                if reply.startswith(b"+PONG"):
                    return
            await trio.sleep(0.05)  # e.g. -LOADING while it reads its append-only file


@asynccontextmanager
async def private_redis(data_dir: str | Path, *, persistent: bool = True) -> AsyncIterator[str]:
    """Start redis-server, yield its URL, stop it on exit."""
    folder = Path(data_dir).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):
        port = free_port()
        proc = await trio.lowlevel.open_process(
            server_args(port, folder, persistent=persistent),
            stdin=subprocess.DEVNULL,
            # its own session: a Ctrl-C meant for the engine must not kill Redis before the
            # engine has written its viewers' leaves; the engine stops it last
            start_new_session=True,
        )
        try:
            await wait_ready(port, proc=proc)
            break
        except trio.TooSlowError:
            await _stop(proc)  # e.g. the port was taken between free_port() and bind: retry
        except BaseException:
            await _stop(proc)
            raise
    else:
        raise RuntimeError(f"redis-server did not start; see {folder / 'redis.log'}")
    url = f"redis://127.0.0.1:{port}/0"
    log.info("private redis-server started", url=url, pid=proc.pid, dir=str(folder))
    try:
        yield url
    finally:
        await _stop(proc)
        log.info("private redis-server stopped", pid=proc.pid)


async def _stop(proc: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.terminate()
            with trio.move_on_after(5):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
