"""Swarm load-client processes (`python -m loadtest.swarm` starts several): viewers that act.

Each process is `loadtest/clientproc.py`'s `ViewerLoop` (one `select.epoll` loop over raw
non-blocking sockets; connect batches, the paced set, probes decoding their frames, pongs), driven
by the swarm over a pipe, plus what viewers do in a live:

* `rate`: danmaku or likes at a rate per process, the senders taken in turn. A danmaku's text is
  `w<worker>.<n> <send time> ...`, so probes measure send-to-deliver latency and can tell a
  message missing or delivered twice;
* `spike`: a share of the viewers each send one grab, claim, lottery entry or keyword danmaku, at
  its own moment, evenly spread from t0. Answers are found in the byte stream (a result or error
  frame starts `{"type":"result"`; its two- or four-byte header gives its length, so the frame is
  decoded only once it is whole) and timed from send to answer; `unavailable` is retried with the
  same rid, as the protocol asks;
* `reconnect`: a share of the viewers cut their socket (RST) and connect again with `since` and
  `epoch`, the position they had reached;
* `popups`: when each viewer first received a popup of a kind (bytes scanned for `"kind":"..."`).

Probes (every `probe_every`-th viewer) decode every frame; the other viewers count chat items with
a C-speed `bytes.count` and keep their position with `rfind(b'"seq":')` (no danmaku of ours asks
for a result, so every `"seq"` in the stream is a room position).
"""

from __future__ import annotations

import heapq
import os
import random
import re
import select
import signal
import socket
import struct
import time
from array import array
from collections import Counter
from itertools import count
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import quote

import orjson

from engine.identity import mint_token
from loadtest.bench_coupons import claim_frame
from loadtest.clientproc import RECV_BYTES, ConnectBatch, ViewerLoop
from loadtest.grabclient import grab_frame
from loadtest.locustproto import fake_ip
from loadtest.wsclient import (
    MARKER,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Conn,
    count_marker,
    masked_frame,
    walk,
)

IN, OUT = select.EPOLLIN, select.EPOLLOUT
_ANSWER = re.compile(rb'\{"type":"(?:result|error)"')
_SEQ = b'"seq":'
_WELCOME = b'{"type":"welcome"'
CARRY = 32  # bytes kept between reads: a split answer start (+ its header) is found whole
MAX_RETRIES = 5  # `unavailable` answers retried with the same rid
FILLER = "swarm danmaku, as long as a real one"
ACTIONS = ("grab", "claim", "enter", "keyword", "danmaku")
SPIKE_ACTIONS = ("grab", "claim", "enter", "keyword")
DMK_SENT, DMK_OK, DMK_REFUSED, DMK_UNKNOWN = 0, 1, 2, 3  # a danmaku's fate, as its sender knows


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def chosen(vid: int, fraction: float, salt: int) -> bool:
    """Whether viewer `vid` takes part in an action done by `fraction` of the viewers (the same
    answer in every process, different for each salt)."""
    if fraction >= 1.0:
        return True
    return ((vid * 2654435761 + salt * 40503) % 1_000_003) < fraction * 1_000_003


def last_seq(buf: bytes, skip: list[tuple[int, int]] | None = None) -> int:
    """The last complete room position (`"seq":N` followed by `,` or `}`) in `buf`, or -1;
    `skip`: spans [start, end) of answers (a danmaku's result names the seq the room gave it,
    which the viewer may not have received yet)."""
    end = len(buf)
    while True:
        at = buf.rfind(_SEQ, 0, end)
        if at < 0:
            return -1
        if skip and any(a <= at < b for a, b in skip):
            end = at
            continue
        digits = at + len(_SEQ)
        stop = digits
        while stop < len(buf) and 48 <= buf[stop] <= 57:
            stop += 1
        if stop > digits and stop < len(buf) and buf[stop] in b",}":
            return int(buf[digits:stop])
        end = at


