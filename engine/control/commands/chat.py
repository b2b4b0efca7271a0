"""Chat commands: pin / unpin a message, quick phrases, the anchor's reply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.control.registry import (
    Call,
    Command,
    Message,
    NoParams,
    Ok,
    Params,
    Result,
    ShortText,
    UserId,
)
from engine.errors import EngineError, ErrorCode
from engine.identity import Role

if TYPE_CHECKING:
    from engine.node import Engine


class PinParams(Params):
    text: Message = Field(description="the message")


class PhrasesParams(Params):
    phrases: list[Message] = Field(
        max_length=50, description="the room's quick phrases; a phrase's id is its position"
    )


class ReplyParams(Params):
    text: Message = Field(description="the message")
    reply_to: UserId | None = Field(None, description="the viewer answered (an @user reply)")
    user: UserId | None = Field(
        None,
        description="post as this user (default: the anchor token's user, else the "
        "room's anchor); an anchor token may only post as itself",
    )
    name: ShortText | None = Field(
        None, description="display name (default: the room's anchor name)"
    )


class Pinned(Result):
    id: str
    text: str
    by: str | None = None
    ts: int


class Phrase(Result):
    id: int
    text: str


class Phrases(Result):
    phrases: list[Phrase]


class ReplyTo(Result):
    user: str


class ChatItem(Result):
    id: str
    user: str
    name: str
    text: str
    ts: int
    role: str | None = None
    reply_to: ReplyTo | None = None


async def _pin(engine: Engine, call: Call) -> Any:
    return await engine.pin(call.room, call.params.text, by=call.caller.user)


async def _unpin(engine: Engine, call: Call) -> Any:
    await engine.unpin(call.room)
    return Ok()


async def _phrases(engine: Engine, call: Call) -> Any:
    return {"phrases": await engine.set_quick_phrases(call.room, call.params.phrases)}


async def _reply(engine: Engine, call: Call) -> Any:
    p, caller = call.params, call.caller
    user, name = p.user, p.name
    if caller.role is Role.ANCHOR:
        if user is not None and user != caller.user:
            raise EngineError("an anchor token posts as its own user", code=ErrorCode.FORBIDDEN)
        user, name = caller.user, name or caller.name
    if user is None:
        record = await engine.room_info(call.room)
        user, name = record["anchor"], name or record.get("anchor_name")
    return await engine.reply(call.room, p.text, user=user, name=name, reply_to=p.reply_to)


def commands() -> list[Command]:
    return [
        Command("pin", "Pin a message for every viewer (and later joiners).", PinParams, Pinned,
                _pin),
        Command("unpin", "Remove the pinned message.", NoParams, Ok, _unpin),
        Command("set_phrases", "Replace the room's quick phrases.", PhrasesParams, Phrases,
                _phrases, doc="Viewers send a phrase by its id (`danmaku` with `phrase`)."),
        Command("reply", "Post a chat message as the anchor, optionally an @user reply.",
                ReplyParams, ChatItem, _reply, errors=(ErrorCode.ROOM_NOT_FOUND,),
                doc="Without `user`, an admin or operator posts as the room's anchor (the room "
                    "must have been created then)."),
    ]  # fmt: skip
