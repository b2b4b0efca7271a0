"""Flash-sale load client processes: one `select.epoll` loop over many raw non-blocking sockets,
driven by commands from `bench_seckill` over a pipe (no asyncio or trio on the hot path). The
WebSocket pieces (upgrade, frame parsing) are `loadtest.wsclient`'s.

Each socket is one viewer (one user). Two modes:

* closed loop (`run_closed`): every socket keeps `window` grabs in flight, a new one for each
  answer; answers are counted, not decoded (a C-speed `bytes.count` of `"type":"result"` and
  `"ok":true`, correct across read boundaries), so the client stays cheap;
* spike (`spike`): every socket sends one grab at its own moment, spread evenly over `spread_s`
  from `t0`; answers are found in the byte stream by a regular expression (rid, ok, code) to
  measure send-to-answer latency; other frames (stock, popups) are skipped unparsed.

Client frames must be masked; the mask key is zero here (a legal key: payload XOR 0), so a grab
frame is a header and the JSON, built without a per-byte loop. Only a load generator does that.
"""

from __future__ import annotations

import errno
import os
import re
import select
import signal
import socket
import struct
import time
from array import array
from collections import Counter, deque
from multiprocessing.connection import Connection
from typing import Any

from loadtest.wsclient import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    Conn,
    HandshakeError,
    check_upgrade_response,
    masked_frame,
    upgrade_request,
)

RECV_BYTES = 262144
IN, OUT = select.EPOLLIN, select.EPOLLOUT
RESULT = b'"type":"result"'
OK = b'"ok":true'
_WELCOME = b'{"type":"welcome"'
_ANSWER = re.compile(rb'\{"type":"result","rid":(-?\d+),"ok":(true|false)(?:,"code":"([a-z_]+)")?')
_CARRY = 96  # longer than any match: an answer split between two reads is found whole


def grab_frame(sale: str, rid: int) -> bytes:
    """A whole masked client frame `{"type":"grab","sale":...,"rid":...}` (zero mask key)."""
    payload = b'{"type":"grab","sale":"%s","rid":%d}' % (sale.encode(), rid)
    n = len(payload)
    head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0xFE)) + n.to_bytes(2, "big")
    return head + b"\x00\x00\x00\x00" + payload


def count(marker: bytes, carry: bytes, data: bytes) -> int:
    """Markers in `data`, including one that began in `carry` (the previous read's tail)."""
    return data.count(marker) + (carry + data[: len(marker) - 1]).count(marker)


SO_TIMESTAMPNS = 35  # Linux; the socket module does not name it
_ANCILLARY = socket.CMSG_SPACE(16)


