"""`grab` (a flash-sale grab) and `click` (a click on a product card).

A grab is answered with a `result` frame carrying its rid, at once when the node can answer by
itself (sold-out shortcut, overload), else when its batch comes back from Redis: ok with the hold
id and its expiry, or ok=false with a stable code. The read loop does not wait for the answer, so
one viewer's grabs pipeline (up to `seckill_max_inflight_per_viewer` unanswered).
"""

from __future__ import annotations

from typing import Any

from engine.antifraud.guard import AntiFraud
from engine.errors import ErrorCode, ProtocolError, RequestRefused
from engine.fanout.room import LocalRoom
from engine.features.products import Products
from engine.features.seckill import GrabAnswer
from engine.features.seckill_node import Seckill
from engine.gateway.connection import ViewerConnection
from engine.gateway.dispatch import Dispatcher, reply
from engine.protocol import server
from engine.protocol.client import Click, Grab, RequestId
from engine.protocol.codec import Codec
from engine.protocol.wsframe import encode_frame


def grab_result(rid: RequestId, sale: str, qty: int, answer: GrabAnswer) -> dict[str, Any]:
    """The `result` frame of one grab."""
    if answer.ok:
        data: dict[str, Any] = {"sale": sale, "hold": answer.hold,
                                   "expires_at": answer.expires_at, "qty": qty}  # fmt: skip
        if answer.replayed:
            data["replayed"] = True
        return server.result(rid, ok=True, **data)
    if answer.replayed:
        return server.result(rid, ok=False, code=answer.code, sale=sale, replayed=True)
    return server.result(rid, ok=False, code=answer.code, sale=sale)


def result_frame(codec: Codec, message: dict[str, Any]) -> bytes:
    """A whole unmasked frame (hot path: one per grab). A result is short: its frame header is
    two bytes, written here; longer ones take the general path."""
    payload = codec.encode(message)
    if len(payload) < 126:
        return (_TEXT if codec.text_frames else _BINARY) + bytes((len(payload),)) + payload
    return encode_frame(codec, message)


_TEXT, _BINARY = b"\x81", b"\x82"  # FIN + text / binary opcode


def register(
    dispatcher: Dispatcher,
    seckill: Seckill,
    products: Products,
    *,
    max_inflight: int,
    guard: AntiFraud | None = None,
) -> None:
    inflight: dict[ViewerConnection, int] = {}
    held: dict[ViewerConnection, list[bytes]] = {}  # answers of the batch being replied to

    def flush() -> None:
        # Hot path: one socket write per viewer and batch, however many of its grabs it had.
        for conn, frames in held.items():
            conn.send_now(frames[0] if len(frames) == 1 else b"".join(frames))
        held.clear()

    seckill.add_flusher(flush)

    async def grab(conn: ViewerConnection, room: LocalRoom, message: Grab) -> None:
        if message.room is not None and message.room != room.id:
            raise ProtocolError("this connection is in another room", code=ErrorCode.WRONG_ROOM)
        if guard is not None and conn.visitor is not None:  # banned, refused, rate_limited
            refusal = await guard.grab(conn.visitor, message.sale)
            if refusal is not None:
                result = grab_result(message.rid, message.sale, message.qty, GrabAnswer(refusal))
                conn.send_now(encode_frame(conn.codec, result))
                return
        count = inflight.get(conn, 0)
        if count >= max_inflight:
            raise ProtocolError(
                f"more than {max_inflight} grabs unanswered", code=ErrorCode.RATE_LIMITED
            )
        inflight[conn] = count + 1
        rid, sale, qty = message.rid, message.sale, message.qty
        assert rid is not None  # the protocol requires it for grabs

        def answer(result: GrabAnswer) -> None:
            left = inflight.pop(conn, 1) - 1
            if left > 0:
                inflight[conn] = left
            frame = result_frame(conn.codec, grab_result(rid, sale, qty, result))
            frames = held.get(conn)
            if frames is None:
                held[conn] = [frame]
            else:
                frames.append(frame)

        seckill.grab(room.id, sale, conn.identity.user, rid, qty, answer)

    async def click(conn: ViewerConnection, room: LocalRoom, message: Click) -> None:
        try:
            clicks = await products.click(room.id, message.product, conn.identity.user)
        except RequestRefused as exc:
            reply(conn, message.rid, ok=False, code=exc.code.value, product=message.product)
            return
        reply(conn, message.rid, product=message.product, clicks=clicks)

    dispatcher.register(Grab, grab)
    dispatcher.register(Click, click)
