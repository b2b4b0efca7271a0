"""`ViewerConnection.deliver_all` on a real socket pair: a tick's frames leave in one write, and
what a full socket does not take is queued frame by frame with each frame's drop policy, so the
byte stream stays whole and in order."""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

import trio
from wsproto import ConnectionType
from wsproto.connection import Connection as WsConnection

from engine.fanout.outbox import FrameKind
from engine.gateway.connection import ViewerConnection
from engine.identity import Identity, Role
from engine.protocol.codec import JSON
from engine.stats import NodeStats


def connection(sock: socket.socket) -> tuple[ViewerConnection, list[ViewerConnection]]:
    writers: list[ViewerConnection] = []
    gateway: Any = SimpleNamespace(
        config=SimpleNamespace(outbox_max_bytes=1 << 22),
        stats=NodeStats(),
        start_writer=writers.append,
    )
    identity = Identity(user="u", room="r", role=Role.VIEWER, expires_at=2**40)
    conn = ViewerConnection(gateway, sock, WsConnection(ConnectionType.SERVER), JSON, identity,
                            "c1", trio.CancelScope())  # fmt: skip
    conn.outbox = None  # joined: writes go straight to the socket
    return conn, writers


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


async def test_frames_go_out_in_one_write_when_the_socket_takes_them() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    conn, writers = connection(ours)
    frames = [(b"online", FrameKind.COUNTER, "online"), (b"chat!", FrameKind.CHAT, None)]
    conn.deliver_all(frames, b"onlinechat!")
    assert read_all(theirs) == b"onlinechat!" and conn.outbox is None and not writers


async def test_a_full_socket_queues_the_rest_frame_by_frame() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    conn, writers = connection(ours)
    chat = b"c" * 300_000  # more than the socket takes: it is cut inside this frame
    frames = [(b"o" * 10, FrameKind.COUNTER, "online"), (chat, FrameKind.CHAT, None),
              (b"L" * 20, FrameKind.COUNTER, "likes"), (b"P" * 30, FrameKind.CRITICAL, None)]  # fmt: skip
    joined = b"".join(frame for frame, _, _ in frames)
    conn.deliver_all(frames, joined)
    outbox = conn.outbox
    assert outbox is not None and writers == [conn]
    assert len(outbox) == 3  # the chat frame's rest (must finish), the likes, the popup
    # a newer like total replaces the queued one: the queued likes frame kept its key
    assert outbox.push(b"M" * 20, FrameKind.COUNTER, "likes", 0.0) and len(outbox) == 3
    received = read_all(theirs)
    while not outbox.empty:
        sent = ours.send(b"".join(outbox.pending()))
        outbox.consumed(sent)
        received += read_all(theirs)
    received += read_all(theirs)
    assert received == b"o" * 10 + chat + b"M" * 20 + b"P" * 30
