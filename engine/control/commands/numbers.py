"""`live_numbers`: the numbers the control WebSocket pushes every second, on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.control.registry import Call, Command, NoParams, Result

if TYPE_CHECKING:
    from engine.node import Engine


class SaleNumbers(Result):
    sale: str
    product: str | None = None
    status: str | None = Field(None, description="live or upcoming")
    stock: int | None = None
    left: int | None = Field(None, description="units not yet held or sold")
    held: int | None = Field(None, description="units held, waiting for payment")
    sold: int | None = None
    grabs: int | None = Field(None, description="successful grabs (holds granted)")


class LiveNumbersResult(Result):
    room: str
    online: int = Field(description="viewers connected now, over all nodes")
    peak: int = Field(description="highest online count this session (sampled every second)")
    likes: int = Field(description="the room's like total")
    danmaku_per_s: float = Field(description="danmaku per second over the last 5 whole seconds")
    danmaku_total: int = Field(description="danmaku sent this session")
    sales: list[SaleNumbers] = Field(default_factory=list, description="running flash sales")
    coupons: list[dict[str, Any]] = Field(
        default_factory=list,
        description="live coupon batches: {batch, title, quantity, left, granted, claim_until}",
    )
    lotteries: list[dict[str, Any]] = Field(
        default_factory=list,
        description="lotteries not yet drawn: {lottery, prize, state, entrants, draw_at}",
    )
    new_follows: int = Field(0, description="new follows this session")
    followers: int = Field(0, description="users who ever followed from this room")
    ts: int


async def _numbers(engine: Engine, call: Call) -> Any:
    return await engine.live_numbers(call.room)


def commands() -> list[Command]:
    return [
        Command("live_numbers", "Online, peak, likes, danmaku rate and running sales, now.",
                NoParams, LiveNumbersResult, _numbers, read_only=True, path="/rooms/{room}/numbers",
                doc="The control WebSocket pushes the same object about once a second as the "
                    "`live_numbers` notification."),
    ]  # fmt: skip
