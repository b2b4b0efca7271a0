"""Room lifecycle commands: create, get, update, start, end, rehearsal, stream notice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from engine.control.registry import (
    ADMIN,
    Call,
    Command,
    LongText,
    Message,
    Millis,
    NoParams,
    Params,
    Result,
    ShortText,
    Title,
    UserId,
)
from engine.errors import ErrorCode

if TYPE_CHECKING:
    from engine.node import Engine

Url = Annotated[str, Field(max_length=1000, pattern=r"^https?://\S+$", description="http(s) URL")]


class RoomCreate(Params):
    title: Title = Field(description="the room's title")
    anchor: UserId = Field(description="the anchor's user id (the one whose token runs the room)")
    anchor_name: ShortText | None = Field(None, description="the anchor's display name")
    starts_at: Millis | None = Field(
        None, description="scheduled start (ms since the epoch); reminders are due before it"
    )
    cover: Url | None = Field(None, description="cover image URL")
    preview: LongText | None = Field(None, description="preview text shown before the start")


class RoomUpdate(Params):
    title: Title | None = Field(None, description="the room's title")
    anchor_name: ShortText | None = Field(None, description="the anchor's display name")
    starts_at: Millis | None = Field(
        None, description="new scheduled start (only while scheduled); reminders start over"
    )
    cover: Url | None = Field(None, description="cover image URL")
    preview: LongText | None = Field(None, description="preview text shown before the start")


class Rehearsal(Params):
    on: bool = Field(description="true: only staff tokens may join; false: everyone may")


class StreamNotice(Params):
    state: Literal["interrupted", "resumed"] = Field(description="what happened to the stream")
    text: Message | None = Field(None, description="a message for the viewers")


class RoomInfo(Result):
    room: str
    status: Literal["scheduled", "live", "ended"]
    title: str
    anchor: str
    anchor_name: str | None = None
    starts_at: int | None = None
    cover: str | None = None
    preview: str | None = None
    rehearsal: bool = False
    created_at: int | None = None
    started_at: int | None = None
    ended_at: int | None = None
    reservations: int = 0


class Notice(Result):
    id: str
    kind: str
    data: dict[str, Any]
    ts: int
    ttl: float | None = None


async def _create(engine: Engine, call: Call) -> Any:
    return await engine.create_room(call.room, **call.params.model_dump())


async def _get(engine: Engine, call: Call) -> Any:
    return await engine.room_info(call.room)


async def _update(engine: Engine, call: Call) -> Any:
    return await engine.update_room(call.room, **call.params.model_dump())


async def _start(engine: Engine, call: Call) -> Any:
    return await engine.start_room(call.room)


async def _end(engine: Engine, call: Call) -> Any:
    return await engine.end_room(call.room)


async def _rehearsal(engine: Engine, call: Call) -> Any:
    return await engine.set_rehearsal(call.room, call.params.on)


async def _stream_notice(engine: Engine, call: Call) -> Any:
    return await engine.stream_notice(call.room, call.params.state, call.params.text)


_MISSING = (ErrorCode.ROOM_NOT_FOUND,)
_STATE = (ErrorCode.ROOM_NOT_FOUND, ErrorCode.BAD_STATE)


def commands() -> list[Command]:
    return [
        Command("create_room", "Create a room: title, anchor, scheduled start, cover, preview.",
                RoomCreate, RoomInfo, _create, roles=ADMIN, creates=True, path="/rooms/{room}",
                errors=(ErrorCode.ROOM_EXISTS,),
                doc="The room starts `scheduled`. With `starts_at`, the reminders of its "
                    "reservations are due `reminder_lead_s` before it. Writes `room.created`."),
        Command("get_room", "The room's record, status and number of reservations.",
                NoParams, RoomInfo, _get, read_only=True, path="/rooms/{room}", errors=_MISSING),
        Command("update_room", "Change title, anchor name, scheduled start, cover or preview.",
                RoomUpdate, RoomInfo, _update, path="/rooms/{room}/update", errors=_STATE,
                doc="Only the given fields change. A new `starts_at` (while scheduled) "
                    "reschedules the reminders, which start over. Writes `room.updated`."),
        Command("start_room", "Go live: scheduled -> live.", NoParams, RoomInfo, _start,
                path="/rooms/{room}/start", errors=_STATE,
                doc="Ends rehearsal, resets the session's live numbers, cancels pending "
                    "reminders, shows viewers a `room` popup `{status: live}`; `room.started`."),
        Command("end_room", "End the room: scheduled or live -> ended.", NoParams, RoomInfo, _end,
                path="/rooms/{room}/end", errors=_STATE,
                doc="Viewers get a `room` popup `{status: ended}`; writes `room.ended`."),
        Command("set_rehearsal", "Rehearsal mode on or off: a test live for staff tokens only.",
                Rehearsal, RoomInfo, _rehearsal, path="/rooms/{room}/rehearsal", errors=_STATE,
                doc="While on, viewer tokens cannot join (close code 4011 `rehearsal`) and "
                    "viewers already in the room are closed within about a second. "
                    "Writes `room.rehearsal`."),
        Command("stream_notice", "Tell viewers the stream is interrupted, or resumed.",
                StreamNotice, Notice, _stream_notice,
                doc="A popup of kind `stream` with `{state, text?}` to every viewer; "
                    "`interrupted` stays for later joiners until `resumed` replaces it."),
    ]  # fmt: skip
