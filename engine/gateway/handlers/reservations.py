"""`reserve` and `unreserve`: a viewer reserves the room it is in (a scheduled room's preview)."""

from __future__ import annotations

from engine.errors import EngineError, ProtocolError, StoreUnavailable
from engine.fanout.room import LocalRoom
from engine.features.reservations import Reservations
from engine.gateway.connection import ViewerConnection
from engine.gateway.dispatch import Dispatcher, reply
from engine.protocol.client import Reserve, Unreserve


def register(dispatcher: Dispatcher, reservations: Reservations) -> None:
    async def reserve(conn: ViewerConnection, room: LocalRoom, message: Reserve) -> None:
        try:
            result = await reservations.reserve(room.id, conn.identity.user, "viewer")
        except StoreUnavailable:
            raise
        except EngineError as exc:  # room_not_found, bad_state: an error frame, not a crash
            raise ProtocolError(exc.message, code=exc.code) from None
        reply(conn, message.rid, new=result["new"], starts_at=result["starts_at"])

    async def unreserve(conn: ViewerConnection, room: LocalRoom, message: Unreserve) -> None:
        try:
            result = await reservations.cancel(room.id, conn.identity.user, "viewer")
        except StoreUnavailable:
            raise
        except EngineError as exc:
            raise ProtocolError(exc.message, code=exc.code) from None
        reply(conn, message.rid, removed=result["new"])

    dispatcher.register(Reserve, reserve)
    dispatcher.register(Unreserve, unreserve)
