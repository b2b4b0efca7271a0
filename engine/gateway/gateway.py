"""The viewer gateway: accepts sockets, upgrades them, verifies the token, joins the room, reads
client frames, and keeps connections honest with heartbeats.

I/O is raw non-blocking sockets driven by trio's `wait_readable`/`wait_writable`, wsproto for the
WebSocket protocol. Each connection has one task (this module's `_serve_connection`); writes are
synchronous from the fan-out loop, with a writer task only while a socket is behind.
"""

from __future__ import annotations

import errno
import itertools
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    TextMessage,
)

from engine.antifraud.guard import AntiFraud
from engine.config import Config
from engine.errors import (
    CLOSE_CODE_FOR,
    AuthError,
    ErrorCode,
    ProtocolError,
    RateLimited,
    StoreUnavailable,
)
from engine.fanout.outbox import FrameKind
from engine.fanout.rooms import RoomRegistry
from engine.gateway.connection import CLOSE_GRACE_S, ViewerConnection, clip_reason
from engine.gateway.dispatch import Dispatcher
from engine.gateway.handshake import (
    VIEWER_PATHS,
    HandshakeFailed,
    UpgradeParams,
    read_request,
    reject,
    send_all,
    upgrade_params,
)
from engine.gateway.readiness import ReadinessHub
from engine.identity import Identity, TokenVerifier
from engine.metrics import Metrics
from engine.presence import Presence
from engine.protocol import server
from engine.protocol.client import Limits, decode_client_message
from engine.protocol.wsframe import PING_FRAME, count_frames, encode_frame
from engine.stats import NodeStats
from engine.store.store import Store

log = structlog.get_logger("engine.gateway")

Admission = Callable[[Identity], Awaitable[None]]  # raises AuthError to refuse
RECV_BYTES = 65536
ACCEPT_BATCH = 256
NO_JOIN_LIMIT = 1 << 30  # max_concurrent_joins 0
_INF = float("inf")


def listen_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """The viewer port; with `reuse_port`, several node processes share it (SO_REUSEPORT)."""
    sock = socket.create_server((host, port), backlog=4096, reuse_port=reuse_port)
    sock.setblocking(False)
    return sock