class SwarmConn(Conn):
    """A viewer socket, with the viewer it belongs to and its position in the room."""

    __slots__ = ("content_seq", "epoch", "opened", "seq", "tail", "vid")

    def __init__(
        self, sock: socket.socket, request: bytes, accept: bytes, probe: bool, vid: int
    ) -> None:
        super().__init__(sock, request, accept, probe)
        self.vid = vid
        self.seq = 0  # the room position reached (sent back as `since` on reconnect)
        self.epoch = ""
        self.content_seq = 0  # probes: the last content position (a repeat means a duplicate)
        self.tail = b""  # unscanned bytes kept from the previous read
        self.opened = time.time()


class Rate:
    __slots__ = ("end_at", "kind", "next_at", "per_s", "size")

    def __init__(self, kind: str, per_s: float, duration: float, size: int) -> None:
        self.kind, self.per_s, self.size = kind, per_s, size
        self.next_at = time.time()
        self.end_at = self.next_at + duration


class SwarmLoop(ViewerLoop):
    def __init__(self, ctl: Connection) -> None:
        super().__init__(ctl)
        self.wid = 0
        self.cfg: dict[str, Any] = {}
        self.keys: dict[str, bytes] = {}
        self.path_vid: dict[str, int] = {}  # sockets being opened -> their viewer
        self.live: dict[int, SwarmConn] = {}  # viewer -> its open, joined socket
        self.rids = count(1)
        self.heap: list[tuple[float, int, str, int, str]] = []  # (at, order, action, vid, arg)
        self.order = count()
        self.rates: dict[str, Rate] = {}
        self.senders: list[SwarmConn] = []
        self.next_sender = 0
        self.pending: dict[tuple[int, int], list[Any]] = {}  # (vid, rid) -> [kind, target, t, n]
        self.codes: dict[str, Counter[str]] = {k: Counter() for k in ACTIONS}
        self.latency: dict[str, array[float]] = {k: array("d") for k in ACTIONS}
        self.successes: dict[str, list[tuple[int, str, str]]] = {k: [] for k in ACTIONS}
        self.sent: Counter[str] = Counter()
        self.retries = 0
        self.unmatched = 0
        self.errors: Counter[str] = Counter()  # error frames not answering a request of ours
        self.closes: Counter[str] = Counter()  # close codes the server sent
        self.lost: Counter[str] = Counter()  # why joined viewers went away (not by our cut)
        self.recovery: Counter[str] = Counter()
        self.join_lat = array("d")
        self.rejoin_lat = array("d")
        self.cut_at: dict[int, float] = {}
        self.cut_pos: dict[int, tuple[int, int]] = {}  # viewer -> (seq, content seq) when cut
        self.reconnect_batch: ConnectBatch | None = None
        self.dmk_times = array("d")  # send time of our n-th danmaku
        self.dmk_state = bytearray()  # its fate: DMK_SENT, DMK_OK, DMK_REFUSED, DMK_UNKNOWN
        self.entries: list[tuple[int, str]] = []  # (viewer, lottery or keyword) sent
        self.frames_total = 0
        self.msgs_total = 0
        self.likes_seen = 0  # the highest like total a probe saw
        self.chat_lat = array("d")  # probes: (receive time, send-to-deliver, send-to-server)
        self.popup_seen: dict[str, dict[int, float]] = {}  # kind -> viewer -> first seen
        self.popup_pats: dict[bytes, dict[int, float]] = {}
        self.probe_first: dict[int, float] = {}  # probe viewer -> first welcome
        self.probe_resynced: set[int] = set()
        self.probe_maps: dict[int, dict[int, bytearray]] = {}  # probe -> worker -> got n
        self.probe_dups: Counter[int] = Counter()
        self.probe_regress: Counter[int] = Counter()
        self.regress_examples: list[tuple[int, str, int, int, float]] = []
        self.regress_kinds: Counter[str] = Counter()  # chat, popup, pinned, phrases
        self.winners_seen: list[tuple[str, list[str]]] = []

    # --- setup and identity --------------------------------------------------------------

    def user(self, vid: int) -> str:
        return f"{self.cfg['prefix']}{vid}"

    def is_probe(self, vid: int) -> bool:
        """Every `probe_every`-th viewer of this process (viewer `vid` is in process
        `vid % workers`), so each process decodes its share of the probes."""
        every = int(self.cfg["probe_every"])
        return every > 0 and (vid // int(self.cfg["workers"])) % every == 0

    def path_for(self, vid: int, since: int | None = None, epoch: str = "") -> str:
        cfg = self.cfg
        token = mint_token(self.keys, user=self.user(vid), room=cfg["room"], kid=cfg["kid"],
                           ttl_s=cfg["ttl_s"], device=f"swarm-{vid}")  # fmt: skip
        path = f"{cfg['path']}?token={token}"
        if since is not None and epoch:
            path += f"&since={since}&epoch={quote(epoch)}"
        return path

    def new_conn(
        self, sock: socket.socket, request: bytes, accept: bytes, path: str, probe: bool
    ) -> Conn:
        vid = self.path_vid.pop(path)
        if self.cfg.get("forwarded_for"):  # each viewer its own address, as behind a proxy
            request = request[:-2] + b"X-Forwarded-For: %s\r\n\r\n" % fake_ip(vid).encode()
        return SwarmConn(sock, request, accept, probe, vid)

    # --- commands ------------------------------------------------------------------------

    def extra_command(self, cmd: tuple[Any, ...]) -> None:
        name = cmd[0]
        if name == "setup":
            self.cfg = dict(cmd[1])
            self.wid = int(self.cfg["wid"])
            self.keys = {self.cfg["kid"]: self.cfg["secret"].encode()}
            self.ctl.send(("ok",))
        elif name == "join":  # (tag, viewers, concurrency): answered "connected" when done
            _, tag, vids, conc = cmd
            items = []
            for vid in vids:
                path = self.path_for(vid)
                self.path_vid[path] = vid
                items.append((path, self.is_probe(vid)))
            self.command(("connect", tag, self.cfg["host"], self.cfg["port"], items, conc))
        elif name == "rate":  # (label, kind, per second, duration, max likes per message)
            _, label, kind, per_s, duration, size = cmd
            if per_s > 0 and duration > 0:
                self.rates[label] = Rate(kind, per_s, duration, size)
            else:
                self.rates.pop(label, None)
            self.ctl.send(("ok",))
        elif name == "spike":  # (action, target, t0, spread, fraction, salt)
            self.ctl.send(("ok", self.spike(*cmd[1:])))
        elif name == "reconnect":  # (tag, fraction, t0, spread, concurrency, salt)
            self.ctl.send(("ok", self.reconnect(*cmd[1:])))
        elif name == "popups":  # (kind,): note when each viewer first gets a popup of the kind
            self.popup_seen[cmd[1]] = seen = {}
            self.popup_pats[b'"kind":"%s"' % cmd[1].encode()] = seen
            self.ctl.send(("ok",))
        elif name == "popups_collect":  # (kind,) -> {viewer: first seen}
            seen = self.popup_seen.pop(cmd[1], {})
            self.popup_pats.pop(b'"kind":"%s"' % cmd[1].encode(), None)
            self.ctl.send(seen)
        elif name == "swarm_stats":  # the progress sampler's (takes the latency samples)
            self.ctl.send(self.swarm_stats())
        elif name == "counts":  # a phase's (takes nothing)
            self.ctl.send(self.counts())
        elif name == "results":  # (with_probes,)
            self.ctl.send(self.results(bool(cmd[1]) if len(cmd) > 1 else False))
        else:
            raise ValueError(f"unknown command {name!r}")

    def spike(self, action: str, target: str, t0: float, spread: float, fraction: float,
              salt: int) -> int:  # fmt: skip
        viewers = [vid for vid in self.live if chosen(vid, fraction, salt)]
        random.Random(salt * 7919 + self.wid).shuffle(viewers)
        n = len(viewers)
        for i, vid in enumerate(viewers):
            heapq.heappush(self.heap, (t0 + spread * i / max(1, n), next(self.order), action,
                                       vid, target))  # fmt: skip
        return n

    def reconnect(self, tag: str, fraction: float, t0: float, spread: float, conc: int,
                  salt: int) -> int:  # fmt: skip
        if self.batch is not None:
            raise RuntimeError("reconnect while a connect batch is under way")
        n = self.spike("cut", "", t0, spread, fraction, salt)
        batch = ConnectBatch(tag, self.cfg["host"], self.cfg["port"], [], conc)
        batch.total = n
        self.groups.setdefault(tag, [])
        if n:
            self.batch = self.reconnect_batch = batch
        else:
            self.ctl.send(("connected", tag, 0, 0, [], 0.0))
        return n

    # --- the loop: sending ---------------------------------------------------------------

    def poll_timeout(self) -> float:
        timeout = super().poll_timeout()
        if self.rates:
            timeout = min(timeout, 0.005)
        if self.heap:
            timeout = min(timeout, max(0.0, self.heap[0][0] - time.time()))
        return timeout

    def after_round(self) -> None:
        super().after_round()
        now = time.time()
        for label, rate in list(self.rates.items()):
            if now >= rate.end_at:
                del self.rates[label]
                continue
            if rate.next_at < now - 1.0:  # the loop fell behind: do not send a burst
                self.sent[f"{rate.kind}_skipped"] += int((now - 1.0 - rate.next_at) * rate.per_s)
                rate.next_at = now - 1.0
            while rate.next_at <= now:
                rate.next_at += 1.0 / rate.per_s
                conn = self.sender()
                if conn is None:
                    break
                if rate.kind == "danmaku":
                    self.send_danmaku(conn, now)
                else:
                    self.send_like(conn, rate.size)
        while self.heap and self.heap[0][0] <= now:
            _, _, action, vid, arg = heapq.heappop(self.heap)
            self.act(action, vid, arg, now)

    def sender(self) -> SwarmConn | None:
        if self.next_sender >= len(self.senders):
            self.senders = list(self.live.values())
            self.next_sender = 0
            if not self.senders:
                return None
        conn = self.senders[self.next_sender]
        self.next_sender += 1
        return conn if not conn.closed else self.sender()

    def send(self, conn: SwarmConn, frame: bytes) -> None:
        if conn.send(frame):
            self.watch(conn.sock.fileno(), conn, IN | OUT)

    def send_danmaku(self, conn: SwarmConn, now: float) -> None:
        """A timed danmaku with a rid: its answer says whether the room took it (a refused one,
        e.g. rate limited, is owed to nobody), never retried."""
        n = len(self.dmk_times)
        text = f"w{self.wid}.{n} {now:.6f} {FILLER}"
        self.dmk_times.append(now)
        self.dmk_state.append(DMK_SENT)
        self.sent["danmaku"] += 1
        rid = next(self.rids)
        self.pending[(conn.vid, rid)] = ["danmaku", str(n), now, MAX_RETRIES]
        body = {"type": "danmaku", "text": text, "rid": rid}
        self.send(conn, masked_frame(orjson.dumps(body)))

    def send_like(self, conn: SwarmConn, size: int) -> None:
        n = random.randint(1, max(1, size))
        self.sent["like_msgs"] += 1
        self.sent["likes"] += n
        self.send(conn, masked_frame(b'{"type":"like","count":%d}' % n))

    def act(self, action: str, vid: int, arg: str, now: float) -> None:
        if action == "cut":
            self.cut(vid, now)
            return
        conn = self.live.get(vid)
        if action == "retry":
            entry = self.pending.get((vid, int(arg)))
            if entry is None:
                return
            if conn is None:  # gone: the request stays unanswered (missing)
                return
            self.send(conn, self.request_frame(entry[0], entry[1], int(arg)))
            return
        if conn is None:
            self.sent[f"{action}_not_connected"] += 1
            return
        self.sent[action] += 1
        if action in ("keyword", "enter"):
            self.entries.append((vid, arg))
        if action == "keyword":
            self.send(conn, masked_frame(orjson.dumps({"type": "danmaku", "text": arg})))
            return
        rid = next(self.rids)
        self.pending[(vid, rid)] = [action, arg, now, 0]
        self.send(conn, self.request_frame(action, arg, rid))

    @staticmethod
    def request_frame(action: str, target: str, rid: int) -> bytes:
        if action == "grab":
            return grab_frame(target, rid)
        if action == "claim":
            return claim_frame(target, rid)
        body = {"type": "lottery_enter", "lottery": target, "rid": rid}
        return masked_frame(orjson.dumps(body))

    def cut(self, vid: int, now: float) -> None:
        batch = self.reconnect_batch
        assert batch is not None
        conn = self.live.get(vid)
        if conn is None:  # already gone: one fewer to wait for
            batch.total -= 1
            return
        self.cut_at[vid] = now
        for key in [k for k, e in self.pending.items() if k[0] == vid and e[0] == "danmaku"]:
            self.dmk_state[int(self.pending.pop(key)[1])] = DMK_UNKNOWN  # cut before its answer
        since, epoch = conn.seq, conn.epoch
        self.cut_pos[vid] = (conn.seq, conn.content_seq)
        self.drop(conn.sock.fileno(), conn, why="cut", abort=True)
        path = self.path_for(vid, since, epoch)
        self.path_vid[path] = vid
        batch.todo.append((path, self.is_probe(vid)))
        self.start_connects(batch)

    # --- the loop: receiving -------------------------------------------------------------

    def on_readable(self, fd: int, conn: Conn) -> None:
        if not (conn.ready and conn.parser is None):
            super().on_readable(fd, conn)  # upgrading, joining, or a probe (decoded frames)
            return
        assert isinstance(conn, SwarmConn)
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
        self.bytes += len(data)
        n = count_marker(conn.carry, data)
        conn.msgs += n
        self.msgs_total += n
        conn.carry = data[-6:]
        self.scan(conn, data)
        before = conn.frames
        controls = walk(conn, data)
        self.frames_total += conn.frames - before
        if controls:
            self.on_controls(fd, conn, controls)

    def scan(self, conn: SwarmConn, data: bytes) -> None:
        """Answers, the position and watched popups in a counted viewer's bytes (hot path)."""
        buf = conn.tail + data if conn.tail else data
        done = len(conn.tail)  # answers ending before this were handled with the last read
        keep = max(0, len(buf) - CARRY)
        spans: list[tuple[int, int]] = []
        if b'{"type":"' in buf:
            for m in _ANSWER.finditer(buf):
                s = m.start()
                if s >= 2 and buf[s - 2] == 0x81 and buf[s - 1] < 126:
                    head, end = s - 2, s + buf[s - 1]
                elif s >= 4 and buf[s - 4] == 0x81 and buf[s - 3] == 126:
                    head, end = s - 4, s + int.from_bytes(buf[s - 2 : s], "big")
                else:
                    continue
                spans.append((s, end))
                if end > len(buf):  # not whole yet: keep it for the next read
                    keep = min(keep, head)
                    break
                if end > done:
                    self.on_message(conn, orjson.loads(buf[s:end]))
        seq = last_seq(buf, spans)
        if seq > conn.seq:
            conn.seq = seq
        if self.popup_pats:
            now = time.time()
            for pat, seen in self.popup_pats.items():
                if conn.vid not in seen and pat in buf:
                    seen[conn.vid] = now
        conn.tail = buf[keep:]

    def on_parsed_data(self, fd: int, conn: Conn, data: bytes) -> None:
        """A socket whose frames we decode: joining (until its welcome frame) or a probe."""
        assert isinstance(conn, SwarmConn) and conn.parser is not None
        if conn.ready:
            self.bytes += len(data)
        frames = conn.parser.feed(data)
        controls = []
        for index, (opcode, payload) in enumerate(frames):
            if opcode & 0x8:
                controls.append((opcode, payload))
                continue
            if not conn.ready:
                if not payload.startswith(_WELCOME):
                    self.drop(fd, conn, why=f"first frame is not a welcome: {payload[:60]!r}")
                    return
                self.on_welcome(conn, orjson.loads(payload))
                self.joined(fd, conn)
                if not conn.probe:  # from now on: count and scan
                    self.after_welcome(fd, conn, frames[index + 1 :])
                    return
                continue
            if opcode in (OP_TEXT, OP_BINARY):
                conn.frames += 1
                self.frames_total += 1
                self.on_probe_frame(conn, orjson.loads(payload))
        if controls:
            self.on_controls(fd, conn, controls)

    def after_welcome(self, fd: int, conn: SwarmConn, frames: list[tuple[int, bytes]]) -> None:
        """A counted viewer's frames that came with its welcome (a resume's replay), and the
        start of its byte stream."""
        assert conn.parser is not None
        later = [p for op, p in frames if op in (OP_TEXT, OP_BINARY)]
        for payload in later:  # whole frames: only positions to take (no answers yet)
            n = payload.count(MARKER)
            conn.msgs += n
            self.msgs_total += n
            seq = last_seq(payload)
            if seq > conn.seq:
                conn.seq = seq
        self.frames_total += len(later)
        rest = bytes(conn.parser.buf)
        conn.tail = b""
        if rest:
            self.scan(conn, rest)
            self.msgs_total += rest.count(MARKER)
        self.count_rest(fd, conn, frames)

    def on_welcome(self, conn: SwarmConn, welcome: dict[str, Any]) -> None:
        now = time.time()
        recovery = str(welcome.get("recovery", "?"))
        vid = conn.vid
        conn.epoch = str(welcome.get("epoch", ""))
        saved = self.cut_pos.pop(vid, None)
        if recovery == "resumed" and saved is not None:  # the missed messages follow
            conn.seq, conn.content_seq = saved
        else:
            conn.seq = conn.content_seq = int(welcome.get("seq", 0))
        cut = self.cut_at.pop(vid, None)
        if cut is None:
            self.join_lat.append(now - conn.opened)
        else:
            self.rejoin_lat.append(now - cut)
            self.recovery[recovery] += 1
        self.live[vid] = conn
        if conn.probe:
            self.probe_first.setdefault(vid, now)
            self.probe_maps.setdefault(vid, {})
            if recovery == "resync":
                self.probe_resynced.add(vid)

    def on_probe_frame(self, conn: SwarmConn, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        seq = msg.get("seq")
        if kind == "chat":
            self.on_chat_items(conn, msg["msgs"])
        elif kind == "popup":
            item = msg.get("popup") or {}
            self.on_content(conn, seq, f"popup {item.get('kind')}")
            seen = self.popup_seen.get(str(item.get("kind")))
            if seen is not None and conn.vid not in seen:
                seen[conn.vid] = time.time()
            if item.get("kind") == "lottery_winners":
                data = item.get("data") or {}
                winners = [str(w.get("user")) for w in data.get("winners", [])]
                self.winners_seen.append((str(data.get("lottery")), winners))
        elif kind in ("pinned", "phrases"):
            self.on_content(conn, seq, str(kind))
        elif kind == "likes":
            self.likes_seen = max(self.likes_seen, int(msg.get("total", 0)))
        elif kind in ("result", "error"):
            self.on_message(conn, msg)
        elif kind == "resync":
            self.probe_resynced.add(conn.vid)
            conn.epoch = str(msg.get("epoch", ""))
            conn.content_seq = int(msg.get("seq", 0))
            seq = conn.content_seq
        if isinstance(seq, int) and seq > conn.seq:
            conn.seq = seq

    def on_content(self, conn: SwarmConn, seq: Any, what: str, floor: int | None = None) -> None:
        """A content position: it must pass `floor` (default: the last one; the chat items of
        one room message share a seq, so a chat frame's items are held to the position before
        the frame)."""
        if isinstance(seq, int):
            if seq <= (conn.content_seq if floor is None else floor):
                self.probe_regress[conn.vid] += 1
                self.regress_kinds[what.split(" ")[0]] += 1
                if len(self.regress_examples) < 10:
                    self.regress_examples.append((conn.vid, what, seq, conn.content_seq,
                                                  time.time()))  # fmt: skip
            elif seq > conn.content_seq:
                conn.content_seq = seq

    def on_chat_items(self, conn: SwarmConn, items: list[dict[str, Any]]) -> None:
        now = time.time()
        lat = self.chat_lat
        maps = self.probe_maps.setdefault(conn.vid, {})
        n = 0
        floor = conn.content_seq
        for item in items:
            n += 1
            self.on_content(conn, item.get("seq"), "chat", floor)
            key, _, rest = str(item.get("text", "")).partition(" ")
            if not key.startswith("w") or "." not in key:
                continue
            try:
                wid_s, n_s = key[1:].split(".", 1)
                wid, i, sent = int(wid_s), int(n_s), float(rest.split(" ", 1)[0])
            except ValueError:
                continue
            got = maps.get(wid)
            if got is None:
                got = maps[wid] = bytearray()
            if i >= len(got):
                got.extend(bytes(i + 1 - len(got) + 1024))
            if got[i]:
                self.probe_dups[conn.vid] += 1
            got[i] = 1
            lat.append(now)
            lat.append(now - sent)
            lat.append(float(item.get("ts", 0)) / 1000 - sent)
        conn.msgs += n
        self.msgs_total += n

    def on_message(self, conn: SwarmConn, msg: dict[str, Any]) -> None:
        """A result or error frame."""
        rid = msg.get("rid")
        entry = self.pending.get((conn.vid, rid)) if isinstance(rid, int) else None
        if entry is None:
            if msg.get("type") == "error":
                self.errors[str(msg.get("code"))] += 1
            else:
                self.unmatched += 1
            return
        action, target, sent, tries = entry
        ok = msg.get("type") == "result" and bool(msg.get("ok"))
        code = "ok" if ok else str(msg.get("code"))
        if msg.get("type") == "error":
            code = f"error:{code}"
        elif code == "unavailable" and tries < MAX_RETRIES:  # the protocol: retry, same rid
            entry[3] = tries + 1
            self.retries += 1
            at = time.time() + 0.1 * 2**tries
            heapq.heappush(self.heap, (at, next(self.order), "retry", conn.vid, str(rid)))
            return
        del self.pending[(conn.vid, rid)]
        self.latency[action].append(time.time() - sent)
        self.codes[action][code] += 1
        if action == "danmaku":
            self.dmk_state[int(target)] = DMK_OK if ok else DMK_REFUSED
        elif ok:
            data = msg.get("data") or {}
            ident = str(data.get("hold") or data.get("coupon") or "")
            self.successes[action].append((conn.vid, target, ident))

    def on_controls(self, fd: int, conn: Conn, controls: list[tuple[int, bytes]]) -> None:
        for opcode, payload in controls:
            if opcode == OP_PING:
                self.pongs += 1
                if conn.send(masked_frame(payload, OP_PONG)):
                    self.watch(fd, conn, IN | OUT)
            elif opcode == OP_CLOSE:
                self.server_closed += 1
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:40].decode(errors="replace").split(":")[0]
                self.closes[f"{code} {reason}".strip()] += 1
                self.drop(fd, conn, why=f"close {code}")
                return

    def drop(self, fd: int, conn: Conn, *, why: str = "", abort: bool = False) -> None:
        if isinstance(conn, SwarmConn) and self.live.get(conn.vid) is conn:
            del self.live[conn.vid]
            if not abort:
                self.lost[why[:40]] += 1
        super().drop(fd, conn, why=why, abort=abort)

    # --- reports -------------------------------------------------------------------------

    def swarm_stats(self) -> dict[str, Any]:
        lat, self.chat_lat = self.chat_lat, array("d")
        return {
            "t": time.time(),
            "cpu_s": _cpu_s(),
            "live": len(self.live),
            "bytes": self.bytes,
            "frames": self.frames_total,
            "msgs": self.msgs_total,
            "sent": dict(self.sent),
            "answers": {k: sum(self.codes[k].values()) for k in SPIKE_ACTIONS},
            "oks": {k: self.codes[k].get("ok", 0) for k in SPIKE_ACTIONS},
            "pending": len(self.pending),
            "errors": sum(self.errors.values()),
            "lost": sum(self.lost.values()),
            "closes": sum(self.closes.values()),
            "popups": {kind: len(seen) for kind, seen in self.popup_seen.items()},
            "likes_seen": self.likes_seen,
            "chat_lat": lat.tobytes(),
        }

    def counts(self) -> dict[str, Any]:
        return {
            "live": len(self.live),
            "sent": dict(self.sent),
            "answers": {k: sum(c.values()) for k, c in self.codes.items()},
            "popups": {kind: len(seen) for kind, seen in self.popup_seen.items()},
            "likes_seen": self.likes_seen,
        }

    def results(self, with_probes: bool = False) -> dict[str, Any]:
        """Everything so far (the swarm diffs two readings for one phase); `with_probes`: what
        each probe received, per sending process (large: once per check)."""
        missing: dict[str, Counter[str]] = {}
        for action, target, _, _ in self.pending.values():
            missing.setdefault(action, Counter())[target] += 1
        out: dict[str, Any] = {
            "wid": self.wid,
            "codes": {k: dict(c) for k, c in self.codes.items()},
            "latency": {k: a.tobytes() for k, a in self.latency.items()},
            "successes": {
                k: [(self.user(v), t, i) for v, t, i in s] for k, s in self.successes.items()
            },
            "missing": {action: dict(c) for action, c in missing.items()},
            "sent": dict(self.sent),
            "retries": self.retries,
            "unmatched": self.unmatched,
            "errors": dict(self.errors),
            "closes": dict(self.closes),
            "lost": dict(self.lost),
            "recovery": dict(self.recovery),
            "join_lat": self.join_lat.tobytes(),
            "rejoin_lat": self.rejoin_lat.tobytes(),
            "entries": [(self.user(v), target) for v, target in self.entries],
            "dmk_times": self.dmk_times.tobytes(),
            "dmk_state": bytes(self.dmk_state),
            "likes_seen": self.likes_seen,
            "winners_seen": self.winners_seen,
            "live": len(self.live),
            "regress_examples": self.regress_examples,
            "regress_kinds": dict(self.regress_kinds),
        }
        if with_probes:
            out["probes"] = {
                vid: {
                    "first": first,
                    "resynced": vid in self.probe_resynced,
                    "dups": self.probe_dups.get(vid, 0),
                    "regress": self.probe_regress.get(vid, 0),
                    "got": {w: bytes(m) for w, m in self.probe_maps.get(vid, {}).items()},
                    "connected": vid in self.live,
                }
                for vid, first in self.probe_first.items()
            }
        return out


def swarm_worker(ctl: Connection) -> None:
    """Entry point of a swarm client process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the swarm stops us through the pipe
    loop = SwarmLoop(ctl)
    try:
        loop.run()
    except (EOFError, BrokenPipeError):
        pass  # the swarm went away
    finally:
        loop.close_all()
