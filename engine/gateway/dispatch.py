"""What each client message does. The protocol has already validated it; this maps it onto the
features and answers the sender."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import ErrorCode, ProtocolError
from engine.features.chat import Chat
from engine.features.likes import LikeCounter
from engine.gateway.connection import ViewerConnection
from engine.protocol import server
from engine.protocol.client import ClientMessage, Danmaku, Leave, Like, Pin, Ping, Unpin
from engine.protocol.wsframe import encode_frame
from engine.store.store import now_ms

if TYPE_CHECKING:
    from engine.fanout.room import LocalRoom


class Dispatcher:
    def __init__(self, chat: Chat, likes: LikeCounter) -> None:
        self._chat = chat
        self._likes = likes

    async def handle(self, conn: ViewerConnection, room: LocalRoom, message: ClientMessage) -> None:
        if isinstance(message, Danmaku):
            item = await self._chat.send(room.id, conn.identity, message, room.phrases)
            _answer(conn, message.rid, id=item["id"])
        elif isinstance(message, Like):
            self._likes.add(room.id, message.count)
            _answer(conn, message.rid)
        elif isinstance(message, Ping):
            conn.send_now(encode_frame(conn.codec, server.pong(message.rid, now_ms())))
        elif isinstance(message, Pin | Unpin):
            if not conn.identity.role.is_staff:
                raise ProtocolError("only the anchor can pin", code=ErrorCode.FORBIDDEN)
            if isinstance(message, Pin):
                pinned = await self._chat.pin(room.id, message.text, conn.identity)
                _answer(conn, message.rid, id=pinned["id"])
            else:
                await self._chat.unpin(room.id)
                _answer(conn, message.rid)
        elif isinstance(message, Leave):
            conn.close_normally("leave")


def _answer(conn: ViewerConnection, rid: str | int | None, **data: Any) -> None:
    """The sender's own result, at once; only when it asked (sent a request id)."""
    if rid is not None:
        conn.send_now(encode_frame(conn.codec, server.result(rid, ok=True, **data)))
