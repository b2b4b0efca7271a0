"""Danmaku, likes, ping, pin/unpin and leave."""

from __future__ import annotations

from engine.errors import ErrorCode, ProtocolError
from engine.fanout.room import LocalRoom
from engine.features.chat import Chat
from engine.features.likes import LikeCounter
from engine.gateway.connection import ViewerConnection
from engine.gateway.dispatch import Dispatcher, reply, send_to
from engine.protocol import server
from engine.protocol.client import Danmaku, Leave, Like, Pin, Ping, Unpin
from engine.store.store import now_ms


def register(dispatcher: Dispatcher, chat: Chat, likes: LikeCounter) -> None:
    async def danmaku(conn: ViewerConnection, room: LocalRoom, message: Danmaku) -> None:
        item = await chat.send(room.id, conn.identity, message, room.phrases)
        reply(conn, message.rid, id=item["id"], seq=item["seq"])

    async def like(conn: ViewerConnection, room: LocalRoom, message: Like) -> None:
        likes.add(room.id, message.count)
        reply(conn, message.rid)

    async def ping(conn: ViewerConnection, room: LocalRoom, message: Ping) -> None:
        send_to(conn, server.pong(message.rid, now_ms()))

    async def pin(conn: ViewerConnection, room: LocalRoom, message: Pin) -> None:
        _require_staff(conn)
        pinned = await chat.pin(room.id, message.text, conn.identity)
        reply(conn, message.rid, id=pinned["id"])

    async def unpin(conn: ViewerConnection, room: LocalRoom, message: Unpin) -> None:
        _require_staff(conn)
        await chat.unpin(room.id)
        reply(conn, message.rid)

    async def leave(conn: ViewerConnection, room: LocalRoom, message: Leave) -> None:
        conn.close_normally("leave")

    dispatcher.register(Danmaku, danmaku)
    dispatcher.register(Like, like)
    dispatcher.register(Ping, ping)
    dispatcher.register(Pin, pin)
    dispatcher.register(Unpin, unpin)
    dispatcher.register(Leave, leave)


def _require_staff(conn: ViewerConnection) -> None:
    if not conn.identity.role.is_staff:
        raise ProtocolError("only the anchor can do this", code=ErrorCode.FORBIDDEN)
