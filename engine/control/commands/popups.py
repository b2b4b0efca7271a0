"""Popup commands: push a popup (product card, notice, ...) to every viewer, clear it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.control.commands.rooms import Notice
from engine.control.registry import Call, Command, NoParams, Ok, Params

if TYPE_CHECKING:
    from engine.node import Engine


class PopupPush(Params):
    kind: str = Field(
        min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_.-]*$",
        description="what the client shows, e.g. product, notice, coupon",
    )  # fmt: skip
    data: dict[str, Any] = Field(default_factory=dict, description="the popup's content")
    ttl_s: float | None = Field(
        None,
        gt=0,
        le=86400,
        description="later joiners see it for this long (default: until replaced or cleared)",
    )


async def _push(engine: Engine, call: Call) -> Any:
    p = call.params
    return await engine.push_popup(call.room, p.kind, p.data, ttl_s=p.ttl_s)


async def _clear(engine: Engine, call: Call) -> Any:
    await engine.clear_popup(call.room)
    return Ok()


def commands() -> list[Command]:
    return [
        Command("push_popup", "Show a popup to every viewer now.", PopupPush, Notice, _push,
                doc="The current popup is part of the room snapshot: viewers who join while it "
                    "lasts see it too."),
        Command("clear_popup", "Forget the current popup for later joiners.", NoParams, Ok,
                _clear),
    ]  # fmt: skip
