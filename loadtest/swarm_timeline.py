"""The swarm's scripted timeline: phases, their settings and defaults (pure, no I/O but reading
a file).

A timeline is a list of phases run one after the other, plus background chat that runs from the
end of the first join to the end of the run (so send-to-deliver latency is measured in every
phase, and a reconnect storm has messages to replay). As a file (JSON, or YAML when PyYAML is
installed):

    {"background": {"danmaku_rate": 10},
     "phases": [{"kind": "join", "ramp_s": 10},
                {"kind": "seckill", "stock": 500, "spread_s": 1}]}

Phase kinds and their settings (every setting has a default; an unknown one is an error):

* `join`: `viewers` more viewers connect (0: `--viewers`), `viewers / ramp_s` per second, at
  most `concurrency` upgrades in flight per client process, then `settle_s` of quiet;
* `danmaku`: a danmaku storm, `rate` messages/s over every client process for `duration_s`;
* `likes`: a like storm, `rate` like messages/s, each 1..`size` likes, for `duration_s`;
* `seckill`: a flash sale of `stock` units (per-user `limit`) announced `lead_s` before t0; a
  `fraction` of the viewers each grab once, evenly over `spread_s` from t0;
* `coupon`: a batch of `quantity` coupons dropped; `lead_s` later a `fraction` of the viewers
  claim, evenly over `spread_s`;
* `lottery`: a lottery with `winners` winners; a `fraction` of the viewers enter (`entry`:
  `keyword`, sending `keyword` as a danmaku, or `enter`, the `lottery_enter` message) over
  `spread_s`, then it is drawn;
* `reconnect`: a `fraction` of the viewers cut their socket and reconnect with their position
  (`since`/`epoch`), evenly over `spread_s`, then `settle_s` of chat;
* `steady`: nothing but the background chat for `duration_s`.

Every spike waits at most `drain_s` for its answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, dict[str, Any]] = {
    "join": {"viewers": 0, "ramp_s": 10.0, "concurrency": 256, "settle_s": 2.0},
    "danmaku": {"rate": 200.0, "duration_s": 10.0},
    "likes": {"rate": 1000.0, "size": 10, "duration_s": 10.0},
    "seckill": {
        "stock": 100,
        "limit": 1,
        "price": 9900,
        "fraction": 1.0,
        "lead_s": 2.0,
        "spread_s": 1.0,
        "drain_s": 30.0,
        "hold_s": 900.0,
    },
    "coupon": {"quantity": 100, "fraction": 1.0, "lead_s": 1.0, "spread_s": 1.0, "drain_s": 30.0},
    "lottery": {
        "winners": 10,
        "entry": "keyword",
        "keyword": "lucky draw",
        "fraction": 0.5,
        "lead_s": 1.0,
        "spread_s": 2.0,
        "drain_s": 30.0,
    },
    "reconnect": {
        "fraction": 0.2,
        "spread_s": 2.0,
        "concurrency": 256,
        "settle_s": 3.0,
        "drain_s": 60.0,
    },
    "steady": {"duration_s": 10.0},
}
BACKGROUND: dict[str, Any] = {"danmaku_rate": 10.0}
SPIKES = ("seckill", "coupon", "lottery")  # phases followed by invariant checks
ENTRY_MODES = ("keyword", "enter")
DEFAULT_ORDER = ("join", "danmaku", "likes", "seckill", "coupon", "lottery", "reconnect")


class TimelineError(ValueError):
    """A timeline file, `--set` or `--phases` that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Phase:
    name: str  # unique in the timeline: the kind, or `<kind>-2`, ... (or given)
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]

    @property
    def spike(self) -> bool:
        return self.kind in SPIKES


@dataclass(frozen=True)
class Timeline:
    phases: list[Phase]
    background: dict[str, Any] = field(default_factory=lambda: dict(BACKGROUND))

    def as_dict(self) -> dict[str, Any]:
        return {
            "background": dict(self.background),
            "phases": [{"name": p.name, "kind": p.kind, **p.settings} for p in self.phases],
        }


def default_document() -> dict[str, Any]:
    return {"background": dict(BACKGROUND), "phases": [{"kind": k} for k in DEFAULT_ORDER]}


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce(where: str, key: str, default: Any, value: Any) -> Any:
    """`value` as the type of the default (ints may be given for floats)."""
    wrong = TimelineError(f"{where}: {key} must be {_KIND_NAMES[type(default)]}, not {value!r}")
    if isinstance(default, bool) or isinstance(value, bool):
        raise wrong
    if isinstance(default, float) and isinstance(value, int | float):
        value = float(value)
    elif isinstance(default, int) and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, type(default)):
        raise wrong
    if isinstance(value, int | float) and value < 0:
        raise TimelineError(f"{where}: {key} must not be negative ({value!r})")
    return value


def _check(phase: Phase) -> None:
    s, where = phase.settings, f"phase {phase.name!r}"
    if "fraction" in s and not 0.0 < s["fraction"] <= 1.0:
        raise TimelineError(f"{where}: fraction must be in (0, 1], not {s['fraction']!r}")
    for key in ("rate", "stock", "limit", "quantity", "winners", "concurrency", "size"):
        if key in s and s[key] <= 0:
            raise TimelineError(f"{where}: {key} must be positive, not {s[key]!r}")
    if phase.kind == "join" and s["ramp_s"] <= 0:
        raise TimelineError(f"{where}: ramp_s must be positive")
    if phase.kind == "lottery":
        if s["entry"] not in ENTRY_MODES:
            raise TimelineError(f"{where}: entry must be one of {', '.join(ENTRY_MODES)}")
        if not s["keyword"].strip() or len(s["keyword"]) > 32:
            raise TimelineError(f"{where}: keyword must be 1..32 characters")


