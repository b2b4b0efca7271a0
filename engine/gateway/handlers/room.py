"""Danmaku, likes, ping, pin/unpin and leave. With the anti-fraud guard, a danmaku and a like are
judged before anything else happens (docs/antifraud.md)."""

from __future__ import annotations

import dataclasses

from engine.antifraud.guard import AntiFraud
from engine.errors import ErrorCode, ProtocolError
from engine.fanout.room import LocalRoom
from engine.features.chat import Chat, chat_item
from engine.features.likes import LikeCounter
from engine.gateway.connection import ViewerConnection
from engine.gateway.dispatch import Dispatcher, reply, send_to
from engine.protocol import server
from engine.protocol.client import Danmaku, Leave, Like, Pin, Ping, Unpin
from engine.store.store import now_ms


def register(
    dispatcher: Dispatcher, chat: Chat, likes: LikeCounter, guard: AntiFraud | None = None
) -> None:
    def publish(conn: ViewerConnection, room: LocalRoom, message: Danmaku) -> None:
        """Queue the danmaku; the sender's result follows when its batch is out. The read loop
        does not wait for Redis, so a sender's next frames are read meanwhile."""
        rid = message.rid

        def done(seq: int | None, error: Exception | None) -> None:
            if error is not None:
                send_to(conn, server.error(ErrorCode.UNAVAILABLE, "try again", rid))
            else:
                reply(conn, rid, id=item["id"], seq=seq)

        item = chat.send_nowait(room.id, conn.identity, message, room.phrases, done)

    async def danmaku(conn: ViewerConnection, room: LocalRoom, message: Danmaku) -> None:
        visitor = conn.visitor
        if guard is None or visitor is None:
            publish(conn, room, message)
            return
        verdict = await guard.danmaku(visitor, message.text)
        if verdict.shadow:  # muted: the sender alone sees it, as if it had gone out
            item = chat_item(conn.identity, message, room.phrases, chat.next_id(), now_ms())
            send_to(conn, server.chat([item]))
            reply(conn, message.rid, id=item["id"], seq=room.position)
            return
        if verdict.text is not None:
            message = dataclasses.replace(message, text=verdict.text)
        if not verdict.flagged:
            publish(conn, room, message)
            return
        item = await chat.send(room.id, conn.identity, message, room.phrases)  # rare: wait for
        reply(conn, message.rid, id=item["id"], seq=item["seq"])  # the seq the host is told
        await guard.flagged(visitor, item, verdict.flagged)

    async def like(conn: ViewerConnection, room: LocalRoom, message: Like) -> None:
        if guard is not None and conn.visitor is not None:
            await guard.like(conn.visitor, message.count)  # refused likes are never counted
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
