"""Test helpers: a private redis-server per session, engine configs, and a viewer client."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack
import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from engine.config import Config
from engine.store.devredis import free_port, server_args

SECRET_A = "a" * 40
SECRET_B = "b" * 40
TOKEN_KEYS = f"test-a:{SECRET_A},test-b:{SECRET_B}"
KEYS = {"test-a": SECRET_A.encode(), "test-b": SECRET_B.encode()}


class RedisProcess:
    """A redis-server on a free port, no persistence unless asked, files in a temp dir."""

    def __init__(self, *, persistent: bool = False, extra: tuple[str, ...] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="engine-test-redis-"))
        self.persistent = persistent
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start_on_same_port(self) -> str:
        """Start again on the port it had (a restart as clients see it)."""
        args = [*server_args(self.port, self.dir, persistent=self.persistent), *self.extra]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        if not self._wait_ready():
            raise RuntimeError("redis-server did not restart")
        return self.url

    def start(self) -> str:
        for _ in range(5):
            self.port = free_port()
            args = [*server_args(self.port, self.dir, persistent=self.persistent), *self.extra]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
            if self._wait_ready():
                return self.url
            self.stop()
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _wait_ready(self) -> bool:
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def kill(self) -> None:
        """Like a crash: SIGKILL, nothing saved beyond what the append-only file already has."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


NO_LIMITS = {f"limit_{action}": "off"
             for action in ("join", "danmaku", "like", "grab", "coupon", "lottery")}  # fmt: skip


def engine_config(redis_url: str, tmp: Path | str = "/tmp", **overrides: Any) -> Config:
    settings: dict[str, Any] = {
        "redis_url": redis_url,
        "host": "127.0.0.1",
        "ws_port": 0,
        "http_port": 0,
        "token_keys": TOKEN_KEYS,
        "chat_tick_ms": 20,
        "data_dir": str(tmp),
        "room_linger_s": 0.5,
        "presence_refresh_s": 0.2,
        "presence_grace_s": 1.0,
        "log_level": "warning",
        **NO_LIMITS,  # anti-fraud on, its rate limits off: tests send faster than people do
    }
    settings.update(overrides)
    return Config(**settings)


class Viewer:
    """A WebSocket viewer speaking the engine protocol in one codec."""

    def __init__(self, ws: WebSocketConnection, codec: str) -> None:
        self.ws = ws
        self.codec = codec
        self.seen: list[dict[str, Any]] = []
        self.epoch = ""
        self.last_seq = 0  # the position to resume from, as a client keeps it

    async def send(self, **message: Any) -> None:
        await self.send_raw(self.encode(message))

    def encode(self, message: Any) -> str | bytes:
        if self.codec == "msgpack":
            return msgpack.packb(message)  # type: ignore[no-any-return]
        return orjson.dumps(message).decode()

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send_message(data)

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        with trio.fail_after(timeout):
            data = await self.ws.get_message()
        message = msgpack.unpackb(data) if self.codec == "msgpack" else orjson.loads(data)
        self.seen.append(message)
        if message.get("type") in ("welcome", "resync"):
            self.epoch = message["epoch"]
        if "seq" in message:
            self.last_seq = message["seq"]
        return message  # type: ignore[no-any-return]

    async def recv_type(self, kind: str, timeout: float = 5, **match: Any) -> dict[str, Any]:
        """The next message of type `kind` (whose fields equal `match`), skipping others."""
        with trio.fail_after(timeout):
            while True:
                message = await self.recv(timeout=timeout)
                if message.get("type") == kind and all(
                    message.get(k) == v for k, v in match.items()
                ):
                    return message

    async def answer(self, rid: Any, timeout: float = 5) -> dict[str, Any]:
        """The `result` or `error` answering `rid`, whether it came already (answers need not
        come in the order of the requests: a danmaku is answered once its batch is published,
        a refusal at once) or is still to come."""
        for message in self.seen:
            if message.get("type") in ("result", "error") and message.get("rid") == rid:
                return message
        with trio.fail_after(timeout):
            while True:
                message = await self.recv(timeout=timeout)
                if message.get("type") in ("result", "error") and message.get("rid") == rid:
                    return message

    async def chat_texts(self, count: int, timeout: float = 5) -> list[str]:
        """Texts of the next `count` chat items, across chat frames."""
        texts: list[str] = []
        with trio.fail_after(timeout):
            while len(texts) < count:
                message = await self.recv_type("chat", timeout=timeout)
                texts += [m["text"] for m in message["msgs"]]
        return texts

    async def closed(self, timeout: float = 5) -> tuple[int, str]:
        """Read until the server closes; its (code, reason)."""
        with trio.fail_after(timeout):
            try:
                while True:
                    await self.recv(timeout=timeout)
            except ConnectionClosed as exc:
                return exc.reason.code, exc.reason.reason or ""


@asynccontextmanager
async def viewer(
    ws_url: str,
    token: str | None,
    *,
    codec: str = "json",
    room: str | None = None,
    welcome: bool = True,
    since: int | None = None,
    epoch: str | None = None,
) -> AsyncIterator[Viewer]:
    query = []
    if token is not None:
        query.append(f"token={token}")
    if room is not None:
        query.append(f"room={room}")
    if since is not None:
        query.append(f"since={since}")
    if epoch is not None:
        query.append(f"epoch={epoch}")
    url = ws_url + ("?" + "&".join(query) if query else "")
    async with open_websocket_url(url, subprotocols=[codec]) as ws:
        v = Viewer(ws, codec)
        if welcome:
            first = await v.recv()
            assert first["type"] == "welcome", first
            v.welcome = first  # type: ignore[attr-defined]
        yield v


class RawClient:
    """A WebSocket client with nothing automatic: it answers no pings and reads only when told
    (for heartbeat and slow-consumer tests). wsproto does the framing."""

    def __init__(self, stream: trio.SocketStream) -> None:
        from wsproto import WSConnection
        from wsproto.connection import ConnectionType

        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: list[Any] = []

    @classmethod
    async def connect(cls, port: int, target: str, *, rcvbuf: int | None = None) -> RawClient:
        import socket as _socket

        from wsproto.events import AcceptConnection, Request

        sock = trio.socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, rcvbuf)
        await sock.connect(("127.0.0.1", port))
        client = cls(trio.SocketStream(sock))
        await client.stream.send_all(
            client.ws.send(Request(host="127.0.0.1", target=target, subprotocols=["json"]))
        )
        while not any(isinstance(e, AcceptConnection) for e in client.events):
            await client.read_some()
        return client

    async def read_some(self) -> bool:
        data = await self.stream.receive_some(65536)
        self.ws.receive_data(data or None)
        self.events.extend(self.ws.events())
        return bool(data)

    async def send_bytes(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_text(self, text: str) -> None:
        from wsproto.events import TextMessage

        await self.stream.send_all(self.ws.send(TextMessage(data=text)))

    async def close_code(self, timeout: float = 10) -> int | None:
        """Read until the server's close frame; its code (None if the socket just ended)."""
        from wsproto.events import CloseConnection

        with trio.fail_after(timeout):
            while True:
                for e in self.events:
                    if isinstance(e, CloseConnection):
                        return int(e.code)
                try:
                    if not await self.read_some():
                        return None
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return None
