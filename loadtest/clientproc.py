"""Load-client processes: one `select.epoll` loop over many raw non-blocking sockets, driven by
commands from the benchmark over a pipe (no asyncio or trio on the hot path).

* `ViewerLoop`: viewers. Each read is counted (`wsclient.walk` + `count_marker`); probe sockets
  also decode their chat frames to measure send-to-deliver latency from the timestamp the
  publisher put in each danmaku text. Two epoll sets: the fast one (control pipe, probes,
  sockets still upgrading) is served at once; the slow one (every other viewer) is read once per
  `pace` seconds, so each read picks up several frames and the client stays cheap, while probes
  keep measuring without that delay (a slow round stops every 256 sockets to serve the fast set).
  The server's work is the same either way: the kernel buffers what a viewer has not read yet.
* `PublisherLoop`: sender connections plus the "tail" viewer (connected last, so it is the last
  one served by a fan-out loop that goes in connection order). Two modes: a closed loop that
  keeps at most `window` messages in flight (in flight = sent and not yet seen by the tail), and
  an open loop at a fixed total rate spread round-robin over the senders.

Danmaku text: "<seq:08d> <time.time():.6f> bench-danmaku".
"""

from __future__ import annotations

import errno
import math
import os
import select
import signal
import socket
import struct
import time
from array import array
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

import orjson

from loadtest.wsclient import (
    MARKER,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Conn,
    HandshakeError,
    check_upgrade_response,
    count_marker,
    masked_frame,
    upgrade_request,
    walk,
)

RECV_BYTES = 262144
MAX_EVENTS = 65536  # epoll.poll() returns at most 1023 events unless told otherwise
SLOW_SLICE = 256  # slow-set sockets read between two looks at the fast set
SLICE_S = 0.02  # how often a share of the slow set is read when paced
IN, OUT = select.EPOLLIN, select.EPOLLOUT
_CHAT_PREFIX = b'{"type":"chat"'
_WELCOME_PREFIX = b'{"type":"welcome"'


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class ConnectBatch:
    """Sockets of one `connect` command: `(path, probe)` items opened in order, at most
    `concurrency` upgrades in flight at once, and with `spread_s` evenly spread over that many
    seconds (a reconnect storm)."""

    def __init__(
        self,
        tag: str,
        host: str,
        port: int,
        items: list[tuple[str, bool]],
        conc: int,
        spread_s: float = 0.0,
    ):
        self.tag, self.host, self.port = tag, host, port
        self.todo: deque[tuple[str, bool]] = deque(items)
        self.total, self.concurrency = len(items), conc
        self.in_flight, self.ok, self.failed = 0, 0, 0
        self.errors: list[str] = []
        self.started = time.monotonic()
        self.spread_s = spread_s

    def due(self) -> bool:
        """Whether the next socket may be opened now (always, unless spread)."""
        if self.spread_s <= 0:
            return True
        opened = self.total - len(self.todo)
        return opened < self.total * (time.monotonic() - self.started) / self.spread_s

    @property
    def done(self) -> bool:
        return self.ok + self.failed == self.total


