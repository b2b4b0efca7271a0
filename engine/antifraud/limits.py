"""Rate limits, the pure part: what a limit is, how it is written in the configuration, and which
limit applies to an action in a room (the configured default or the room's override).

A limit is GCRA (`scripts/lua/ratelimit.lua`): `rate` units per `per_s` seconds on average, with
up to `burst` units at once. Each action is limited per user, per IP and per device (any of the
three may be left out); a request passes only if every dimension lets it through, and is then
charged on all of them.

Written as `user=20/60s burst 5, ip=300/60s burst 60, device=30/60s burst 8`; `off` or an empty
string means no limit for the action. Periods take `ms`, `s`, `m` or `h`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

ACTIONS: Final = ("join", "danmaku", "like", "grab", "coupon", "lottery")
DIMENSIONS: Final = ("user", "ip", "device")
MAX_BURST: Final = 1_000_000
MAX_PERIOD_S: Final = 86400.0

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_ITEM = re.compile(
    r"^\s*(?P<dim>[a-z]+)\s*=\s*(?P<rate>\d+(?:\.\d+)?)\s*/\s*(?P<per>\d+(?:\.\d+)?)?\s*"
    r"(?P<unit>ms|s|m|h)\s*(?:burst\s*(?P<burst>\d+))?\s*$"
)


@dataclass(frozen=True, slots=True)
class Limit:
    """`rate` units per `per_s` seconds on average, `burst` units at once."""

    rate: float
    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not (0 < self.rate <= 1e9 and 0 < self.per_s <= MAX_PERIOD_S):
            raise ValueError("a limit needs a rate > 0 and a period of (0, 86400] seconds")
        if not 1 <= self.burst <= MAX_BURST:
            raise ValueError(f"burst must be 1..{MAX_BURST}")

    @property
    def interval_us(self) -> int:
        """The emission interval: microseconds per unit, rounded up (never more than the rate)."""
        return max(1, math.ceil(self.per_s * 1_000_000 / self.rate))

    def spec(self) -> str:
        return f"{_num(self.rate)}/{_period(self.per_s)} burst {self.burst}"

    def stored(self) -> str:
        """The form kept in a room's override hash: rate/period_ms/burst."""
        return f"{_num(self.rate)}/{_num(self.per_s * 1000)}/{self.burst}"

    @classmethod
    def from_stored(cls, text: str) -> Limit:
        rate, per_ms, burst = text.split("/")
        return cls(float(rate), float(per_ms) / 1000, int(burst))


ActionLimits = dict[str, Limit]  # dimension -> limit


def parse_limits(text: str) -> ActionLimits:
    """`user=20/60s burst 5, ip=...` -> {dimension: Limit}. Raises ValueError with the reason."""
    out: ActionLimits = {}
    if text.strip().lower() in ("", "off", "none"):
        return out
    for item in text.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"{item.strip()!r} is not 'dimension=RATE/PERIOD[unit] [burst N]'")
        dim = match["dim"]
        if dim not in DIMENSIONS:
            raise ValueError(f"{dim!r} is not a dimension ({', '.join(DIMENSIONS)})")
        if dim in out:
            raise ValueError(f"{dim!r} is given twice")
        per = float(match["per"] or 1) * _UNITS[match["unit"]]
        rate = float(match["rate"])
        burst = int(match["burst"]) if match["burst"] else max(1, math.ceil(rate))
        out[dim] = Limit(rate, per, burst)
    return out


def format_limits(limits: Mapping[str, Limit]) -> str:
    if not limits:
        return "off"
    return ", ".join(f"{dim}={limits[dim].spec()}" for dim in DIMENSIONS if dim in limits)


OFF: Final = "off"  # a room override that switches one dimension's limit off


class LimitTable:
    """The configured limits of every action, with one room's overrides on top."""

    __slots__ = ("_base", "_effective")

    def __init__(self, base: Mapping[str, ActionLimits]) -> None:
        unknown = set(base) - set(ACTIONS)
        if unknown:
            raise ValueError(f"unknown actions {sorted(unknown)}")
        self._base = {action: dict(base.get(action, {})) for action in ACTIONS}
        self._effective = self._base

    def with_overrides(self, overrides: Mapping[str, str]) -> LimitTable:
        """A table for a room: `overrides` maps "<action>:<dimension>" to a stored limit or
        "off". Entries that do not parse are ignored (bad input never breaks a room)."""
        table = LimitTable.__new__(LimitTable)
        table._base = self._base
        effective = {action: dict(limits) for action, limits in self._base.items()}
        for field, value in overrides.items():
            action, _, dim = field.partition(":")
            if action not in effective or dim not in DIMENSIONS:
                continue
            if value == OFF:
                effective[action].pop(dim, None)
                continue
            try:
                effective[action][dim] = Limit.from_stored(value)
            except (ValueError, TypeError):
                continue
        table._effective = effective
        return table

    def of(self, action: str) -> ActionLimits:
        return self._effective.get(action, {})

    def describe(self) -> Iterable[tuple[str, str, Limit | None, Limit | None]]:
        """(action, dimension, configured, effective) for every action and dimension."""
        for action in ACTIONS:
            for dim in DIMENSIONS:
                yield action, dim, self._base[action].get(dim), self._effective[action].get(dim)


def _num(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def _period(seconds: float) -> str:
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size) == int(seconds / size):
            return f"{int(seconds / size)}{unit}"
    return f"{_num(seconds * 1000)}ms"
