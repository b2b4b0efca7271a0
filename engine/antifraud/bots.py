"""Bot detection, the pure part: behaviour features in, a risk score with its reasons and the
action to take out. No I/O, no clock: `behaviour.py` measures the features, the guard acts.

Every rule compares one feature with its threshold and has a mode:

* `off`: not evaluated;
* `shadow`: log and count only (the default for every rule until an operator turns it on);
* `mute`: the user's danmaku reach nobody but the user (a shadow mute);
* `refuse_grabs`: the user's flash-sale grabs are refused;
* `ban`: the user is banned from the room (closed, refused on every node).

The score is the noisy-OR of the weights of the rules that fired: 1 - prod(1 - weight). The
pseudo-rule `score` fires when that combination reaches its threshold, so several weak signals
can act together. The action is the strongest mode among the rules that fired.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final


class Mode(StrEnum):
    OFF = "off"
    SHADOW = "shadow"
    MUTE = "mute"
    REFUSE_GRABS = "refuse_grabs"
    BAN = "ban"

    @property
    def enforced(self) -> bool:
        return self not in (Mode.OFF, Mode.SHADOW)


_STRENGTH: Final = {Mode.OFF: 0, Mode.SHADOW: 1, Mode.MUTE: 2, Mode.REFUSE_GRABS: 3, Mode.BAN: 4}


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    threshold: float
    weight: float  # contribution to the combined score, 0..1
    below: bool = False  # fires when the feature is <= threshold (else >=)
    mode: Mode = Mode.SHADOW
    help: str = ""

    def fires(self, value: float) -> bool:
        return value <= self.threshold if self.below else value >= self.threshold


# The rules and their defaults (docs/antifraud.md explains how to tune them).
DEFAULT_RULES: Final[dict[str, Rule]] = {
    r.name: r
    for r in (
        Rule("accounts_per_ip", 20, 0.5,
             help="distinct accounts that joined the room from one IP within the window"),
        Rule("accounts_per_device", 4, 0.9,
             help="distinct accounts that joined the room from one device within the window"),
        Rule("conns_per_ip", 30, 0.4, help="open connections from one IP to the room (node)"),
        Rule("conns_per_device", 4, 0.8,
             help="open connections from one device to the room (node)"),
        Rule("join_burst", 15, 0.5, help="joins from one IP to the room within 10 s (node)"),
        Rule("duplicate_text", 8, 0.8,
             help="accounts that sent the same (normalised) text of 10+ letters within 60 s"),
        Rule("regular_timing", 0.05, 0.8, below=True,
             help="variation (stddev/mean) of the middle 12 of the last 16 intervals between a "
                  "user's danmaku, or its likes of one same count (mean >= 0.5 s): machines "
                  "are regular, people are not"),
        Rule("like_burst", 300, 0.9, help="likes a user tried to send within 5 s"),
        Rule("early_grab", 120, 0.9, below=True,
             help="ms between the flash-sale popup reaching the viewer and its grab "
                  "(negative: before the popup reached it)"),
        Rule("score", 0.95, 0.0, help="the combined score of the rules that fired"),
    )
}  # fmt: skip
RULE_NAMES: Final = tuple(DEFAULT_RULES)


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str
    value: float
    threshold: float
    mode: Mode

    def text(self) -> str:
        sign = "<=" if DEFAULT_RULES[self.rule].below else ">="
        return f"{self.rule} {_num(self.value)} {sign} {_num(self.threshold)}"


@dataclass(frozen=True, slots=True)
class Assessment:
    score: float
    reasons: tuple[Reason, ...]
    action: Mode  # the strongest enforced mode among the reasons, else SHADOW (or OFF: none)

    @property
    def fired(self) -> bool:
        return bool(self.reasons)

    def reasons_text(self) -> list[str]:
        return [r.text() for r in self.reasons]


NOTHING: Final = Assessment(0.0, (), Mode.OFF)


def assess(features: Mapping[str, float], rules: Mapping[str, Rule]) -> Assessment:
    """Score `features` (rule name -> measured value; absent = not measured) against `rules`."""
    reasons: list[Reason] = []
    keep = 1.0
    for name, value in features.items():
        rule = rules.get(name)
        if rule is None or rule.mode is Mode.OFF or name == "score":
            continue
        if rule.fires(value):
            reasons.append(Reason(name, value, rule.threshold, rule.mode))
            keep *= 1.0 - rule.weight
    if not reasons:
        return NOTHING
    score = 1.0 - keep
    combined = rules.get("score")
    if combined is not None and combined.mode is not Mode.OFF and combined.fires(score):
        reasons.append(Reason("score", score, combined.threshold, combined.mode))
    action = max((r.mode for r in reasons), key=_STRENGTH.__getitem__)
    return Assessment(round(score, 4), tuple(reasons), action)


# --- configuration ----------------------------------------------------------------------------

_SPEC = re.compile(r"^\s*([a-z_]+)\s*=\s*([a-z_]+)?\s*(?:@\s*(-?\d+(?:\.\d+)?))?\s*$")


def parse_override(text: str) -> tuple[Mode | None, float | None]:
    """A stored override "mode@threshold" (either part may be missing)."""
    mode_text, _, threshold = text.partition("@")
    mode = Mode(mode_text) if mode_text else None
    return mode, (float(threshold) if threshold else None)


def format_override(mode: Mode | None, threshold: float | None) -> str:
    return f"{mode.value if mode else ''}@{'' if threshold is None else _num(threshold)}"


def parse_rules(text: str) -> dict[str, str]:
    """The `antifraud_bot_rules` setting, "rule=mode[@threshold], ..." -> {rule: override}.
    Raises ValueError with the reason."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        match = _SPEC.match(item)
        if match is None:
            raise ValueError(f"{item!r} is not 'rule=mode[@threshold]'")
        name, mode_text, threshold = match.groups()
        if name not in DEFAULT_RULES:
            raise ValueError(f"no bot rule {name!r} (rules: {', '.join(RULE_NAMES)})")
        mode = Mode(mode_text) if mode_text else None  # ValueError names the bad mode
        out[name] = format_override(mode, None if threshold is None else float(threshold))
    return out


def apply_overrides(rules: Mapping[str, Rule], overrides: Mapping[str, str]) -> dict[str, Rule]:
    """Rules with overrides ("mode@threshold") on top; bad or unknown entries are ignored."""
    out = dict(rules)
    for name, text in overrides.items():
        rule = out.get(name)
        if rule is None:
            continue
        try:
            mode, threshold = parse_override(text)
        except ValueError:
            continue
        out[name] = replace(
            rule,
            mode=rule.mode if mode is None else mode,
            threshold=rule.threshold if threshold is None else threshold,
        )
    return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"