class ViewerLoop:
    def __init__(self, ctl: Connection) -> None:
        self.ctl = ctl
        self.ep = select.epoll()  # fast set
        self.ep.register(ctl.fileno(), IN)
        self.slow = select.epoll()  # paced set: ready non-probe viewers
        self.ep.register(self.slow.fileno(), IN)  # while pace == 0: served like the fast set
        self.next_slow = 0.0
        self.n_slow = 0  # sockets in the slow set
        self.conns: dict[int, Conn] = {}
        self.groups: dict[str, list[Conn]] = {}
        self.joining: dict[int, ConnectBatch] = {}  # fd -> its batch, until ready or failed
        self.batch: ConnectBatch | None = None
        self.pace = 0.0
        self.bytes = 0
        self.server_closed = 0
        self.pongs = 0
        self.running = True
        self.lat_t0 = self.lat_t1 = float("inf")
        self.lat = array("d")

    # --- loop ----------------------------------------------------------------------------

    def run(self) -> None:
        while self.running:
            timeout = self.poll_timeout()
            if self.pace:
                timeout = max(0.0, min(timeout, self.next_slow - time.monotonic()))
            self.serve_fast(self.ep.poll(timeout, MAX_EVENTS), in_slow_round=False)
            if self.pace and time.monotonic() >= self.next_slow:
                # A share of the slow set every SLICE_S, not all of it every `pace`: the same
                # reads, spread out, so the client never takes a core in one long burst.
                step = min(self.pace, SLICE_S)
                self.next_slow = time.monotonic() + step
                self.slow_round(max(1, math.ceil(self.n_slow * step / self.pace)))
            self.after_round()

    def serve_fast(self, events: list[tuple[int, int]], *, in_slow_round: bool) -> None:
        ctl, slow = self.ctl.fileno(), self.slow.fileno()
        for fd, ev in events:
            if fd == ctl:
                while self.running and self.ctl.poll():
                    self.command(self.ctl.recv())
            elif fd == slow:
                if not in_slow_round:
                    self.slow_round()
            else:
                conn = self.conns.get(fd)
                if conn is not None:
                    self.on_event(fd, conn, ev)

    def slow_round(self, quota: int = MAX_EVENTS) -> None:
        # Level-triggered epoll reports ready sockets in readiness order and requeues reported
        # ones at the back, so reading `quota` at a time goes round-robin over the ready ones.
        events = self.slow.poll(0, quota)
        for start in range(0, len(events), SLOW_SLICE):
            for fd, ev in events[start : start + SLOW_SLICE]:
                conn = self.conns.get(fd)
                if conn is not None:
                    self.on_event(fd, conn, ev)
            if start + SLOW_SLICE < len(events):
                self.serve_fast(self.ep.poll(0, MAX_EVENTS), in_slow_round=True)

    def set_pace(self, pace: float) -> None:
        if bool(pace) != bool(self.pace):
            if pace:
                self.ep.unregister(self.slow.fileno())
            else:
                self.ep.register(self.slow.fileno(), IN)
        self.pace, self.next_slow = pace, 0.0

    def epoll_of(self, conn: Conn) -> select.epoll:
        return self.slow if conn.ready and conn.parser is None else self.ep

    def watch(self, fd: int, conn: Conn, mask: int) -> None:
        self.epoll_of(conn).modify(fd, mask)

    def poll_timeout(self) -> float:
        if self.batch is not None and self.batch.spread_s > 0 and self.batch.todo:
            return 0.002
        return 0.05 if self.batch is not None else 1.0

    def after_round(self) -> None:
        batch = self.batch
        if batch is not None:
            self.start_connects(batch)
            if batch.done:
                self.batch = None
                elapsed = time.monotonic() - batch.started
                self.ctl.send(("connected", batch.tag, batch.ok, batch.failed,
                               batch.errors[:3], elapsed))  # fmt: skip

    # --- commands ------------------------------------------------------------------------

    def command(self, cmd: tuple[Any, ...]) -> None:
        name = cmd[0]
        if name == "connect":  # ("connect", tag, host, port, items, concurrency[, spread_s])
            self.batch = ConnectBatch(*cmd[1:])
            self.groups.setdefault(self.batch.tag, [])
            self.start_connects(self.batch)
        elif name == "pace":
            self.set_pace(float(cmd[1]))
            self.ctl.send(("ok",))
        elif name == "stats":
            self.ctl.send(self.stats())
        elif name == "lat_start":
            self.lat_t0, self.lat_t1, self.lat = cmd[1], float("inf"), array("d")
            self.ctl.send(("ok",))
        elif name == "lat_stop":
            self.lat_t1 = cmd[1]
            self.ctl.send(("ok",))
        elif name == "lat_collect":
            probes = sum(1 for c in self.conns.values() if c.probe and c.ready)
            self.ctl.send((self.lat.tobytes(), probes))
            self.lat_t0 = self.lat_t1 = float("inf")
        elif name == "close_all":
            self.close_all()
            self.ctl.send(("ok",))
        elif name == "exit":
            self.close_all()
            self.running = False
        else:
            self.extra_command(cmd)

    def extra_command(self, cmd: tuple[Any, ...]) -> None:
        raise ValueError(f"unknown command {cmd[0]!r}")

    def stats(self) -> dict[str, Any]:
        ready = [c for c in self.conns.values() if c.ready]
        return {
            "t": time.time(),
            "cpu_s": _cpu_s(),
            "frames": sum(c.frames for c in ready),
            "msgs": sum(c.msgs for c in ready),
            "min_msgs": min((c.msgs for c in ready), default=0),
            "bytes": self.bytes,
            "ready": len(ready),
            "server_closed": self.server_closed,
            "pongs": self.pongs,
        }

    def close_all(self) -> None:
        for fd, conn in list(self.conns.items()):
            self.drop(fd, conn, abort=True)
        self.groups = {}
        self.joining = {}
        self.batch = None

    # --- connecting ----------------------------------------------------------------------

    def start_connects(self, batch: ConnectBatch) -> None:
        while batch.todo and batch.in_flight < batch.concurrency and batch.due():
            path, probe = batch.todo.popleft()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex((batch.host, batch.port))
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                self.fail(batch, f"connect: {os.strerror(err)}")
                continue
            request, accept = upgrade_request(batch.host, batch.port, path)
            conn = self.new_conn(sock, request, accept, path, probe)
            fd = sock.fileno()
            self.conns[fd] = conn
            self.joining[fd] = batch
            batch.in_flight += 1
            self.ep.register(fd, OUT)

    def new_conn(
        self, sock: socket.socket, request: bytes, accept: bytes, path: str, probe: bool
    ) -> Conn:
        """The state of a new socket (loadtest/swarmclient.py keeps more per viewer)."""
        return Conn(sock, request, accept, probe)

    def fail(self, batch: ConnectBatch, why: str) -> None:
        batch.failed += 1
        if len(batch.errors) < 10:
            batch.errors.append(why)

    def joined(self, fd: int, conn: Conn) -> None:
        batch = self.joining.pop(fd)
        batch.in_flight -= 1
        batch.ok += 1
        conn.ready = True
        self.groups[batch.tag].append(conn)

    # --- events --------------------------------------------------------------------------

    def on_event(self, fd: int, conn: Conn, ev: int) -> None:
        if conn.request:  # waiting for the TCP connect
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.drop(fd, conn, why=f"connect: {os.strerror(err)}")
                return
            conn.sock.send(conn.request)  # ~300 bytes into an empty socket buffer
            conn.request = b""
            self.ep.modify(fd, IN)
            return
        if ev & OUT and not conn.flush():
            self.watch(fd, conn, IN)
        if ev & (IN | select.EPOLLERR | select.EPOLLHUP):
            self.on_readable(fd, conn)

    def on_readable(self, fd: int, conn: Conn) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self.drop(fd, conn, why=f"recv: {exc}")
            return
        if not data:
            self.drop(fd, conn, why="closed by the server")
            return
        if conn.ready and conn.parser is None:  # hot path: count, don't decode
            self.bytes += len(data)
            conn.msgs += count_marker(conn.carry, data)
            conn.carry = data[-6:]
            controls = walk(conn, data)
            if controls:
                self.on_controls(fd, conn, controls)
            return
        if conn.accept:  # reading the HTTP response
            conn.head += data
            end = conn.head.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.head) > 8192:
                    self.drop(fd, conn, why="upgrade response too long")
                return
            try:
                check_upgrade_response(conn.head[:end], conn.accept)
            except HandshakeError as exc:
                self.drop(fd, conn, why=str(exc))
                return
            data, conn.head, conn.accept = conn.head[end + 4 :], b"", b""
            if not data:
                return
        self.on_parsed_data(fd, conn, data)

    def on_parsed_data(self, fd: int, conn: Conn, data: bytes) -> None:
        """A socket whose frames we decode: joining (until its welcome frame) or a probe."""
        assert conn.parser is not None
        if conn.ready:
            self.bytes += len(data)
            conn.msgs += count_marker(conn.carry, data)
            conn.carry = data[-6:]
        frames = conn.parser.feed(data)
        controls = []
        for index, (opcode, payload) in enumerate(frames):
            if opcode & 0x8:
                controls.append((opcode, payload))
                continue
            if not conn.ready:
                if not payload.startswith(_WELCOME_PREFIX):
                    self.drop(fd, conn, why=f"first frame is not a welcome: {payload[:60]!r}")
                    return
                self.welcomed(conn, payload)
                self.joined(fd, conn)
                if not conn.probe:  # from now on: count only
                    for _, later in frames[index + 1 :]:
                        conn.msgs += later.count(MARKER)
                    self.count_rest(fd, conn, frames[index + 1 :])
                    return
                continue
            if opcode in (OP_TEXT, OP_BINARY):
                conn.frames += 1
                if payload.startswith(_CHAT_PREFIX):
                    self.on_chat(conn, orjson.loads(payload)["msgs"])
        if controls:
            self.on_controls(fd, conn, controls)

    def welcomed(self, conn: Conn, payload: bytes) -> None:
        """A socket's welcome frame (a subclass may look at it: e.g. its `recovery`)."""

    def count_rest(self, fd: int, conn: Conn, frames: list[tuple[int, bytes]]) -> None:
        assert conn.parser is not None
        rest = conn.parser.take_rest()
        self.ep.unregister(fd)
        conn.parser = None  # from now on in the slow set (see epoll_of)
        self.slow.register(fd, IN | OUT if conn.out else IN)
        self.n_slow += 1
        conn.frames += sum(1 for op, _ in frames if op in (OP_TEXT, OP_BINARY))
        controls = [(op, p) for op, p in frames if op & 0x8]
        if rest:
            self.bytes += len(rest)
            conn.msgs += rest.count(MARKER)
            conn.carry = rest[-6:]
            controls += walk(conn, rest)
        if controls:
            self.on_controls(fd, conn, controls)

    def on_chat(self, conn: Conn, items: list[dict[str, Any]]) -> None:
        now = time.time()
        t0, t1, lat = self.lat_t0, self.lat_t1, self.lat
        for item in items:
            sent = float(item["text"].split(" ", 2)[1])
            if t0 <= sent < t1:
                lat.append(sent)
                lat.append(now - sent)
                lat.append(item["ts"] / 1000 - sent)  # until the server took it in

    def on_controls(self, fd: int, conn: Conn, controls: list[tuple[int, bytes]]) -> None:
        for opcode, payload in controls:
            if opcode == OP_PING:
                self.pongs += 1
                if conn.send(masked_frame(payload, OP_PONG)):
                    self.watch(fd, conn, IN | OUT)
            elif opcode == OP_CLOSE:
                self.server_closed += 1
                self.drop(fd, conn, why=f"close frame {payload[:60]!r}")
                return

    def drop(self, fd: int, conn: Conn, *, why: str = "", abort: bool = False) -> None:
        """Forget a socket. `abort`: reset it (no TIME_WAIT left behind on our side)."""
        batch = self.joining.pop(fd, None)
        if batch is not None:
            batch.in_flight -= 1
            self.fail(batch, why)
        conn.closed = True
        self.conns.pop(fd, None)
        try:
            ep = self.epoll_of(conn)
            ep.unregister(fd)
            self.n_slow -= ep is self.slow
        except (OSError, ValueError):
            pass
        if abort:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()