def _kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The receive timestamp of the last segment read (SCM_TIMESTAMPNS), as time.time()."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            sec, nsec = struct.unpack_from("qq", payload)
            return sec + nsec / 1e9
    return None


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class GrabLoop:
    # the request each socket sends: a grab here; loadtest/bench_coupons.py sends claims
    frame = staticmethod(grab_frame)

    def __init__(self, ctl: Connection) -> None:
        self.ctl = ctl
        self.ep = select.epoll()
        self.ep.register(ctl.fileno(), IN)
        self.conns: dict[int, Conn] = {}
        self.ready: list[Conn] = []
        self.rids: dict[int, int] = {}  # fd -> next request id
        self.running = True
        self.mode = ""
        # connecting
        self.todo: deque[str] = deque()
        self.host, self.port, self.concurrency = "", 0, 64
        self.joining = 0
        self.connecting = False
        self.ready_before = 0
        self.done_sent = False
        self.failed = 0
        self.errors: list[str] = []
        self.lost: Counter[str] = Counter()  # why ready sockets went away
        self.connect_started = 0.0
        # closed loop
        self.sale = ""
        self.window = 0
        self.results = 0
        self.oks = 0
        self.carry: dict[int, bytes] = {}
        self.marks: list[tuple[float, int, int, float]] = []  # (time, results, oks, cpu)
        self.mark_at: list[float] = []
        self.stop_at = 0.0
        # spike
        self.schedule: deque[tuple[float, int]] = deque()  # (send time, fd)
        self.sent_at: dict[tuple[int, int], float] = {}  # (fd, rid) -> time sent
        self.latencies = array("d")
        self.answered_sent_at = array("d")  # each answered request's send time, as latencies
        # from the send to the answer's arrival in this machine's kernel (SO_TIMESTAMPNS): what
        # the server and network took, without this loop's own lag in reading it
        self.kernel_latencies = array("d")
        self.arrived: float | None = None
        self.codes: Counter[str] = Counter()

    # --- loop ----------------------------------------------------------------------------

    def run(self) -> None:
        while self.running:
            for fd, ev in self.ep.poll(self.timeout()):
                if fd == self.ctl.fileno():
                    while self.running and self.ctl.poll():
                        self.command(self.ctl.recv())
                    continue
                conn = self.conns.get(fd)
                if conn is not None:
                    self.on_event(fd, conn, ev)
            self.after_round()

    def timeout(self) -> float:
        if self.schedule:
            return max(0.0, min(0.05, self.schedule[0][0] - time.time()))
        if self.connecting or self.mode or self.mark_at:
            return 0.02
        return 1.0

    def after_round(self) -> None:
        now = time.time()
        if self.connecting:
            self.start_connects()
            if not self.todo and not self.joining:
                self.connecting = False
                self.ctl.send(
                    (
                        "connected",
                        len(self.ready) - self.ready_before,
                        self.failed,
                        self.errors[:3],
                        time.monotonic() - self.connect_started,
                    )
                )
        while self.mark_at and now >= self.mark_at[0]:
            self.mark_at.pop(0)
            self.marks.append((now, self.results, self.oks, _cpu_s()))
        if (
            self.mode == "closed"
            and not self.done_sent
            and now >= self.stop_at
            and not self.mark_at
        ):
            self.done_sent = True  # still counting (late answers), no longer sending
            self.ctl.send(("closed_done", self.marks, self.results, self.oks))
        while self.schedule and self.schedule[0][0] <= now:
            _, fd = self.schedule.popleft()
            conn = self.conns.get(fd)
            if conn is not None:
                rid = self.rids[fd] = self.rids[fd] + 1
                self.sent_at[(fd, rid)] = time.time()
                self.send(fd, conn, self.frame(self.sale, rid))

    # --- commands ------------------------------------------------------------------------

    def command(self, cmd: tuple[Any, ...]) -> None:
        name = cmd[0]
        if name == "connect":
            _, self.host, self.port, paths, self.concurrency = cmd
            self.todo.extend(paths)
            self.failed, self.errors, self.connecting = 0, [], True
            self.ready_before = len(self.ready)
            self.connect_started = time.monotonic()
            self.start_connects()
        elif name == "run_closed":
            # (sale, window, warmup_s, duration_s): grab for warmup + duration; marks at both ends
            _, self.sale, self.window, warmup, duration = cmd
            now = time.time()
            self.mode, self.stop_at, self.done_sent = "closed", now + warmup + duration, False
            self.mark_at = [now + warmup, now + warmup + duration]
            self.marks = []
            for conn in self.ready:
                fd = conn.sock.fileno()
                self.carry[fd] = b""
                frames = b"".join(self.next_grab(fd) for _ in range(self.window))
                self.send(fd, conn, frames)
        elif name == "spike":
            _, self.sale, t0, spread = cmd
            self.latencies, self.codes, self.sent_at = array("d"), Counter(), {}
            self.results = self.oks = 0  # wait_answered counts this spike's answers only
            self.answered_sent_at, self.kernel_latencies = array("d"), array("d")
            n = max(1, len(self.ready))
            self.schedule = deque(
                (t0 + spread * i / n, c.sock.fileno()) for i, c in enumerate(self.ready)
            )
            self.mode = "spike"
            self.ctl.send(("ok",))
        elif name == "spike_collect":
            missing = len(self.sent_at)
            self.ctl.send((self.latencies.tobytes(), dict(self.codes), missing, dict(self.lost),
                           self.answered_sent_at.tobytes(),
                           self.kernel_latencies.tobytes()))  # fmt: skip
            self.mode = ""
        elif name == "stats":
            self.ctl.send(
                {
                    "t": time.time(),
                    "cpu_s": _cpu_s(),
                    "results": self.results,
                    "oks": self.oks,
                    "ready": len(self.ready),
                }
            )
        elif name == "close_all":
            self.close_all()
            self.ctl.send(("ok",))
        elif name == "exit":
            self.close_all()
            self.running = False
        else:
            raise ValueError(f"unknown command {name!r}")

    def next_grab(self, fd: int) -> bytes:
        rid = self.rids[fd] = self.rids[fd] + 1
        return self.frame(self.sale, rid)

    # --- sockets -------------------------------------------------------------------------

    def start_connects(self) -> None:
        while self.todo and self.joining < self.concurrency:
            path = self.todo.popleft()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            err = sock.connect_ex((self.host, self.port))
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                self.fail(f"connect: {os.strerror(err)}")
                continue
            request, accept = upgrade_request(self.host, self.port, path)
            fd = sock.fileno()
            self.conns[fd] = Conn(sock, request, accept, probe=False)
            self.rids[fd] = 0
            self.joining += 1
            self.ep.register(fd, OUT)

    def fail(self, why: str) -> None:
        self.failed += 1
        if len(self.errors) < 10:
            self.errors.append(why)

    def send(self, fd: int, conn: Conn, data: bytes) -> None:
        if conn.send(data):
            self.ep.modify(fd, IN | OUT)

    def on_event(self, fd: int, conn: Conn, ev: int) -> None:
        if conn.request:  # waiting for the TCP connect
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.drop(fd, conn, f"connect: {os.strerror(err)}")
                return
            conn.sock.send(conn.request)
            conn.request = b""
            self.ep.modify(fd, IN)
            return
        if ev & OUT and not conn.flush():
            self.ep.modify(fd, IN)
        if ev & (IN | select.EPOLLERR | select.EPOLLHUP):
            self.on_readable(fd, conn)

    def on_readable(self, fd: int, conn: Conn) -> None:
        try:
            data, ancillary, _, _ = conn.sock.recvmsg(RECV_BYTES, _ANCILLARY)
        except BlockingIOError:
            return
        except OSError as exc:
            self.drop(fd, conn, f"recv: {exc}")
            return
        if not data:
            self.drop(fd, conn, "closed by the server")
            return
        if conn.ready:
            self.arrived = _kernel_time(ancillary)
            self.scan(fd, conn, data)
            return
        if conn.accept:  # reading the HTTP response
            conn.head += data
            end = conn.head.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                check_upgrade_response(conn.head[:end], conn.accept)
            except HandshakeError as exc:
                self.drop(fd, conn, str(exc))
                return
            data, conn.head, conn.accept = conn.head[end + 4 :], b"", b""
        assert conn.parser is not None
        for opcode, payload in conn.parser.feed(data):
            if opcode & 0x8:
                self.on_control(fd, conn, opcode, payload)
            elif not payload.startswith(_WELCOME):
                self.drop(fd, conn, f"first frame is not a welcome: {payload[:60]!r}")
                return
            else:  # from now on the socket's bytes are scanned, not parsed
                conn.ready = True
                self.ready.append(conn)
                self.joining -= 1
                rest = conn.parser.take_rest()
                conn.parser = None
                self.carry[fd] = b""
                if rest:
                    self.scan(fd, conn, rest)
                return

    def scan(self, fd: int, conn: Conn, data: bytes) -> None:
        """Answers in a ready socket's bytes. Server frames are unmasked, so each answer's JSON
        is in the byte stream as sent; a scan at C speed replaces frame parsing (hot path)."""
        carry = self.carry.get(fd, b"")
        if self.mode == "closed":
            n = count(RESULT, carry, data)
            self.oks += count(OK, carry, data)
            self.carry[fd] = data[-16:]
            self.results += n
            if n and time.time() < self.stop_at:
                self.send(fd, conn, b"".join(self.next_grab(fd) for _ in range(n)))
            return
        buf = carry + data
        skip = len(carry)
        for match in _ANSWER.finditer(buf):
            if match.end() > skip:  # a match inside the carry was counted last time
                self.on_answer(fd, int(match[1]), match[2] == b"true", match[3])
        self.carry[fd] = buf[-_CARRY:]

    def on_answer(self, fd: int, rid: int, ok: bool, code: bytes | None) -> None:
        sent = self.sent_at.pop((fd, rid), None)
        if sent is not None:
            now = time.time()
            self.latencies.append(now - sent)
            self.answered_sent_at.append(sent)
            self.kernel_latencies.append((self.arrived or now) - sent)
        self.results += 1
        if ok:
            self.oks += 1
            self.codes["ok"] += 1
        else:
            self.codes[code.decode() if code else "?"] += 1

    def on_control(self, fd: int, conn: Conn, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self.send(fd, conn, masked_frame(payload, OP_PONG))
        elif opcode == OP_CLOSE:
            self.drop(fd, conn, f"close frame {payload[:60]!r}")

    def drop(self, fd: int, conn: Conn, why: str = "", *, closing: bool = False) -> None:
        if closing:
            pass
        elif not conn.ready:
            self.joining -= 1
            self.fail(why)
        elif conn in self.ready:
            self.ready.remove(conn)
            self.lost[why[:60]] += 1
        self.conns.pop(fd, None)
        try:
            self.ep.unregister(fd)
        except (OSError, ValueError):
            pass
        if closing:  # reset: leave no TIME_WAIT behind
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        conn.sock.close()

    def close_all(self) -> None:
        for fd, conn in list(self.conns.items()):
            self.drop(fd, conn, closing=True)
        self.ready, self.todo, self.joining, self.connecting = [], deque(), 0, False
        self.mode, self.schedule, self.mark_at = "", deque(), []


def worker_main(ctl: Connection, loop_class: type[GrabLoop] = GrabLoop) -> None:
    """Entry point of a client process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the benchmark stops us through the pipe
    loop = loop_class(ctl)
    try:
        loop.run()
    except (EOFError, BrokenPipeError):
        pass  # the benchmark went away
    finally:
        loop.close_all()
