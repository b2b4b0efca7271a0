"""Client message type -> handler. Each feature registers the handlers for its message types when
the node is wired (`engine/gateway/handlers/`), so adding a feature adds a module rather than
editing a switch. The protocol has already validated every message a handler sees."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from engine.errors import ErrorCode, ProtocolError
from engine.gateway.connection import ViewerConnection
from engine.protocol import server
from engine.protocol.client import ClientMessage, RequestId
from engine.protocol.wsframe import encode_frame

if TYPE_CHECKING:
    from engine.fanout.room import LocalRoom

Handler = Callable[[ViewerConnection, "LocalRoom", Any], Awaitable[None]]


class Dispatcher:
    def __init__(self) -> None:
        self._handlers: dict[type, Handler] = {}

    def register(self, message_type: type, handler: Handler) -> None:
        if message_type in self._handlers:
            raise ValueError(f"{message_type.__name__} already has a handler")
        self._handlers[message_type] = handler

    async def handle(self, conn: ViewerConnection, room: LocalRoom, message: ClientMessage) -> None:
        handler = self._handlers.get(type(message))
        if handler is None:
            raise ProtocolError(f"{message.type} is not served here", code=ErrorCode.UNKNOWN_TYPE)
        await handler(conn, room, message)


def reply(
    conn: ViewerConnection, rid: RequestId, *, ok: bool = True, code: str | None = None, **data: Any
) -> None:
    """The sender's own result, at once (never dropped); only when it sent a request id."""
    if rid is not None:
        conn.send_now(encode_frame(conn.codec, server.result(rid, ok=ok, code=code, **data)))


def send_to(conn: ViewerConnection, message: dict[str, Any]) -> None:
    """Any server message to this viewer alone (never dropped)."""
    conn.send_now(encode_frame(conn.codec, message))
