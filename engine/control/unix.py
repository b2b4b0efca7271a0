"""The operators' Unix socket: JSON-RPC 2.0 (`jsonrpc.py`), one request per line, one answer per
line. It is trusted local access: whoever can open the socket may call every command on every
room, with no token. The file is created with mode 0600 (before the socket listens), so only the
engine's own user (and root) can open it; peers with another uid are refused as well.

The path is `control_socket` (default `<data_dir>/control.sock`). A node finding the path served
by another live node (several nodes sharing a data_dir) leaves it to that node: commands act on
Redis, so any node will do. A stale file from a crashed node is replaced.
"""

from __future__ import annotations

import os
import socket
import struct
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import structlog
import trio

from engine.control import jsonrpc
from engine.control.registry import OPERATOR
from engine.errors import ErrorCode

if TYPE_CHECKING:
    from engine.control.plane import ControlPlane

log = structlog.get_logger("engine.control.unix")

MAX_LINE_BYTES: Final = 1 << 20
MAX_PATH_BYTES: Final = 100  # sun_path holds 108 bytes on Linux


async def _served_by_someone(path: Path) -> bool:
    try:
        stream = await trio.open_unix_socket(str(path))
    except OSError:
        return False
    await stream.aclose()
    return True


def peer_uid(sock: Any) -> int | None:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


async def serve_unix(
    plane: ControlPlane,
    path: str,
    *,
    task_status: trio.TaskStatus[str | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; `started(path)`, or `started(None)` when this node does not serve
    the socket (path too long, or another node has it)."""
    where = Path(path).absolute()
    if len(os.fsencode(where)) > MAX_PATH_BYTES:
        log.warning("control socket path too long; no Unix socket", path=str(where))
        task_status.started(None)
        return
    if where.exists():
        if await _served_by_someone(where):
            log.info("control socket served by another node", path=str(where))
            task_status.started(None)
            return
        where.unlink()
    where.parent.mkdir(parents=True, exist_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(str(where))
    except OSError as exc:
        sock.close()
        log.warning("control socket not bound", path=str(where), error=str(exc))
        task_status.started(None)
        return
    os.chmod(where, 0o600)  # before listen(): nobody can connect while it is still open to all
    inode = where.stat().st_ino
    sock.listen(64)
    listener = trio.SocketListener(sock)
    log.info("control socket listening", path=str(where))
    try:
        async with listener:
            task_status.started(str(where))
            await trio.serve_listeners(partial(_serve_peer, plane), [listener])
    finally:
        try:
            if where.stat().st_ino == inode:
                where.unlink()
        except OSError:
            pass


async def _serve_peer(plane: ControlPlane, stream: trio.SocketStream) -> None:
    async def call(method: str, params: Any) -> Any:
        return await plane.call(OPERATOR, method, params, transport="unix")

    uid = peer_uid(stream.socket)
    if uid is not None and uid not in (os.getuid(), 0):
        log.warning("control socket peer with another uid refused", uid=uid)
        await stream.aclose()
        return
    buffer = bytearray()
    try:
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    if line.strip():
                        answer = await jsonrpc.handle(line, call)
                        if answer is not None:
                            await stream.send_all(answer + b"\n")
                if len(buffer) > MAX_LINE_BYTES:
                    error = jsonrpc.error_object(ErrorCode.TOO_LARGE, "request line too long")
                    await stream.send_all(_line(jsonrpc.response(None, error=error)))
                    return
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


def _line(payload: Any) -> bytes:
    return orjson.dumps(payload) + b"\n"