def parse_timeline(doc: Any) -> Timeline:
    """A timeline from its document (a dict with `phases` and optional `background`, or a bare
    list of phases); every setting not given takes its default."""
    if isinstance(doc, list):
        doc = {"phases": doc}
    if not isinstance(doc, dict):
        raise TimelineError("a timeline is an object with a `phases` list")
    unknown = set(doc) - {"phases", "background"}
    if unknown:
        raise TimelineError(f"unknown timeline key(s): {', '.join(sorted(unknown))}")
    raw_phases = doc.get("phases")
    if not isinstance(raw_phases, list) or not raw_phases:
        raise TimelineError("`phases` must be a non-empty list")
    background = dict(BACKGROUND)
    for key, value in (doc.get("background") or {}).items():
        if key not in BACKGROUND:
            raise TimelineError(f"background: unknown setting {key!r} (known: danmaku_rate)")
        background[key] = _coerce("background", key, BACKGROUND[key], value)
    phases: list[Phase] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_phases):
        if isinstance(raw, str):
            raw = {"kind": raw}
        if not isinstance(raw, dict) or "kind" not in raw:
            raise TimelineError(f"phase {i + 1}: an object with a `kind`")
        kind = raw["kind"]
        if kind not in DEFAULTS:
            raise TimelineError(
                f"phase {i + 1}: unknown kind {kind!r} (known: {', '.join(DEFAULTS)})"
            )
        seen[kind] = seen.get(kind, 0) + 1
        name = str(raw.get("name") or (kind if seen[kind] == 1 else f"{kind}-{seen[kind]}"))
        if any(p.name == name for p in phases):
            raise TimelineError(f"phase {i + 1}: the name {name!r} is used twice")
        settings = dict(DEFAULTS[kind])
        for key, value in raw.items():
            if key in ("kind", "name"):
                continue
            if key not in settings:
                raise TimelineError(
                    f"phase {name!r}: unknown setting {key!r} (known: {', '.join(DEFAULTS[kind])})"
                )
            settings[key] = _coerce(f"phase {name!r}", key, DEFAULTS[kind][key], value)
        phase = Phase(name, kind, settings)
        _check(phase)
        phases.append(phase)
    if phases[0].kind != "join":
        raise TimelineError("the first phase must be a join (viewers connect before they act)")
    return Timeline(phases, background)


def read_document(path: Path) -> Any:
    """A timeline file: JSON, or YAML (`.yaml`/`.yml`, when PyYAML is installed)."""
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:  # pragma: no cover - PyYAML comes with the dev extras' tools
            raise TimelineError("YAML timelines need PyYAML; use JSON") from exc
        return yaml.safe_load(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TimelineError(f"{path}: not JSON: {exc}") from exc


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(doc: Any, overrides: list[str]) -> dict[str, Any]:
    """`--set PHASE.SETTING=VALUE` (PHASE a phase's name or kind: every phase of that kind, or
    `background`); VALUE is JSON, or else a string. Returns a new document."""
    doc = json.loads(json.dumps({"phases": doc} if isinstance(doc, list) else doc))
    phases = doc.get("phases") or []
    for item in overrides:
        target, eq, text = item.partition("=")
        who, dot, key = target.partition(".")
        if not eq or not dot or not who or not key:
            raise TimelineError(f"--set {item!r}: expected PHASE.SETTING=VALUE")
        if who == "background":
            doc.setdefault("background", {})[key] = _value(text)
            continue
        hit = False
        counts: dict[str, int] = {}
        for raw in phases:
            kind = raw["kind"] if isinstance(raw, dict) else raw
            counts[kind] = counts.get(kind, 0) + 1
            auto = kind if counts[kind] == 1 else f"{kind}-{counts[kind]}"
            name = raw.get("name", auto) if isinstance(raw, dict) else auto
            if who in (name, kind):
                if not isinstance(raw, dict):
                    raw = phases[phases.index(raw)] = {"kind": raw}
                raw[key] = _value(text)
                hit = True
        if not hit:
            raise TimelineError(f"--set {item!r}: no phase named {who!r}")
    return dict(doc)


def select_phases(timeline: Timeline, names: list[str]) -> Timeline:
    """Only the named phases (names or kinds), in timeline order; the first join is kept when
    no join is named (viewers must connect first)."""
    wanted = set(names)
    known = {p.name for p in timeline.phases} | {p.kind for p in timeline.phases}
    missing = wanted - known
    if missing:
        raise TimelineError(
            f"--phases: no phase {', '.join(sorted(missing))} in the timeline "
            f"(have: {', '.join(p.name for p in timeline.phases)})"
        )
    kept = [p for p in timeline.phases if p.name in wanted or p.kind in wanted]
    if not any(p.kind == "join" for p in kept):
        kept.insert(0, next(p for p in timeline.phases if p.kind == "join"))
    return Timeline(kept, dict(timeline.background))


def build_timeline(path: Path | None, overrides: list[str], phases: list[str]) -> Timeline:
    """The timeline the command line asks for: the file (or the default), `--set`, `--phases`."""
    doc = read_document(path) if path is not None else default_document()
    timeline = parse_timeline(apply_overrides(doc, overrides))
    return select_phases(timeline, phases) if phases else timeline
