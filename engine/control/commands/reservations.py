"""Reservation commands: the host reserves (or cancels) a scheduled room for a user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.control.registry import ADMIN, Call, Command, Params, Result, UserId
from engine.errors import ErrorCode

if TYPE_CHECKING:
    from engine.node import Engine


class ReservationParams(Params):
    user: UserId = Field(description="the user who reserves")


class ReservationResult(Result):
    room: str
    user: str
    reserved: bool = Field(description="whether the user now holds a reservation")
    new: bool = Field(description="whether this call changed anything")
    reservations: int = Field(description="reservations of the room now")
    starts_at: int | None = None
    reminded: bool = Field(description="the reminder was due already and was written now")


async def _add(engine: Engine, call: Call) -> Any:
    return await engine.reserve(call.room, call.params.user)


async def _cancel(engine: Engine, call: Call) -> Any:
    return await engine.cancel_reservation(call.room, call.params.user)


def commands() -> list[Command]:
    return [
        Command("reserve", "Reserve a scheduled room for a user.", ReservationParams,
                ReservationResult, _add, roles=ADMIN,
                errors=(ErrorCode.ROOM_NOT_FOUND, ErrorCode.BAD_STATE),
                doc="Idempotent per user. Writes `reservation.created` for a new one; "
                    "`reminder.due` follows `reminder_lead_s` before the start (at once if that "
                    "time has passed). Viewers reserve themselves with the `reserve` message."),
        Command("cancel_reservation", "Withdraw a user's reservation.", ReservationParams,
                ReservationResult, _cancel, roles=ADMIN, errors=(ErrorCode.ROOM_NOT_FOUND,),
                doc="Writes `reservation.cancelled` when there was one."),
    ]  # fmt: skip
