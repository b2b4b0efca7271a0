"""Lotteries, the pure part: validating a lottery, matching keyword danmaku, what viewers see and
what the control plane shows. No I/O; `lottery_node` does the I/O, `scripts/lua/lottery_*.lua`
make every decision on shared state, and `lottery_draw` is the verifiable draw
(docs/lottery.md).

A lottery is *open* (entries counted, once per user) until its draw: the draw *freezes* it (no
entry counts from then on), picks min(N, entrants) distinct winners from the frozen list and the
seed committed to at creation, and the lottery is *drawn*. Each winner has a claim window
(`lottery_claim_s`, 24 h); the host submits claims; unclaimed prizes expire. A lottery not yet
drawn may be *cancelled*.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from engine.errors import ErrorCode, RequestRefused
from engine.features.lottery_draw import VERSION
from engine.protocol.client import SALE_ID

ENTRY_MODES: Final = ("keyword", "follow", "both")
MAX_WINNERS: Final = 10_000
MAX_PRIZE_CHARS: Final = 100
MAX_KEYWORD_CHARS: Final = 32
MAX_DRAW_AHEAD_S: Final = 7 * 86400
MIN_CLAIM_S: Final = 1.0  # the control command asks for 60 s at least; config may go lower
MAX_CLAIM_S: Final = 30 * 86400.0
_SPACES: Final = re.compile(r"\s+")


def refuse(code: ErrorCode, message: str) -> RequestRefused:
    return RequestRefused(message, code=code)


def valid_lottery_id(value: Any) -> bool:
    return isinstance(value, str) and SALE_ID.match(value) is not None


def normalize_keyword(text: str) -> str:
    """What keyword matching compares: NFKC (full-width = half-width), case folded, invisible
    format characters dropped, runs of spaces made one, trimmed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return _SPACES.sub(" ", visible).strip()


def keyword_matches(text: str | None, key: str) -> bool:
    """A danmaku enters a keyword lottery when its text is the keyword (normalized)."""
    return bool(key) and text is not None and normalize_keyword(text) == key


@dataclass(frozen=True, slots=True)
class LotterySpec:
    lottery: str
    prize: str
    wanted: int  # N, the number of winners
    entry: str  # keyword | follow | both
    keyword: str  # as the anchor wrote it ("" for follow-only)
    keyword_key: str  # normalized, for matching
    draw_at: int  # ms; 0: drawn by hand (draw_lottery)
    claim_ms: int


def lottery_spec(
    *,
    lottery: Any,
    prize: Any,
    winners: Any,
    entry: Any,
    keyword: Any = None,
    draw_at: Any = None,
    claim_s: Any,
    now: int,
) -> LotterySpec:
    """Validate an operator's lottery. Raises RequestRefused(bad_field) saying what is wrong."""
    if not valid_lottery_id(lottery):
        raise refuse(ErrorCode.BAD_FIELD, "lottery id must be 1..48 of [A-Za-z0-9_-]")
    if not isinstance(prize, str) or not prize.strip() or len(prize) > MAX_PRIZE_CHARS:
        raise refuse(ErrorCode.BAD_FIELD, f"prize must be 1..{MAX_PRIZE_CHARS} characters")
    if isinstance(winners, bool) or not isinstance(winners, int) or not 1 <= winners <= MAX_WINNERS:
        raise refuse(ErrorCode.BAD_FIELD, f"winners must be an integer 1..{MAX_WINNERS}")
    if entry not in ENTRY_MODES:
        raise refuse(ErrorCode.BAD_FIELD, f"entry must be one of {', '.join(ENTRY_MODES)}")
    shown, key = "", ""
    if entry in ("keyword", "both"):
        if not isinstance(keyword, str) or len(keyword) > MAX_KEYWORD_CHARS:
            raise refuse(ErrorCode.BAD_FIELD, f"keyword must be 1..{MAX_KEYWORD_CHARS} characters")
        shown, key = keyword.strip(), normalize_keyword(keyword)
        if not key or any(unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in shown):
            raise refuse(ErrorCode.BAD_FIELD, "keyword must be visible text")
    elif keyword is not None:
        raise refuse(ErrorCode.BAD_FIELD, "a follow lottery has no keyword")
    at = 0
    if draw_at is not None:
        if isinstance(draw_at, bool) or not isinstance(draw_at, int) or draw_at <= now:
            raise refuse(ErrorCode.BAD_FIELD, "draw_at must be a time in the future (ms)")
        if draw_at - now > MAX_DRAW_AHEAD_S * 1000:
            raise refuse(ErrorCode.BAD_FIELD, f"a draw is at most {MAX_DRAW_AHEAD_S} s ahead")
        at = draw_at
    if isinstance(claim_s, bool) or not isinstance(claim_s, int | float):
        raise refuse(ErrorCode.BAD_FIELD, "claim_s must be a number")
    if not MIN_CLAIM_S <= claim_s <= MAX_CLAIM_S:
        raise refuse(ErrorCode.BAD_FIELD, f"claim_s must be {MIN_CLAIM_S:g}..{MAX_CLAIM_S:g}")
    return LotterySpec(lottery, prize.strip(), winners, entry, shown, key, at, int(claim_s * 1000))


