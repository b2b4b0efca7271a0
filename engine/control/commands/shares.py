"""`share_recorded`: the host reports a share (the share-for-coupon hook)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from engine.control.registry import ADMIN, Call, Command, Params, Result, UserId

if TYPE_CHECKING:
    from engine.node import Engine


class ShareParams(Params):
    share_id: UserId = Field(description="the host's id of the share: the idempotency key")
    user: UserId = Field(description="who shared")
    channel: (
        Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")] | None
    ) = Field(None, description="where it was shared, e.g. wechat")
    batch: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,48}$")] | None = Field(
        None, description="grant a coupon of this batch (default: the room's share coupon)"
    )


class ShareResult(Result):
    room: str
    share_id: str
    user: str
    new: bool = Field(description="false: this share id was recorded before; nothing changed")
    coupon: dict[str, Any] | None = Field(
        None,
        description="the coupon grant for the share: {batch, ok, code, coupon?, replayed?, "
        "terms...}; null when no batch applies",
    )


async def _record(engine: Engine, call: Call) -> Any:
    p = call.params
    return await engine.record_share(call.room, p.share_id, p.user, p.channel, p.batch)


def commands() -> list[Command]:
    return [
        Command("share_recorded", "Record a user's share of the room (idempotent by share id).",
                ShareParams, ShareResult, _record, roles=ADMIN,
                doc="The first report of a share id writes a `share.recorded` event; repeats "
                    "answer `new: false`. Share-for-coupon: with `batch` (or a room share coupon, "
                    "`set_share_coupon`) the user gets a coupon through the claim script: one "
                    "per user and batch, the same answer for a repeated share id "
                    "(`coupon.granted`, source `share`)."),
    ]  # fmt: skip
