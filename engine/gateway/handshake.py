"""The HTTP upgrade, with wsproto's H11Handshake: read the request, pick the codec, find the
token. `upgrade_params` is pure; the rest is a few lines of socket I/O."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import trio
from wsproto import ConnectionType
from wsproto.events import RejectConnection, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError

from engine.protocol.codec import Codec, choose_codec

VIEWER_PATHS = frozenset({"/v1/ws", "/ws"})


class HandshakeFailed(Exception):
    """The peer went away or spoke something that is not a WebSocket upgrade."""


@dataclass(frozen=True, slots=True)
class UpgradeParams:
    path: str
    token: str | None
    room: str | None
    codec: Codec
    subprotocol: str | None
    since: int | None = None  # a reconnecting viewer's last seq
    epoch: str | None = None  # ... and the room epoch it belongs to
    forwarded_for: str | None = None  # X-Forwarded-For (believed only from trusted proxies)


def upgrade_params(request: Request) -> UpgradeParams:
    """Where the client wants to go and who it says it is (not yet verified)."""
    target = urlsplit(request.target)
    query = parse_qs(target.query, max_num_fields=16)
    token = _first(query.get("token"))
    forwarded: list[str] = []
    for name, value in request.extra_headers:
        lowered = name.lower()
        if lowered == b"authorization" and value[:7].lower() == b"bearer ":
            token = token or value[7:].decode("latin-1").strip()
        elif lowered == b"x-forwarded-for":
            forwarded.append(value.decode("latin-1"))
    codec, subprotocol = choose_codec(request.subprotocols)
    return UpgradeParams(
        path=target.path,
        token=token,
        room=_first(query.get("room")),
        codec=codec,
        subprotocol=subprotocol,
        since=_position(_first(query.get("since"))),
        epoch=_first(query.get("epoch")),
        forwarded_for=",".join(forwarded)[-1024:] or None,  # the right end is the trusted one
    )


def _position(value: str | None) -> int | None:
    """A resume position; anything that is not a non-negative integer means "none" (fresh)."""
    if value is None or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


async def send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)


async def read_request(sock: socket.socket) -> tuple[H11Handshake, Request]:
    """Read until the upgrade request is complete. A bad request is answered (400) here."""
    handshake = H11Handshake(ConnectionType.SERVER)
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            data = sock.recv(16384)
        except BlockingIOError:
            continue
        except OSError as exc:
            raise HandshakeFailed(str(exc)) from None
        if not data:
            raise HandshakeFailed("closed before the upgrade")
        try:
            handshake.receive_data(data)
            for event in handshake.events():
                if isinstance(event, Request):
                    return handshake, event
        except RemoteProtocolError as exc:
            hint = exc.event_hint
            if isinstance(hint, RejectConnection):
                await send_all(sock, handshake.send(hint))
            raise HandshakeFailed(f"not a WebSocket upgrade: {exc}") from None


async def reject(sock: socket.socket, handshake: H11Handshake, status: int) -> None:
    await send_all(sock, handshake.send(RejectConnection(status_code=status, has_body=False)))