# --- what viewers see ----------------------------------------------------------------------


def count_key(lottery: str) -> str:
    return f"lottery:{lottery}"


def count_message(lottery: str, count: int, ver: int) -> dict[str, Any]:
    """The `lottery_entrants` server message (at most one per lottery and tick)."""
    return {"type": "lottery_entrants", "lottery": lottery, "count": count, "ver": ver}


def lottery_views(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The room's lotteries not yet drawn, for a snapshot, from the state hash fields
    `lottery:<id>` (the lottery as created) and `lcount:<id>` ([count, ver]); oldest first."""
    out = []
    for field, value in state.items():
        if not field.startswith("lottery:") or not isinstance(value, dict):
            continue
        view = dict(value)
        live = state.get("lcount:" + field[8:])
        if isinstance(live, list | tuple) and len(live) == 2:
            view["entrants"], view["ver"] = int(live[0]), int(live[1])
        out.append(view)
    out.sort(key=lambda v: (v.get("created_at", 0), v["lottery"]))
    return out


def popup_view(spec: LotterySpec, commitment: str, created_at: int) -> dict[str, Any]:
    """The `lottery` popup when a lottery starts (the commitment is public from now on)."""
    view: dict[str, Any] = {"lottery": spec.lottery, "prize": spec.prize, "winners": spec.wanted,
                            "entry": spec.entry, "commitment": commitment,
                            "created_at": created_at, "entrants": 0}  # fmt: skip
    if spec.keyword:
        view["keyword"] = spec.keyword
    if spec.draw_at:
        view["draw_at"] = spec.draw_at
    return view


def winner_records(raw: Mapping[str, str], names: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """Winners hash -> [{user, rank, state, claim_until, ref?, name?}] in rank order."""
    out = []
    for user, record in raw.items():
        rank, state, until, ref = [*record.split("\t"), "", "", "", ""][:4]
        item: dict[str, Any] = {"user": user, "rank": int(rank or 0), "state": state,
                                "claim_until": int(until or 0)}  # fmt: skip
        if ref:
            item["ref"] = ref
        if names.get(user):
            item["name"] = names[user]
        out.append(item)
    out.sort(key=lambda w: w["rank"])
    return out


_INT_FIELDS: Final = ("wanted", "draw_at", "claim_ms", "count", "ver", "created_at", "frozen_at",
                      "drawn_at", "claim_until", "cancelled_at")  # fmt: skip


def lottery_info(
    lottery: str, raw: Mapping[str, str], winners: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A lottery as the control plane shows it. The seed stays secret until the draw."""
    num = {k: int(raw[k]) for k in _INT_FIELDS if raw.get(k, "").lstrip("-").isdigit()}
    drawn = raw.get("state") == "drawn"
    out: dict[str, Any] = {
        "lottery": lottery,
        "state": raw.get("state"),
        "prize": raw.get("prize"),
        "winners_wanted": num.get("wanted", 0),
        "entry": raw.get("entry"),
        "keyword": raw.get("keyword") or None,
        "draw_at": num.get("draw_at") or None,
        "claim_s": num.get("claim_ms", 0) / 1000,
        "entrants": num.get("count", 0),
        "commitment": raw.get("commitment"),
        "created_at": num.get("created_at"),
        "frozen_at": num.get("frozen_at"),
        "drawn_at": num.get("drawn_at"),
        "claim_until": num.get("claim_until"),
        "algorithm": VERSION,
        "seed": raw.get("seed") if drawn else None,
        "digest": raw.get("digest") if drawn else None,
        "key": raw.get("key") if drawn else None,
        "winners": list(winners),
    }
    return out
