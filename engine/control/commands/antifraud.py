"""Anti-fraud commands (docs/antifraud.md): bans, mutes and grab refusals, keyword lists, limit
overrides and bot rule modes, for one room (anchors and admins) or for every room (admins).
The handlers call `engine.antifraud.moderation`; a change reaches every node within a second."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import Field, field_validator

from engine.antifraud.bots import RULE_NAMES, Mode
from engine.antifraud.limits import ACTIONS, DIMENSIONS, MAX_BURST, MAX_PERIOD_S, Limit
from engine.antifraud.moderation import MAX_DURATION_S, Moderation
from engine.antifraud.state import Kind
from engine.control.registry import ADMIN, Call, Command, NoParams, Params, Result, UserId
from engine.errors import EngineError, ErrorCode

if TYPE_CHECKING:
    from engine.node import Engine

Reason = Annotated[str, Field(max_length=200)]
Word = Annotated[str, Field(min_length=1, max_length=64)]
WordActionName = Literal["block", "mask", "flag"]
ActionName = Literal["join", "danmaku", "like", "grab", "coupon", "lottery"]
DimensionName = Literal["user", "ip", "device"]
RuleName = Literal[
    "accounts_per_ip", "accounts_per_device", "conns_per_ip", "conns_per_device", "join_burst",
    "duplicate_text", "regular_timing", "like_burst", "early_grab", "score",
]  # fmt: skip
ModeName = Literal["off", "shadow", "mute", "refuse_grabs", "ban"]
assert set(get_args(ActionName)) == set(ACTIONS) and set(get_args(DimensionName)) == set(DIMENSIONS)
assert set(get_args(RuleName)) == set(RULE_NAMES) and set(get_args(ModeName)) == set(Mode)


class SanctionParams(Params):
    user: UserId
    duration_s: float | None = Field(
        None, gt=0, le=MAX_DURATION_S, description="how long (default: until lifted)"
    )
    reason: Reason | None = Field(None, description="why (the banned user is told)")


class MuteParams(SanctionParams):
    shadow: bool = Field(
        False, description="shadow mute: the user still sees its own danmaku and cannot tell"
    )


class UserParams(Params):
    user: UserId


class KeywordsAdd(Params):
    words: list[Word] = Field(min_length=1, max_length=5000, description="words or phrases")
    action: WordActionName = Field(
        description="block: refuse the message; mask: replace the word by ***; flag: send it "
        "and write danmaku.flagged for review"
    )


class KeywordsRemove(Params):
    words: list[Word] = Field(min_length=1, max_length=5000, description="words to remove")


class SetLimit(Params):
    action: ActionName = Field(description="the limited action")
    dimension: DimensionName = Field(description="counted per user, per IP or per device")
    rate: float | None = Field(None, gt=0, le=1e9, description="units per period")
    per_s: float | None = Field(None, gt=0, le=MAX_PERIOD_S, description="the period, seconds")
    burst: int | None = Field(None, ge=1, le=MAX_BURST, description="units allowed at once")
    off: bool = Field(False, description="no limit in this room for this action and dimension")

    @field_validator("rate", "per_s")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be finite")
        return value


class SetRule(Params):
    rule: RuleName = Field(description="the bot rule")
    mode: ModeName | None = Field(
        None, description="off, shadow (log only), mute, refuse_grabs or ban (default: keep)"
    )
    threshold: float | None = Field(
        None, ge=-1e9, le=1e9, description="the rule's threshold (default: keep)"
    )
    reset: bool = Field(False, description="drop this scope's override of the rule")


class SanctionOut(Result):
    user: str
    kind: Literal["ban", "mute", "nograb"]
    room: str | None = None
    until: int | None = Field(None, description="ms since the epoch; null: until lifted")
    reason: str = ""
    by: str = ""
    at: int = 0
    shadow: bool | None = None


class Lifted(Result):
    user: str
    kind: Literal["ban", "mute", "nograb"]
    room: str | None = None
    lifted: bool = Field(description="false: there was nothing to lift")


class Sanctions(Result):
    room: str | None = None
    bans: list[SanctionOut]
    mutes: list[SanctionOut]
    grab_refusals: list[SanctionOut]


class KeywordOut(Result):
    word: str
    action: str


class Keywords(Result):
    room: str | None = None
    words: list[KeywordOut]


class LimitRow(Result):
    action: str
    dimension: str
    configured: str | None = None
    effective: str | None = Field(None, description="null: not limited")
    overridden: bool


class Limits(Result):
    room: str
    limits: list[LimitRow]


class RuleRow(Result):
    rule: str
    mode: str
    threshold: float
    help: str
    overridden: bool


class Rules(Result):
    room: str | None = None
    rules: list[RuleRow]


def _moderation(engine: Engine) -> Moderation:
    try:
        return engine.antifraud.moderation
    except RuntimeError as exc:
        raise EngineError(str(exc), code=ErrorCode.BAD_STATE) from None


def _scope(call: Call) -> str | None:
    return call.room or None


def _impose(kind: Kind) -> Any:
    async def handler(engine: Engine, call: Call) -> Any:
        p = call.params
        by = call.caller.user or call.caller.label
        return await _moderation(engine).impose(
            _scope(call), kind, p.user, duration_s=p.duration_s, reason=p.reason or "",
            by=by, shadow=getattr(p, "shadow", False),
        )  # fmt: skip

    return handler


def _lift(kind: Kind) -> Any:
    async def handler(engine: Engine, call: Call) -> Any:
        by = call.caller.user or call.caller.label
        return await _moderation(engine).lift(_scope(call), kind, call.params.user, by=by)

    return handler


async def _sanctions(engine: Engine, call: Call) -> Any:
    moderation, scope = _moderation(engine), _scope(call)
    return {"room": scope, "bans": await moderation.listing(scope, Kind.BAN),
            "mutes": await moderation.listing(scope, Kind.MUTE),
            "grab_refusals": await moderation.listing(scope, Kind.NOGRAB)}  # fmt: skip


async def _keywords(engine: Engine, call: Call) -> Any:
    return await _moderation(engine).words(_scope(call))


async def _add_keywords(engine: Engine, call: Call) -> Any:
    words = dict.fromkeys(call.params.words, call.params.action)
    return await _moderation(engine).change_words(_scope(call), words, [])


async def _remove_keywords(engine: Engine, call: Call) -> Any:
    return await _moderation(engine).change_words(_scope(call), {}, call.params.words)


async def _limits(engine: Engine, call: Call) -> Any:
    return await _moderation(engine).limits(call.room)


async def _set_limit(engine: Engine, call: Call) -> Any:
    p = call.params
    given = [v is not None for v in (p.rate, p.per_s, p.burst)]
    if any(given) and not all(given):
        raise EngineError("give rate, per_s and burst together", code=ErrorCode.BAD_FIELD)
    if p.off and any(given):
        raise EngineError("off takes no rate, per_s or burst", code=ErrorCode.BAD_FIELD)
    limit = Limit(p.rate, p.per_s, p.burst) if all(given) else None
    return await _moderation(engine).set_limit(call.room, p.action, p.dimension, limit, off=p.off)


async def _bot_rules(engine: Engine, call: Call) -> Any:
    return await _moderation(engine).rules(_scope(call))


async def _set_bot_rule(engine: Engine, call: Call) -> Any:
    p = call.params
    if p.reset and (p.mode is not None or p.threshold is not None):
        raise EngineError("reset takes no mode or threshold", code=ErrorCode.BAD_FIELD)
    if not p.reset and p.mode is None and p.threshold is None:
        raise EngineError("give a mode, a threshold, or reset", code=ErrorCode.BAD_FIELD)
    mode = None if p.mode is None else Mode(p.mode)
    return await _moderation(engine).set_rule(_scope(call), p.rule, mode, p.threshold)


_BAN_DOC = (
    "The user's connections are closed with 4013 `banned` on every node within a second, and it "
    "is refused on joining and on grabbing; lasts `duration_s` or until lifted."
)
_MUTE_DOC = (
    "The user's danmaku reach nobody else (answered `muted`; with `shadow` the sender still "
    "sees its own messages and is not told)."
)


def commands() -> list[Command]:
    room_cmds = [
        Command("ban", "Ban a user from the room.", SanctionParams, SanctionOut,
                _impose(Kind.BAN), doc=_BAN_DOC + " Writes `user.banned`."),
        Command("unban", "Lift a user's ban in the room.", UserParams, Lifted, _lift(Kind.BAN),
                doc="Writes `user.unbanned`."),
        Command("mute", "Mute a user in the room.", MuteParams, SanctionOut, _impose(Kind.MUTE),
                doc=_MUTE_DOC + " Writes `user.muted`."),
        Command("unmute", "Lift a user's mute in the room.", UserParams, Lifted,
                _lift(Kind.MUTE), doc="Writes `user.unmuted`."),
        Command("refuse_grabs", "Refuse a user's flash-sale grabs in the room.", SanctionParams,
                SanctionOut, _impose(Kind.NOGRAB),
                doc="Its grabs are answered `refused`. Writes `user.grabs_refused`."),
        Command("restore_grabs", "Let a user grab again in the room.", UserParams, Lifted,
                _lift(Kind.NOGRAB), doc="Writes `user.grabs_restored`."),
        Command("sanctions", "The room's bans, mutes and grab refusals in force.", NoParams,
                Sanctions, _sanctions, read_only=True),
        Command("keywords", "The room's own keyword list (the global list applies too).",
                NoParams, Keywords, _keywords, read_only=True),
        Command("add_keywords", "Add words to the room's keyword list, with their action.",
                KeywordsAdd, Keywords, _add_keywords,
                doc="Matching ignores case and width; a word already listed gets the new action."
                    " Takes effect on every node within a second."),
        Command("remove_keywords", "Remove words from the room's keyword list.", KeywordsRemove,
                Keywords, _remove_keywords),
        Command("limits", "The rate limits in force in the room, configured and overridden.",
                NoParams, Limits, _limits, read_only=True),
        Command("set_limit", "Override one rate limit in the room, or go back to the config.",
                SetLimit, Limits, _set_limit,
                doc="`rate`/`per_s`/`burst` set a limit, `off` removes it, neither goes back to "
                    "the configured one (e.g. raise the join limit per IP for a campus event)."),
        Command("bot_rules", "The bot rules in force in the room: mode and threshold.",
                NoParams, Rules, _bot_rules, read_only=True),
        Command("set_bot_rule", "Set a bot rule's mode or threshold in the room.", SetRule,
                Rules, _set_bot_rule,
                doc="A new rule runs in shadow mode (log only) until given an enforcing mode."),
    ]  # fmt: skip
    global_cmds = [
        Command("ban_global", "Ban a user from every room.", SanctionParams, SanctionOut,
                _impose(Kind.BAN), doc=_BAN_DOC),
        Command("unban_global", "Lift a user's global ban.", UserParams, Lifted,
                _lift(Kind.BAN)),
        Command("mute_global", "Mute a user in every room.", MuteParams, SanctionOut,
                _impose(Kind.MUTE), doc=_MUTE_DOC),
        Command("unmute_global", "Lift a user's global mute.", UserParams, Lifted,
                _lift(Kind.MUTE)),
        Command("global_sanctions", "The global bans, mutes and grab refusals in force.",
                NoParams, Sanctions, _sanctions, read_only=True),
        Command("global_keywords", "The global keyword list (applies in every room).",
                NoParams, Keywords, _keywords, read_only=True),
        Command("add_global_keywords", "Add words to the global keyword list.", KeywordsAdd,
                Keywords, _add_keywords),
        Command("remove_global_keywords", "Remove words from the global keyword list.",
                KeywordsRemove, Keywords, _remove_keywords),
        Command("global_bot_rules", "The bot rules in force by default in every room.",
                NoParams, Rules, _bot_rules, read_only=True),
        Command("set_global_bot_rule", "Set a bot rule's mode or threshold for every room.",
                SetRule, Rules, _set_bot_rule,
                doc="A room's own setting (set_bot_rule) wins over this one."),
    ]  # fmt: skip
    global_cmds = [
        dataclasses.replace(c, roles=ADMIN, room_scoped=False, path="/antifraud/" + c.name)
        for c in global_cmds
    ]
    return room_cmds + global_cmds
