"""A minimal WebSocket client side for load generation: handshake, masked client frames, and two
ways to read server frames.

* `walk()` counts frames by stepping over server frame headers (server frames are unmasked:
  FIN/opcode byte, then a 7-, 16- or 64-bit length); payloads are skipped, not decoded. It keeps
  a few bytes of state per socket, so a frame split over several reads is handled.
* `FrameParser` reassembles whole frames (for the few sockets whose payloads we decode: the
  welcome frame of every socket, latency probes, the publisher's flow-control viewer).

Messages are counted with `count_marker()`: a C-speed `bytes.count` of `MARKER`, one per chat
item in the JSON the engine and the baseline send, correct across read boundaries.
Everything here is synchronous and I/O-free except `Conn.send`, a non-blocking write.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from typing import Final

MARKER: Final = b'"text":'  # one per chat item in a `chat` frame (JSON)
_CARRY: Final = len(MARKER) - 1
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeError(Exception):
    pass


def upgrade_request(host: str, port: int, path: str) -> tuple[bytes, bytes]:
    """The HTTP upgrade request and the Sec-WebSocket-Accept value the server must answer."""
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: json\r\n"
        "\r\n"
    ).encode()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return request, accept


def check_upgrade_response(head: bytes, accept: bytes) -> None:
    """`head`: the response up to (not including) the blank line. Raises HandshakeError."""
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or status[1] != b"101":
        raise HandshakeError(f"upgrade refused: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"sec-websocket-accept") != accept:
        raise HandshakeError("bad Sec-WebSocket-Accept")
    if headers.get(b"sec-websocket-protocol", b"").lower() != b"json":
        raise HandshakeError("server did not choose the json subprotocol")


def masked_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One whole client frame: client frames MUST be masked (RFC 6455 section 5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    if not n:
        return head + key
    mask = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return head + key + masked


def count_marker(carry: bytes, data: bytes) -> int:
    """Markers in `data`, including one that began in `carry` (the previous read's tail)."""
    return data.count(MARKER) + (carry + data[:_CARRY]).count(MARKER)


class Conn:
    """One client socket and its read state."""

    __slots__ = (
        "accept",
        "carry",
        "closed",
        "frames",
        "head",
        "msgs",
        "out",
        "parser",
        "partial",
        "probe",
        "ready",
        "request",
        "skip",
        "sock",
    )

    def __init__(self, sock: socket.socket, request: bytes, accept: bytes, probe: bool) -> None:
        self.sock = sock
        self.request = request
        self.accept = accept
        self.probe = probe
        self.head = b""  # the HTTP response while upgrading
        self.parser: FrameParser | None = FrameParser()  # until the welcome frame (or forever)
        self.ready = False
        self.closed = False
        self.skip = 0  # payload bytes of the current frame still to skip (walk)
        self.partial = b""  # an incomplete frame header (or control frame) kept for the next read
        self.carry = b""  # tail of the previous read, for markers split across reads
        self.frames = 0
        self.msgs = 0
        self.out = b""  # unsent bytes (pongs, publisher messages) while the socket is full

    def send(self, data: bytes) -> bool:
        """Queue `data` behind anything unsent and write what the socket takes. True when
        something is left over (the caller waits for EPOLLOUT)."""
        self.out += data
        return self.flush()

    def flush(self) -> bool:
        if self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                sent = 0
            self.out = self.out[sent:]
        return bool(self.out)


def walk(conn: Conn, data: bytes) -> list[tuple[int, bytes]]:
    """Count the data frames in `data` without decoding payloads (hot path: runs once per read
    per socket). Returns the control frames seen (opcode, payload), usually none."""
    n = len(data)
    skip = conn.skip
    if skip >= n:
        conn.skip = skip - n
        return []
    if conn.partial:  # (skip is 0 whenever partial is set)
        data = conn.partial + data
        n = len(data)
        conn.partial = b""
    pos, frames = skip, 0
    controls: list[tuple[int, bytes]] = []
    while pos < n:
        left = n - pos
        if left < 2:
            conn.partial = data[pos:]
            break
        b0, length = data[pos], data[pos + 1] & 0x7F
        if length < 126:
            hl = 2
        elif length == 126:
            if left < 4:
                conn.partial = data[pos:]
                break
            hl, length = 4, int.from_bytes(data[pos + 2 : pos + 4], "big")
        else:
            if left < 10:
                conn.partial = data[pos:]
                break
            hl, length = 10, int.from_bytes(data[pos + 2 : pos + 10], "big")
        opcode = b0 & 0x0F
        if opcode & 0x8:  # control frames are small: keep them until whole, then report them
            if left < hl + length:
                conn.partial = data[pos:]
                break
            controls.append((opcode, data[pos + hl : pos + hl + length]))
        elif opcode:  # text or binary (a continuation frame is not a new message)
            frames += 1
        pos += hl + length
    conn.skip = pos - n if pos > n else 0
    conn.frames += frames
    return controls


class FrameParser:
    """Whole server frames out of a byte stream (for the sockets whose payloads we read)."""

    __slots__ = ("buf", "fragments")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.fragments: list[bytes] = []

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Complete frames as (opcode, payload); fragmented messages come out reassembled with
        the opcode of their first frame."""
        buf = self.buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, length = buf[pos], buf[pos + 1] & 0x7F
            hl = 2
            if length == 126:
                if n - pos < 4:
                    break
                hl, length = 4, int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif length == 127:
                if n - pos < 10:
                    break
                hl, length = 10, int.from_bytes(buf[pos + 2 : pos + 10], "big")
            if n - pos < hl + length:
                break
            payload = bytes(buf[pos + hl : pos + hl + length])
            pos += hl + length
            opcode, fin = b0 & 0x0F, b0 & 0x80
            if opcode & 0x8:
                out.append((opcode, payload))
            elif not fin:
                self.fragments.append(bytes([opcode]) + payload if opcode else payload)
            elif self.fragments:
                first = self.fragments[0]
                body = first[1:] + b"".join(self.fragments[1:]) + payload
                out.append((first[0], body))
                self.fragments = []
            else:
                out.append((opcode, payload))
        del buf[:pos]
        return out

    def take_rest(self) -> bytes:
        """Unparsed bytes (to hand over to `walk` when this socket stops being parsed)."""
        rest = bytes(self.buf)
        self.buf.clear()
        return rest
