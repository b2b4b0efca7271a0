"""One viewer's WebSocket after the upgrade: its socket, its frame parser and its outbox.

Cost per connection is a reviewed number (see docs/benchmarks.md): the object uses slots, keeps
no handshake state, and has one reader task; a writer task exists only while the socket is
behind. Frames are written whole or the connection is broken: while an outbox exists every frame
goes through it, and only the single writer touches the socket.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import trio
from wsproto.connection import Connection as WsConnection
from wsproto.events import CloseConnection
from wsproto.utilities import LocalProtocolError

from engine.errors import CLOSE_CODE_FOR, CloseCode, ErrorCode
from engine.fanout.outbox import FrameKind, Outbox
from engine.identity import Identity
from engine.protocol.codec import Codec

if TYPE_CHECKING:
    from engine.antifraud.guard import Visitor
    from engine.fanout.room import Frame, LocalRoom
    from engine.gateway.gateway import Gateway

CLOSE_GRACE_S = 2.0  # how long a closing viewer has to answer our close frame
_CRITICAL = FrameKind.CRITICAL
_INF = float("inf")


class ViewerConnection:
    __slots__ = (
        "close_reason",
        "closing",
        "codec",
        "conn_id",
        "counted",
        "gateway",
        "identity",
        "joined_at",
        "last_seen",
        "outbox",
        "room",
        "scope",
        "sock",
        "strikes",
        "strikes_since",
        "visitor",
        "writer_active",
        "ws",
    )

    def __init__(
        self,
        gateway: Gateway,
        sock: socket.socket,
        ws: WsConnection,
        codec: Codec,
        identity: Identity,
        conn_id: str,
        scope: trio.CancelScope,
    ) -> None:
        self.gateway = gateway
        self.sock = sock
        self.ws = ws
        self.codec = codec
        self.identity = identity
        self.conn_id = conn_id
        self.scope = scope
        now = trio.current_time()
        self.last_seen = now
        self.joined_at = now
        self.room: LocalRoom | None = None
        # Born behind: frames that arrive while we join queue up behind the welcome frame.
        self.outbox: Outbox | None = Outbox(gateway.config.outbox_max_bytes)
        self.writer_active = False
        self.counted = False  # presence recorded in Redis: a leave must be recorded too
        self.closing = False
        self.close_reason = ""
        self.strikes = 0
        self.strikes_since = now
        self.visitor: Visitor | None = None  # the anti-fraud guard's view of it (if enabled)

    # --- writing -------------------------------------------------------------------------

    def deliver(self, frame: bytes, kind: FrameKind, key: str | None = None) -> None:
        # Hot path, once per connection per frame: a non-blocking write, never an await.
        if self.closing:
            return
        outbox = self.outbox
        if outbox is None:
            sent = self._write(frame)
            if sent is None or sent == len(frame):
                return
            outbox = self.outbox = Outbox(self.gateway.config.outbox_max_bytes)
            outbox.push_partial(frame, sent, trio.current_time())
            self._ensure_writer()
        else:
            if not outbox.push(frame, kind, key, trio.current_time()):
                self.close(ErrorCode.SLOW_CONSUMER, "too far behind")
            if outbox.dropped:
                self.gateway.stats.frames_dropped += outbox.dropped
                outbox.dropped = 0

    def deliver_all(self, frames: list[Frame], joined: bytes) -> None:
        """Several frames in one write (`joined`: their bytes end to end); what the socket does
        not take is queued frame by frame, so each keeps its drop policy."""
        if self.closing:
            return
        if self.outbox is not None:
            for frame, kind, key in frames:
                self.deliver(frame, kind, key)
            return
        sent = self._write(joined)
        if sent is None or sent == len(joined):
            return
        outbox = self.outbox = Outbox(self.gateway.config.outbox_max_bytes)
        now = trio.current_time()
        started = False
        for frame, kind, key in frames:
            if not started:
                if sent >= len(frame):  # went out whole
                    sent -= len(frame)
                    continue
                started = True
                if sent:
                    outbox.push_partial(frame, sent, now)
                    continue
            if not outbox.push(frame, kind, key, now):
                self.close(ErrorCode.SLOW_CONSUMER, "too far behind")
                break
        self._ensure_writer()

    def _write(self, data: bytes) -> int | None:
        """One non-blocking write while nothing is queued: bytes taken, or None when the
        socket failed (the connection is then broken)."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            self.broken("send failed")
            return None

    def send_now(self, frame: bytes) -> None:
        """A frame for this viewer alone (result, error, pong): never dropped."""
        if not self.closing:
            self._send_critical(frame)

    def _send_critical(self, frame: bytes) -> None:
        outbox = self.outbox
        if outbox is None:
            self.deliver(frame, _CRITICAL)
        elif not outbox.push(frame, _CRITICAL, None, trio.current_time()):
            self.close(ErrorCode.SLOW_CONSUMER, "too far behind")

    def forget_queued(self) -> None:
        """The join failed before the welcome: what the room sent meanwhile is not for it."""
        if self.outbox is not None and not self.writer_active:
            self.outbox = Outbox(self.gateway.config.outbox_max_bytes)

    def release(self, welcome: bytes) -> None:
        """Send the welcome frame ahead of everything queued while joining, then drain."""
        outbox = self.outbox
        if outbox is None:
            self.deliver(welcome, _CRITICAL)
        else:
            outbox.push_front(welcome, trio.current_time())
            self._ensure_writer()

    def _ensure_writer(self) -> None:
        if not self.writer_active:
            self.writer_active = True
            self.gateway.start_writer(self)

    async def drain(self) -> None:
        """The writer: runs while the socket is behind, until the outbox is empty."""
        outbox, sock = self.outbox, self.sock
        timeout = self.gateway.config.slow_consumer_timeout_s
        if outbox is None:
            self.writer_active = False
            return
        try:
            while True:
                try:
                    sent = sock.sendmsg(outbox.pending())
                except BlockingIOError:
                    sent = 0
                outbox.consumed(sent)
                if outbox.empty:
                    break
                with trio.move_on_at(_INF if self.closing else outbox.deadline(timeout)):
                    await trio.lowlevel.wait_writable(sock)
                    continue
                self.close(ErrorCode.SLOW_CONSUMER, "behind for too long")
        except (OSError, trio.ClosedResourceError):
            self.broken("write failed")
        finally:
            self.writer_active = False
            self.gateway.stats.frames_dropped += outbox.dropped
            outbox.dropped = 0
            if self.outbox is outbox and outbox.empty:
                self.outbox = None

    # --- closing -------------------------------------------------------------------------

    def close(self, code: ErrorCode, reason: str = "") -> None:
        """Start a server-side close: our close frame goes out after what is queued, and the
        reader ends when the viewer answers or the grace period is over."""
        if self.closing:
            return
        if code is ErrorCode.SLOW_CONSUMER:
            self.gateway.stats.slow_consumer_closes += 1
            if self.outbox is not None:
                self.outbox.clear_droppable()
        self.gateway.metrics.closes.labels(code.value).inc()
        text = f"{code.value}: {reason}" if reason else code.value
        self.send_close(CLOSE_CODE_FOR.get(code, CloseCode.NORMAL), text, code.value)

    def close_normally(self, why: str) -> None:
        """The viewer said goodbye (a `leave` message, or its own close frame to answer)."""
        if not self.closing:
            self.send_close(CloseCode.NORMAL, "bye", why)

    def send_close(self, code: int, text: str, why: str) -> None:
        """Queue our close frame (`text` is clipped to fit) and give the viewer the grace."""
        try:
            frame = self.ws.send(CloseConnection(int(code), clip_reason(text)))
        except LocalProtocolError:
            frame = b""  # wsproto already sent or received the last close
        if frame:
            outbox = self.outbox
            if outbox is None:
                self.deliver(frame, _CRITICAL)
            else:
                outbox.push_forced(frame, trio.current_time())
                self._ensure_writer()
        self.closing, self.close_reason = True, why
        self.scope.deadline = min(self.scope.deadline, trio.current_time() + CLOSE_GRACE_S)

    def broken(self, why: str) -> None:
        """The socket failed: stop at once, nothing more can be written."""
        if not self.closing:
            self.closing, self.close_reason = True, why
        self.scope.cancel()


def clip_reason(text: str, max_bytes: int = 120) -> str:
    """A close reason must fit in a control frame (123 bytes of UTF-8)."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")
