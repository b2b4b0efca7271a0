"""Lottery and follow commands (engine/features/lottery_node.py, docs/lottery.md): create, draw,
cancel, read lotteries and their entrants, submit a winner's claim; follow numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from engine.control.registry import (
    ADMIN,
    Call,
    Command,
    Millis,
    NoParams,
    Params,
    Result,
    ShortText,
    Title,
    UserId,
)
from engine.errors import ErrorCode
from engine.store.store import now_ms

if TYPE_CHECKING:
    from engine.node import Engine

LotteryId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,48}$", description="a lottery id")]


class CreateLottery(Params):
    prize: Title = Field(description="what the winners get, as viewers see it")
    winners: int = Field(ge=1, le=10_000, description="how many winners (N)")
    entry: Literal["keyword", "follow", "both"] = Field(
        description="keyword: send `keyword` as a danmaku; follow: follow the anchor; both: "
        "either (an entrant counts once)"
    )
    keyword: ShortText | None = Field(None, description="the keyword (keyword and both)")
    draw_at: Millis | None = Field(None, description="draw then (ms); none: draw_lottery")
    draw_in_s: float | None = Field(
        None, ge=1, le=7 * 86400, description="or: draw this long from now"
    )
    claim_s: float | None = Field(
        None, ge=60, le=30 * 86400, description="a winner's claim window (default 24 h)"
    )
    lottery: LotteryId | None = Field(None, description="the lottery id (default: generated)")


class LotteryParams(Params):
    lottery: LotteryId


class CancelLottery(Params):
    lottery: LotteryId
    reason: Annotated[str, Field(max_length=200)] | None = Field(None, description="why")


class EntrantsParams(Params):
    lottery: LotteryId
    offset: int = Field(0, ge=0, le=10**9, description="skip this many (byte order)")
    limit: int = Field(100_000, ge=1, le=100_000, description="at most this many")


class ClaimPrize(Params):
    lottery: LotteryId
    user: UserId = Field(description="the winner")
    ref: (
        Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")] | None
    ) = Field(None, description="your reference (order, shipping address id), kept with the claim")


class Winner(Result):
    user: str
    rank: int
    state: str = Field(description="won, claimed or expired")
    claim_until: int
    name: str | None = None
    ref: str | None = None


class LotteryInfo(Result):
    lottery: str
    state: str | None = Field(None, description="open, frozen, drawn or cancelled")
    prize: str | None = None
    winners_wanted: int
    entry: str | None = None
    keyword: str | None = None
    draw_at: int | None = None
    claim_s: float
    entrants: int
    commitment: str | None = Field(None, description="SHA-256 of the seed, public from creation")
    created_at: int | None = None
    frozen_at: int | None = None
    drawn_at: int | None = None
    claim_until: int | None = None
    algorithm: str
    seed: str | None = Field(None, description="revealed by the draw")
    digest: str | None = Field(None, description="SHA-256 of the frozen, sorted entrant list")
    key: str | None = Field(None, description="the draw key derived from seed and digest")
    winners: list[Winner] = Field(description="in rank order (after the draw)")


class LotteryList(Result):
    lotteries: list[LotteryInfo]


class Entrants(Result):
    lottery: str
    state: str | None = None
    entrants: int = Field(description="entrants in all")
    offset: int
    users: list[str] = Field(description="this page, in byte order (the draw's order)")
    frozen: bool = Field(description="the list can no longer change (frozen or drawn)")


class PrizeClaimed(Result):
    lottery: str
    user: str
    rank: int
    claim_until: int
    already: bool = Field(description="claimed before: nothing changed")


class FollowNumbers(Result):
    new_follows: int = Field(description="new follows this session (since start_room)")
    followers: int = Field(description="users who ever followed from this room")


async def _create(engine: Engine, call: Call) -> Any:
    p = call.params
    if p.draw_at is not None and p.draw_in_s is not None:
        raise ValueError("give draw_at or draw_in_s, not both")
    draw_at = p.draw_at if p.draw_in_s is None else now_ms() + int(p.draw_in_s * 1000)
    return await engine.lottery.create(
        call.room, prize=p.prize, winners=p.winners, entry=p.entry, keyword=p.keyword,
        draw_at=draw_at, claim_s=p.claim_s, lottery=p.lottery,
    )  # fmt: skip


async def _draw(engine: Engine, call: Call) -> Any:
    return await engine.lottery.draw(call.room, call.params.lottery)


async def _cancel(engine: Engine, call: Call) -> Any:
    return await engine.lottery.cancel(call.room, call.params.lottery, call.params.reason or "")


async def _status(engine: Engine, call: Call) -> Any:
    return await engine.lottery.status(call.room, call.params.lottery)


async def _list(engine: Engine, call: Call) -> Any:
    return {"lotteries": await engine.lottery.list(call.room)}


async def _entrants(engine: Engine, call: Call) -> Any:
    p = call.params
    return await engine.lottery.entrants(call.room, p.lottery, offset=p.offset, limit=p.limit)


async def _claim(engine: Engine, call: Call) -> Any:
    p = call.params
    return await engine.lottery.claim(call.room, p.lottery, p.user, p.ref or "")


async def _follows(engine: Engine, call: Call) -> Any:
    return await engine.follows.numbers(call.room)


_LOTTERY = (ErrorCode.UNKNOWN_LOTTERY,)


def commands() -> list[Command]:
    return [
        Command("create_lottery", "Start a lottery: prize, winners, entry mode, draw time.",
                CreateLottery, LotteryInfo, _create, errors=(ErrorCode.LOTTERY_EXISTS,),
                doc="A secret seed is made and its SHA-256 (`commitment`) published at once, in "
                    "`lottery.created` and the viewers' `lottery` popup. Entries (once per user) "
                    "by keyword danmaku, by `follow`, or `lottery_enter`, per `entry`; counted "
                    "live (`lottery_entrants`). With `draw_at`/`draw_in_s` the durable "
                    "scheduler draws it; entries at or after that time do not count."),
        Command("draw_lottery", "Draw a lottery now: freeze the entries, pick the winners.",
                LotteryParams, LotteryInfo, _draw, errors=(*_LOTTERY, ErrorCode.BAD_STATE),
                doc="min(N, entrants) distinct winners, picked in Lua from the frozen list and "
                    "the seed (docs/lottery.md); the room gets a `lottery_winners` popup with "
                    "the seed and the list digest; each winner a `lottery.won` event and a claim "
                    "window. Idempotent: a drawn lottery answers its result."),
        Command("cancel_lottery", "Call off a lottery that has not been drawn.", CancelLottery,
                LotteryInfo, _cancel, errors=(*_LOTTERY, ErrorCode.BAD_STATE),
                doc="Viewers get a `lottery_cancelled` popup. Writes `lottery.cancelled`."),
        Command("lottery_status", "A lottery: settings, entrants, commitment; after the draw, "
                "seed, digest and winners.", LotteryParams, LotteryInfo, _status,
                errors=_LOTTERY),
        Command("list_lotteries", "The room's lotteries.", NoParams, LotteryList, _list,
                read_only=True, path="/rooms/{room}/lotteries"),
        Command("lottery_entrants", "A lottery's entrants, in the draw's (byte) order.",
                EntrantsParams, Entrants, _entrants, errors=_LOTTERY,
                doc="After the draw this is the frozen list the winners were drawn from: save "
                    "it with `lottery_status` and check the draw with `engine lottery verify`."),
        Command("claim_prize", "A winner claimed the prize (the host submits it).", ClaimPrize,
                PrizeClaimed, _claim, roles=ADMIN,
                errors=(*_LOTTERY, ErrorCode.NOT_A_WINNER, ErrorCode.CLAIM_EXPIRED),
                doc="Within the winner's claim window (`claim_until`); idempotent (`already`). "
                    "Writes `lottery.claimed`; a prize not claimed in time expires with "
                    "`lottery.expired`."),
        Command("follow_numbers", "New follows this session and followers from this room.",
                NoParams, FollowNumbers, _follows, read_only=True, path="/rooms/{room}/follows"),
    ]  # fmt: skip