class Gateway:
    def __init__(
        self,
        config: Config,
        *,
        node_id: str,
        verifier: TokenVerifier,
        rooms: RoomRegistry,
        store: Store,
        presence: Presence,
        dispatcher: Dispatcher,
        stats: NodeStats,
        metrics: Metrics,
        admission: Admission | None = None,
        guard: AntiFraud | None = None,
    ) -> None:
        self.config = config
        self.guard = guard  # anti-fraud: bans and join limits here, the rest in the handlers
        self.node_id = node_id
        self.verifier = verifier
        self.admission = admission  # may refuse a verified viewer (e.g. rehearsal: staff only)
        self.rooms = rooms
        self.store = store
        self.presence = presence
        self.dispatcher = dispatcher
        self.stats = stats
        self.metrics = metrics
        self.limits = Limits(
            max_message_bytes=config.max_message_bytes,
            max_text_chars=config.max_danmaku_chars,
            max_likes=config.max_likes_per_message,
        )
        self.connections: dict[ViewerConnection, None] = {}
        self._conn_ids = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self._accepting = trio.CancelScope()
        self.reads: ReadinessHub | None = None  # set while serving (read_wakeups_per_pass > 0)
        # Why a bound: thousands of handshakes at once make Trio passes of thousands of tasks,
        # and a join's Redis reply waits a whole pass per step (5 s timeouts in a storm).
        self._join_slots = trio.Semaphore(config.max_concurrent_joins or NO_JOIN_LIMIT)

    # --- serving -------------------------------------------------------------------------

    async def serve(
        self,
        sock: socket.socket | None = None,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept viewers until cancelled (or until `drain`); `started(port)` once listening."""
        lsock = sock or listen_socket(
            self.config.host, self.config.ws_port, reuse_port=self.config.reuse_port
        )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.config.read_wakeups_per_pass > 0:
                    self.reads = ReadinessHub(self.config.read_wakeups_per_pass)
                    await nursery.start(self.reads.run)
                nursery.start_soon(self._heartbeat_loop)
                task_status.started(lsock.getsockname()[1])
                with self._accepting:
                    await self._accept_loop(lsock, nursery)
                trio.lowlevel.notify_closing(lsock)
                lsock.close()  # with SO_REUSEPORT the kernel now sends newcomers to other nodes
                await trio.sleep_forever()  # the connections we have go on until cancelled
        finally:
            lsock.close()

    def reads_waiting(self) -> int:
        return 0 if self.reads is None else self.reads.waiting

    def joins_waiting(self) -> int:
        return self._join_slots.statistics().tasks_waiting

    async def drain(self, timeout_s: float) -> None:
        """Stop accepting, ask every viewer to reconnect (to another node: it resumes there),
        and wait up to `timeout_s` for them to go."""
        self._accepting.cancel()
        for conn in list(self.connections):
            conn.close(ErrorCode.SHUTTING_DOWN, "reconnect")
        with trio.move_on_after(timeout_s):
            while self.connections:
                await trio.sleep(0.05)

    async def _accept_loop(self, lsock: socket.socket, nursery: trio.Nursery) -> None:
        while True:
            await trio.lowlevel.wait_readable(lsock)
            for _ in range(ACCEPT_BATCH):
                try:
                    sock, addr = lsock.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        log.error("accept failed: out of resources", error=str(exc))
                        await trio.sleep(0.1)
                        break
                    raise
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.config.socket_send_buffer:
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.socket_send_buffer
                    )
                nursery.start_soon(self._serve_connection, sock, addr)

    def close_viewers(self, room: str, code: ErrorCode, reason: str) -> int:
        """Close this node's non-staff viewers of `room` (rehearsal); how many."""
        closing = [c for c in self.connections
                   if c.identity.room == room and not c.identity.role.is_staff]  # fmt: skip
        for conn in closing:
            conn.close(code, reason)
        return len(closing)

    def close_user(self, room: str | None, user: str, reason: str) -> int:
        """Close this node's connections of `user` in `room` (None: in every room) with
        `banned`; how many."""
        closing = [c for c in self.connections if c.identity.user == user
                   and (room is None or c.identity.room == room)]  # fmt: skip
        for conn in closing:
            conn.close(ErrorCode.BANNED, reason or "banned")
        return len(closing)

    def start_writer(self, conn: ViewerConnection) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(conn.drain)

    # --- one connection ------------------------------------------------------------------

    async def _serve_connection(self, sock: socket.socket, addr: Any) -> None:
        conn: ViewerConnection | None = None
        welcomed = False
        slots = self._join_slots
        holding = False
        try:  # the wait for a slot too: a cancel there must still close the socket
            await slots.acquire()
            holding = True
            with trio.CancelScope(
                deadline=trio.current_time() + self.config.handshake_timeout_s
            ) as scope:
                upgraded = await self._upgrade(sock, addr, scope)
                if upgraded is not None:
                    conn, params = upgraded
                    scope.deadline = _INF
                    structlog.contextvars.bind_contextvars(
                        conn=conn.conn_id, room=conn.identity.room, user=conn.identity.user
                    )
                    await self._join(conn, params.since, params.epoch)
                    welcomed = True
                    slots.release()
                    holding = False
                    await self._read_loop(conn)
        except HandshakeFailed as exc:
            log.debug("handshake failed", peer=str(addr), error=str(exc))
        except StoreUnavailable as exc:
            log.warning("redis unavailable while serving a viewer", error=str(exc))
            if conn is not None:
                if not welcomed:  # room frames queued during the join: it never joined
                    conn.forget_queued()
                conn.close(ErrorCode.UNAVAILABLE, "try again")
        except Exception:  # a bug serving one viewer closes that viewer, never the node
            log.exception("viewer connection failed")
            if conn is not None:
                if not welcomed:
                    conn.forget_queued()
                conn.close(ErrorCode.INTERNAL, "internal error")
        finally:
            if holding:
                slots.release()
            if conn is not None:
                await self._cleanup(conn)
            if self.reads is not None:
                self.reads.forget(sock)
            trio.lowlevel.notify_closing(sock)
            sock.close()

    async def _upgrade(
        self, sock: socket.socket, addr: Any, scope: trio.CancelScope
    ) -> tuple[ViewerConnection, UpgradeParams] | None:
        handshake, request = await read_request(sock)
        params = upgrade_params(request)
        if params.path not in VIEWER_PATHS:
            await reject(sock, handshake, 404)
            return None
        accept = handshake.send(AcceptConnection(subprotocol=params.subprotocol))
        ws = handshake.connection
        assert ws is not None
        await send_all(sock, accept)
        visitor = None
        try:
            identity = self.verifier.verify(params.token, params.room)
            if self.admission is not None:
                await self.admission(identity)
            if self.guard is not None:  # last: nothing after it may refuse (it counts visitors)
                peer = str(addr[0]) if isinstance(addr, tuple) else str(addr)
                ip = self.guard.client_ip(peer, params.forwarded_for)
                structlog.contextvars.bind_contextvars(ip=ip)
                visitor = await self.guard.admit(identity, ip)
        except AuthError as exc:
            self.metrics.connections_refused.labels(exc.code.value).inc()
            log.info("viewer refused", code=exc.code.value, reason=exc.message, peer=str(addr))
            reason = clip_reason(f"{exc.code.value}: {exc.message}")
            frame = ws.send(CloseConnection(int(CLOSE_CODE_FOR[exc.code]), reason))
            await send_all(sock, frame)
            await _await_close_reply(sock, ws)
            return None
        conn_id = f"{self.node_id}.{next(self._conn_ids):x}"
        conn = ViewerConnection(self, sock, ws, params.codec, identity, conn_id, scope)
        conn.visitor = visitor
        return conn, params

    async def _join(self, conn: ViewerConnection, since: int | None, epoch: str | None) -> None:
        identity = conn.identity
        joined = await self.rooms.join(identity.room, conn, since=since, epoch=epoch)
        room = conn.room = joined.room
        self.connections[conn] = None
        self.stats.connections += 1
        online = await self.presence.join(
            room.id,
            identity.user,
            {"conn": conn.conn_id, "node": self.node_id, "device": identity.device,
             "role": identity.role.value},
        )  # fmt: skip
        conn.counted = True
        conn.joined_at = trio.current_time()
        _, state = await self.store.snapshot(room.id)
        welcome = server.welcome(
            room=room.id,
            user=identity.user,
            role=identity.role.value,
            conn=conn.conn_id,
            node=self.node_id,
            snapshot=self.rooms.snapshot_of(room, online, state),
            epoch=joined.epoch,
            seq=joined.position,
            recovery=joined.recovery,
            reason=joined.reason,
            heartbeat_s=self.config.heartbeat_interval_s,
            limits={"max_message_bytes": self.limits.max_message_bytes,
                    "max_text_chars": self.limits.max_text_chars,
                    "max_likes": self.limits.max_likes},
        )  # fmt: skip
        frames = encode_frame(conn.codec, welcome) + (joined.replay or b"")
        conn.release(frames)
        self.stats.frames_sent += 1 + (count_frames(joined.replay) if joined.replay else 0)
        self.stats.bytes_sent += len(frames)
        log.info(
            "viewer joined", online=online, codec=conn.codec.name, role=identity.role.value,
            recovery=joined.recovery, since=since, seq=joined.position,
        )  # fmt: skip

    async def _read_loop(self, conn: ViewerConnection) -> None:
        sock, ws, limits = conn.sock, conn.ws, self.limits
        hard_limit = self.config.hard_message_bytes
        parts: list[str | bytes] = []
        size, oversize = 0, False
        reads = self.reads
        wait_readable = trio.lowlevel.wait_readable if reads is None else reads.wait_readable
        while True:
            await wait_readable(sock)
            try:
                data = sock.recv(RECV_BYTES)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                return
            if len(data) == RECV_BYTES and reads is not None:
                reads.more(sock)
            conn.last_seen = trio.current_time()
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    chunk: str | bytes = (
                        event.data if isinstance(event.data, str) else bytes(event.data)
                    )
                    size += len(chunk.encode()) if isinstance(chunk, str) else len(chunk)
                    if size > hard_limit:
                        conn.close(ErrorCode.TOO_LARGE, f"message over {hard_limit} bytes")
                        return
                    if size > limits.max_message_bytes:
                        oversize = True
                        parts.clear()
                    else:
                        parts.append(chunk)
                    if not event.message_finished:
                        continue
                    if oversize:
                        self._client_error(
                            conn,
                            ProtocolError(
                                f"message over {limits.max_message_bytes} bytes",
                                code=ErrorCode.TOO_LARGE,
                            ),
                        )
                    elif not conn.closing:
                        body = parts[0] if len(parts) == 1 else _join(parts)
                        await self._on_message(conn, body)
                    parts, size, oversize = [], 0, False
                elif isinstance(event, Ping):
                    conn.send_now(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        conn.close_normally("client closed")
                    elif ws.state is not ConnectionState.CLOSED:  # a frame wsproto could not parse
                        self.metrics.client_errors.labels(ErrorCode.BAD_FRAME.value).inc()
                        conn.send_close(event.code, f"bad_frame: {event.reason}", "bad_frame")
                    return

    async def _on_message(self, conn: ViewerConnection, body: str | bytes) -> None:
        room = conn.room
        assert room is not None
        try:
            message = decode_client_message(conn.codec, body, self.limits)
        except ProtocolError as exc:
            self._client_error(conn, exc)
            return
        self.metrics.messages_in.labels(message.type).inc()
        try:
            await self.dispatcher.handle(conn, room, message)
        except ProtocolError as exc:
            exc.rid = message.rid
            self._client_error(conn, exc)
        except StoreUnavailable as exc:
            log.warning("redis unavailable", error=str(exc), rid=message.rid)
            conn.send_now(
                encode_frame(
                    conn.codec, server.error(ErrorCode.UNAVAILABLE, "try again", message.rid)
                )
            )

    def _client_error(self, conn: ViewerConnection, exc: ProtocolError) -> None:
        """Answer a bad message with its error code; close the connection if it keeps at it."""
        self.metrics.client_errors.labels(exc.code.value).inc()
        log.info("client error", code=exc.code.value, reason=exc.message, rid=exc.rid)
        retry = exc.retry_after_ms if isinstance(exc, RateLimited) else None
        frame = server.error(exc.code, exc.message, exc.rid, retry_after_ms=retry)
        conn.send_now(encode_frame(conn.codec, frame))
        now = trio.current_time()
        if now - conn.strikes_since > self.config.abuse_window_s:
            conn.strikes, conn.strikes_since = 0, now
        conn.strikes += 1
        if conn.strikes > self.config.abuse_strikes:
            conn.close(ErrorCode.ABUSE, "too many bad messages")

    async def _cleanup(self, conn: ViewerConnection) -> None:
        """Leave the room at once; flush a pending close frame briefly; record the leave."""
        room = conn.room
        if room is not None:
            self.rooms.leave(room, conn)
        if conn.visitor is not None and self.guard is not None:
            self.guard.left(conn.visitor)
            conn.visitor = None
        if self.connections.pop(conn, 0) is None:
            self.stats.connections -= 1
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLOSE_GRACE_S):
                while conn.outbox is not None and not conn.outbox.empty and conn.closing:
                    await trio.sleep(0.01)
            if room is not None and conn.counted:
                watch_ms = int((trio.current_time() - conn.joined_at) * 1000)
                reason = conn.close_reason or "disconnected"
                if self.presence.leave(room.id, conn.identity.user):
                    with trio.move_on_after(2):  # the person's last connection on this node
                        try:
                            await self.presence.gone_from_node(room.id, conn.identity.user)
                        except StoreUnavailable as exc:
                            log.warning("presence not updated on leave", error=str(exc))
                log.info("connection left", watch_ms=watch_ms, reason=reason)

    # --- heartbeats ----------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval, timeout = self.config.heartbeat_interval_s, self.config.heartbeat_timeout_s
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            for conn in list(self.connections):
                if now - conn.last_seen > timeout:
                    conn.close(ErrorCode.HEARTBEAT_TIMEOUT, f"silent for {timeout:g}s")
                else:
                    conn.deliver(PING_FRAME, FrameKind.COUNTER, "ping")


def _join(parts: list[str | bytes]) -> str | bytes:
    if isinstance(parts[0], str):
        return "".join(parts)  # type: ignore[arg-type]
    return b"".join(parts)  # type: ignore[arg-type]


async def _await_close_reply(sock: socket.socket, ws: Any) -> None:
    """After closing a refused viewer, read until its close reply (or a short timeout) so the
    close code reaches it instead of being lost to a connection reset."""
    with trio.move_on_after(1.0):
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, CloseConnection):
                    return