class PublisherLoop(ViewerLoop):
    """Senders (tag "sender") and the flow-control tail viewers (tag "tail", probes: one per
    node when the room's viewers are spread over several; a message is acknowledged once every
    tail has seen it)."""

    def __init__(self, ctl: Connection) -> None:
        super().__init__(ctl)
        self.mode = ""
        self.window = 0
        self.rate = 0.0
        self.next_at = 0.0
        self.end_at = 0.0
        self.sent = 0
        self.acked = 0  # highest seq seen by every tail + 1
        self.tail_acked: dict[Conn, int] = {}  # highest seq seen by each tail + 1
        self.tail_seen = 0
        self.send_times = array("d")
        self.tail_lat = array("d")

    def extra_command(self, cmd: tuple[Any, ...]) -> None:
        name = cmd[0]
        if name == "run_window":
            self.start("window", cmd[2])
            self.window = int(cmd[1])
        elif name == "run_rate":
            self.start("rate", cmd[2])
            self.rate = float(cmd[1])
            self.next_at = time.time()
        elif name == "stop":
            self.mode = ""
        elif name == "pub_stats":
            self.ctl.send({"t": time.time(), "cpu_s": _cpu_s(), "sent": self.sent,
                           "acked": self.acked, "tail_seen": self.tail_seen,
                           "queued": sum(len(c.out) for c in self.conns.values())})  # fmt: skip
            return
        elif name == "count_sent":
            t0, t1 = cmd[1], cmd[2]
            self.ctl.send(sum(1 for t in self.send_times if t0 <= t < t1))
            return
        else:
            raise ValueError(f"unknown command {name!r}")
        self.ctl.send(("ok",))

    def start(self, mode: str, duration: float) -> None:
        self.mode, self.end_at = mode, time.time() + duration
        self.sent = self.acked = self.tail_seen = 0
        self.tail_acked = {}
        self.send_times, self.tail_lat = array("d"), array("d")

    def poll_timeout(self) -> float:
        if self.mode == "rate":
            return max(0.0, min(self.next_at - time.time(), 0.05))
        if self.mode == "window":
            return 0.05
        return super().poll_timeout()

    def after_round(self) -> None:
        super().after_round()
        now = time.time()
        if self.mode and now >= self.end_at:
            self.mode = ""
        if self.mode == "window":
            while self.sent - self.acked < self.window:
                self.send_one(now)
        elif self.mode == "rate":
            while self.next_at <= now:
                self.send_one(now)
                self.next_at += 1.0 / self.rate

    def send_one(self, now: float) -> None:
        senders = self.groups["sender"]
        conn = senders[self.sent % len(senders)]
        text = f"{self.sent:08d} {now:.6f} bench-danmaku"
        frame = masked_frame(orjson.dumps({"type": "danmaku", "text": text}))
        self.sent += 1
        self.send_times.append(now)
        if conn.send(frame):
            fd = conn.sock.fileno()
            self.watch(fd, conn, IN | OUT)

    def on_chat(self, conn: Conn, items: list[dict[str, Any]]) -> None:
        now = time.time()
        acked = self.tail_acked.get(conn, 0)
        for item in items:
            seq, sent, _ = item["text"].split(" ", 2)
            self.tail_seen += 1
            acked = max(acked, int(seq) + 1)
            self.tail_lat.append(now - float(sent))
        self.tail_acked[conn] = acked
        tails = self.groups.get("tail", [])
        self.acked = min((self.tail_acked.get(c, 0) for c in tails), default=acked)


def worker_main(ctl: Connection, role: str, viewer_loop: type[ViewerLoop] = ViewerLoop) -> None:
    """Entry point of a client process (multiprocessing, spawn); `viewer_loop`: the viewers'
    loop class (a subclass with more commands, e.g. loadtest/stormclient.py's)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the benchmark stops us through the pipe
    loop = PublisherLoop(ctl) if role == "publisher" else viewer_loop(ctl)
    try:
        loop.run()
    except (EOFError, BrokenPipeError):
        pass  # the benchmark went away
    finally:
        loop.close_all()
