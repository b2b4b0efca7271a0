"""What a node keeps in memory of one anti-fraud scope (the global one, or a room it serves):
sanctions, the compiled word list, limit and bot rule overrides, and for rooms the behaviour
features and flash-sale popup times. Pure: filled from Redis (`ScopeState`) and from signals by
`moderation.py`, read by the guard on every action without I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from engine.antifraud import bots
from engine.antifraud.behaviour import RoomBehaviour
from engine.antifraud.keywords import EMPTY, WordList
from engine.antifraud.limits import LimitTable
from engine.store.antifraud import ScopeState

if TYPE_CHECKING:
    from engine.antifraud.guard import Visitor


class Kind(StrEnum):
    BAN = "ban"
    MUTE = "mute"
    NOGRAB = "nograb"  # flash-sale grabs refused


EVENT_TYPES: Final = {
    (Kind.BAN, True): "user.banned",
    (Kind.BAN, False): "user.unbanned",
    (Kind.MUTE, True): "user.muted",
    (Kind.MUTE, False): "user.unmuted",
    (Kind.NOGRAB, True): "user.grabs_refused",
    (Kind.NOGRAB, False): "user.grabs_restored",
}


@dataclass(frozen=True, slots=True)
class Sanction:
    kind: Kind
    user: str
    until: int  # ms since the epoch; 0: until lifted
    reason: str
    by: str
    at: int
    shadow: bool = False  # mutes: the sender still sees its own messages

    def active(self, now_ms: int) -> bool:
        return self.until == 0 or now_ms < self.until

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"until": self.until, "reason": self.reason, "by": self.by,
                               "at": self.at}  # fmt: skip
        if self.kind is Kind.MUTE:
            out["shadow"] = self.shadow
        return out

    def view(self, scope: str | None) -> dict[str, Any]:
        return {**self.record(), "user": self.user, "kind": self.kind.value, "room": scope,
                "until": self.until or None}  # fmt: skip

    @classmethod
    def from_record(cls, field: str, record: Mapping[str, Any]) -> Sanction | None:
        kind, _, user = field.partition(":")
        try:
            return cls(Kind(kind), user, int(record.get("until") or 0),
                       str(record.get("reason", ""))[:200], str(record.get("by", ""))[:64],
                       int(record.get("at") or 0), bool(record.get("shadow", False)))  # fmt: skip
        except (ValueError, TypeError):
            return None


class Scope:
    """One scope's rules as this node knows them."""

    def __init__(self, scope: str | None) -> None:
        self.id = scope
        self.sanctions: dict[tuple[Kind, str], Sanction] = {}
        self.words: WordList = EMPTY
        self.raw_words: dict[str, str] = {}
        self.limit_overrides: dict[str, str] = {}
        self.rule_overrides: dict[str, str] = {}
        self.next_expiry = 0  # ms: the soonest `until` among the sanctions (0: none)

    def load(self, state: ScopeState) -> None:
        sanctions = {}
        for field, record in state.sanctions.items():
            sanction = Sanction.from_record(field, record)
            if sanction is not None:
                sanctions[(sanction.kind, sanction.user)] = sanction
        self.sanctions = sanctions
        self._expiry()
        if state.keywords != self.raw_words:  # recompiled only when the list changed
            self.raw_words = dict(state.keywords)
            self.words = WordList(state.keywords) if state.keywords else EMPTY
        self.limit_overrides = dict(state.limits)
        self.rule_overrides = dict(state.rules)

    def apply(self, kind: Kind, user: str, sanction: Sanction | None) -> None:
        if sanction is None:
            self.sanctions.pop((kind, user), None)
        else:
            self.sanctions[(kind, user)] = sanction
        self._expiry()

    def _expiry(self) -> None:
        self.next_expiry = min((s.until for s in self.sanctions.values() if s.until), default=0)

    def active(self, kind: Kind, user: str, now_ms: int) -> Sanction | None:
        sanction = self.sanctions.get((kind, user))
        return sanction if sanction is not None and sanction.active(now_ms) else None

    def listing(self, kind: Kind, now_ms: int) -> list[dict[str, Any]]:
        return sorted(
            (s.view(self.id) for s in self.sanctions.values()
             if s.kind is kind and s.active(now_ms)),
            key=lambda v: (v["at"], v["user"]),
        )  # fmt: skip


class RoomScope(Scope):
    """A room's scope plus what the node measures there."""

    def __init__(self, room: str, base_limits: LimitTable) -> None:
        super().__init__(room)
        self.room = room
        self.base_limits = base_limits
        self.limits = base_limits
        self.rules: dict[str, bots.Rule] = dict(bots.DEFAULT_RULES)
        self.behaviour = RoomBehaviour()
        self.popups: dict[str, float] = {}  # sale -> when its popup reached this node (monotonic)
        self.sales: dict[str, tuple[int, float]] = {}  # sale -> (created ms, looked up at)
        self.loaded_at_ms = 0
        self.members: set[Visitor] = set()  # the guard's visitors of this room on this node
        self.last_used = 0.0

    def refresh(self, base_rules: Mapping[str, bots.Rule]) -> None:
        """Recompute the effective limits and rules after the room's or the global's changed."""
        self.limits = self.base_limits.with_overrides(self.limit_overrides)
        self.rules = bots.apply_overrides(base_rules, self.rule_overrides)
