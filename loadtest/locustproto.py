"""The locust scenarios' pure part: tokens, URLs, frames, what a viewer does, the anchor's plan.

No sockets, no gevent, no locust import (importing locust monkey-patches the process), so the
unit tests (tests/loadtest/test_locust_smoke.py) run it as it is. `loadtest/locustfile.py` moves
the frames and fires locust's request events from the `Metric`s this module returns.

* A viewer is a `ViewerBrain`: `on_message(msg, now, wall_ms)` takes a decoded server message and
  returns metrics and the requests to send later (a grab at the sale's t0, a claim after a
  reaction delay, a lottery entry); `request(kind, target, now)` builds a request and remembers
  it under its rid until its answer, so `answer(...)` times it (`grab:ok`, `grab:sold_out`,
  `claim:all_claimed`, ...) and `overdue(now)` reports the ones never answered.
* A danmaku's text carries its send time (`#lt<unix µs>`), so every watching viewer times
  send-to-deliver (`deliver`) from the chat frame that brings it.
* The anchor's live is `anchor_plan(...)`: a setup, then the same cycle over and over (flash sale
  with a countdown, coupon drop, lottery, draw), each step a control command at a time offset.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt
import msgpack
import orjson

STAMP_RE: Final = re.compile(r"#lt(\d{16})")
ANCHOR: Final = "locust-anchor"  # the room's anchor: the user of the anchor's token
ANSWER_TIMEOUT_S: Final = 10.0
MAX_RETRIES: Final = 3  # `unavailable` answers are retried with the same rid, as the protocol asks
RETRY_AFTER_S: Final = 0.25

# Answers that are outcomes of a race a viewer can lose, not faults: counted as successes under
# their own name (`grab:sold_out`), so a failure in the statistics always means something is wrong
# (the engine refused a well-formed request, the client sent a bad one, or no answer came).
OUTCOMES: Final[dict[str, frozenset[str]]] = {
    "grab": frozenset({"ok", "sold_out", "limit_reached", "ended", "not_started"}),
    "claim": frozenset({"ok", "all_claimed", "already_claimed", "ended", "not_started"}),
    "enter": frozenset({"ok", "again", "lottery_closed"}),
    "danmaku": frozenset({"ok"}),
    "keyword": frozenset({"ok"}),
    "like": frozenset({"ok"}),
}
PLAIN: Final = frozenset({"danmaku", "keyword", "like"})  # successes named by kind alone


# -- tokens and URLs ------------------------------------------------------------------------


def parse_keys(value: str) -> dict[str, bytes]:
    """`kid:secret[,kid2:secret2]` (ENGINE_TOKEN_KEYS' format; the first signs) -> {kid: key}."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (p.strip() for p in value.split(","))):
        kid, sep, secret = item.partition(":")
        if not sep or not kid or not secret:
            raise ValueError(f"engine secret {item[:8]!r}...: expected 'kid:secret'")
        keys[kid] = secret.encode()
    if not keys:
        raise ValueError("no engine secret: pass --engine-secret kid:secret")
    return keys


def dev_keys(data_dir: str | Path) -> str:
    """The key `engine run --dev` made under its data dir, as `kid:secret` ('' if none yet)."""
    path = Path(data_dir) / "dev-keys.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    return ",".join(f"{kid}:{secret}" for kid, secret in stored.items())


def mint(
    keys: Mapping[str, bytes],
    *,
    user: str,
    room: str,
    role: str = "viewer",
    ttl_s: float = 12 * 3600,
    device: str | None = None,
    name: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token with the claims engine/identity.py checks (signed with the first key)."""
    kid = next(iter(keys))
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user,
        "room": room,
        "role": role,
        "iat": issued,
        "exp": issued + int(ttl_s),
    }
    if device:
        claims["device"] = device
    if name:
        claims["name"] = name
    return jwt.encode(claims, keys[kid], algorithm="HS256", headers={"kid": kid})


def default_ws_url(host: str) -> str:
    """The viewer URL of the engine whose HTTP API is `host`: `engine run`'s ports are 8901
    (HTTP) and 8900 (viewers). Any other port: the WebSocket URL must be given."""
    parts = urlsplit(host)
    if parts.port != 8901 or not parts.hostname:
        raise ValueError(
            f"cannot guess the viewer URL of {host!r}: pass --ws-url ws://HOST:PORT/v1/ws"
        )
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, f"{parts.hostname}:8900", "/v1/ws", "", ""))


def viewer_url(
    ws_url: str, token: str, room: str, since: int | None = None, epoch: str = ""
) -> str:
    query = {"token": token, "room": room}
    if since is not None and epoch:
        query.update(since=str(since), epoch=epoch)
    return f"{ws_url}?{urlencode(query)}"


def fake_ip(n: int) -> str:
    """A distinct private address per viewer (for X-Forwarded-For, when the engine trusts us)."""
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


# -- frames ---------------------------------------------------------------------------------


def encode(msg: Mapping[str, Any], codec: str) -> bytes | str:
    if codec == "msgpack":
        data: bytes = msgpack.packb(dict(msg), use_bin_type=True)
        return data
    return orjson.dumps(dict(msg)).decode()


def decode(data: bytes | str, binary: bool) -> dict[str, Any] | None:
    """A server frame (text: JSON, binary: msgpack) -> the message, or None if not a map."""
    try:
        msg = msgpack.unpackb(data, raw=False) if binary else orjson.loads(data)
    except Exception:  # any decoder error: not a message
        return None
    return msg if isinstance(msg, dict) else None


def stamp_text(words: str, wall_us: int) -> str:
    """A danmaku text carrying its send time (µs since the epoch)."""
    return f"{words} #lt{wall_us:016d}"


def stamp_of(text: Any) -> int | None:
    m = STAMP_RE.search(text) if isinstance(text, str) else None
    return int(m.group(1)) if m else None


def deliveries(msg: Mapping[str, Any], wall_us: int) -> list[float]:
    """Send-to-deliver milliseconds of the stamped messages in a `chat` frame."""
    out: list[float] = []
    items = msg.get("msgs")
    for item in items if isinstance(items, list) else ():
        sent = stamp_of(item.get("text")) if isinstance(item, dict) else None
        if sent is not None:
            out.append(max(0.0, (wall_us - sent) / 1000))
    return out


def outcome(kind: str, msg: Mapping[str, Any]) -> tuple[str, bool]:
    """(code, success) of the answer (`result` or `error`) to a request of `kind`."""
    if msg.get("type") == "error":
        return str(msg.get("code")), False
    if msg.get("ok") is True:
        data = msg.get("data")
        if kind == "enter" and isinstance(data, dict) and data.get("new") is False:
            return "again", True
        return "ok", True
    code = str(msg.get("code"))
    return code, code in OUTCOMES.get(kind, frozenset())


# -- metrics and the viewer -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """One locust request event: `name` under request type "WS", a time in ms, maybe an error."""

    name: str
    ms: float
    error: str | None = None
    length: int = 0


@dataclass(frozen=True, slots=True)
class Later:
    """A request to send `delay` seconds from now (`kind` grab/claim/enter, its target id)."""

    delay: float
    kind: str
    target: str


@dataclass(slots=True)
class Pending:
    kind: str
    target: str
    sent: float
    tries: int = 1


@dataclass(slots=True)
class ViewerBrain:
    """What one viewer knows and does, fed decoded messages (sans-IO: times are arguments)."""

    user: str
    watcher: bool = False  # times the delivery of every stamped danmaku it receives
    rng: random.Random = field(default_factory=random.Random)
    react_s: tuple[float, float] = (0.3, 2.0)  # a person's delay before tapping a popup
    grab_jitter_s: float = 0.5  # taps at a sale's t0 spread over this
    timeout_s: float = ANSWER_TIMEOUT_S
    epoch: str = ""
    seq: int | None = None
    pending: dict[str, Pending] = field(default_factory=dict)
    popups: set[str] = field(default_factory=set)  # popup ids seen (a resume may repeat one)
    acted: set[str] = field(default_factory=set)  # sales, batches, lotteries acted on
    gone: set[str] = field(default_factory=set)  # sales sold out, batches all claimed
    n: int = 0

    # -- requests ---------------------------------------------------------------------------

    def request(self, kind: str, target: str, now: float, **extra: Any) -> dict[str, Any]:
        """The message for a request, remembered under a fresh rid until its answer."""
        self.n += 1
        rid = f"{kind[0]}{self.n}"
        self.pending[rid] = Pending(kind, target, now)
        if kind == "grab":
            return {"type": "grab", "sale": target, "rid": rid}
        if kind == "claim":
            return {"type": "claim", "batch": target, "rid": rid}
        if kind == "enter":
            return {"type": "lottery_enter", "lottery": target, "rid": rid}
        if kind in ("danmaku", "keyword"):
            return {"type": "danmaku", "text": target, "rid": rid, **extra}
        if kind == "like":
            return {"type": "like", "count": int(target), "rid": rid}
        raise ValueError(f"unknown request kind {kind!r}")

    def danmaku(self, now: float, wall_us: int) -> dict[str, Any]:
        words = self.rng.choice(WORDS)
        return self.request("danmaku", stamp_text(f"{words} ({self.user})", wall_us), now)

    def like(self, now: float) -> dict[str, Any]:
        return self.request("like", str(self.rng.randint(1, 10)), now)

    def wants(self, later: Later) -> bool:
        """Whether to still send it when its time comes (not after the sale sold out)."""
        return later.target not in self.gone

    def answer(self, msg: Mapping[str, Any], now: float) -> tuple[Metric | None, Later | None]:
        """The metric of an answer, or the retry to send (an `unavailable` answer, same rid)."""
        rid = msg.get("rid")
        p = self.pending.get(rid) if isinstance(rid, str) else None
        if p is None:
            return None, None
        code, ok = outcome(p.kind, msg)
        if code == "unavailable" and p.tries < MAX_RETRIES:
            p.tries += 1
            return None, Later(RETRY_AFTER_S * p.tries, "retry", str(rid))
        del self.pending[str(rid)]
        ms = (now - p.sent) * 1000
        if p.kind in PLAIN and ok:
            return Metric(p.kind, ms), None
        return Metric(f"{p.kind}:{code}", ms, None if ok else code), None

    def retry_message(self, rid: str) -> dict[str, Any] | None:
        """The same request again, same rid (after `unavailable`)."""
        p = self.pending.get(rid)
        if p is None:
            return None
        field_name = {"grab": "sale", "claim": "batch", "enter": "lottery"}.get(p.kind)
        if field_name is None:
            return None
        kind = "lottery_enter" if p.kind == "enter" else p.kind
        return {"type": kind, field_name: p.target, "rid": rid}

    def overdue(self, now: float) -> list[Metric]:
        """Requests unanswered for `timeout_s`: forgotten, reported as failures."""
        late = [rid for rid, p in self.pending.items() if now - p.sent > self.timeout_s]
        out = []
        for rid in late:
            p = self.pending.pop(rid)
            out.append(Metric(f"{p.kind}:no_answer", (now - p.sent) * 1000, "no_answer"))
        return out

    # -- server messages --------------------------------------------------------------------

    def on_message(
        self, msg: Mapping[str, Any], now: float, wall_ms: float
    ) -> tuple[list[Metric], list[Later]]:
        seq = msg.get("seq")
        if isinstance(seq, int) and (self.seq is None or seq > self.seq):
            self.seq = seq
        kind = msg.get("type")
        if kind == "chat":
            if not self.watcher:
                return [], []
            return [Metric("deliver", ms) for ms in deliveries(msg, int(wall_ms * 1000))], []
        if kind == "popup" and isinstance(msg.get("popup"), dict):
            return self._popup(msg["popup"], wall_ms)
        if kind in ("welcome", "resync"):
            self.epoch = str(msg.get("epoch") or self.epoch)
            snapshot = msg.get("snapshot")
            return [], self._snapshot(snapshot if isinstance(snapshot, dict) else {}, wall_ms)
        if kind == "stock" and msg.get("left") == 0:
            self.gone.add(str(msg.get("sale")))
        elif kind == "coupon_left" and msg.get("left") == 0:
            self.gone.add(str(msg.get("batch")))
        if kind in ("result", "error") and msg.get("rid") is not None:
            metric, retry = self.answer(msg, now)
            return ([metric] if metric else []), ([retry] if retry else [])
        if kind == "error":
            return [Metric(f"error:{msg.get('code')}", 0.0, str(msg.get("code")))], []
        return [], []

    def _popup(self, popup: Mapping[str, Any], wall_ms: float) -> tuple[list[Metric], list[Later]]:
        pid, kind, data = str(popup.get("id")), str(popup.get("kind")), popup.get("data")
        if pid in self.popups or not isinstance(data, dict):
            return [], []
        self.popups.add(pid)
        ts = popup.get("ts")
        metrics = [Metric(f"popup:{kind}", max(0.0, wall_ms - ts))] if isinstance(ts, int) else []
        if kind == "sold_out":
            self.gone.add(str(data.get("sale")))
        elif kind == "coupon_all_claimed":
            self.gone.add(str(data.get("batch")))
        elif kind in ("seckill", "coupon", "lottery"):
            # the countdown runs on the engine's clock: from the popup's `ts`, as clients do
            return metrics, self._promo(kind, data, ts if isinstance(ts, int) else wall_ms)
        return metrics, []

    def _snapshot(self, snapshot: Mapping[str, Any], wall_ms: float) -> list[Later]:
        out: list[Later] = []
        for kind, key in (("seckill", "sales"), ("coupon", "coupons"), ("lottery", "lotteries")):
            items = snapshot.get(key)
            for item in items if isinstance(items, list) else ():
                if isinstance(item, dict):
                    out += self._promo(kind, item, wall_ms)
        return out

    def _promo(self, kind: str, data: Mapping[str, Any], now_ms: float) -> list[Later]:
        """A sale, coupon batch or lottery seen (popup or snapshot): when to act on it, once.
        `now_ms`: the popup's time (engine clock), or for a snapshot our clock."""
        target = str(data.get({"seckill": "sale", "coupon": "batch"}.get(kind, "lottery")))
        if target in self.acted:
            return []
        self.acted.add(target)
        react = self.rng.uniform(*self.react_s)
        if kind == "seckill":
            start, end = data.get("start_at"), data.get("end_at")
            if data.get("left") == 0 or (isinstance(end, int) and end <= now_ms):
                return []
            t0 = max(0.0, (start - now_ms) / 1000) if isinstance(start, int) else 0.0
            return [Later(t0 + self.rng.uniform(0.0, self.grab_jitter_s), "grab", target)]
        if kind == "coupon":
            return [] if data.get("left") == 0 else [Later(react, "claim", target)]
        keyword = data.get("keyword")
        if data.get("entry") in ("keyword", "both") and keyword and self.rng.random() < 0.5:
            return [Later(react, "keyword", str(keyword))]
        return [Later(react, "enter", target)]


WORDS: Final = (
    "666",
    "hello from the load test",
    "how much is the red one?",
    "want!!",
    "is there a size M?",
    "ship to Hangzhou?",
    "first time here",
    "❤️ love it",
    "the link please",
    "great price",
)


# -- the anchor's live ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """A control command `at` seconds after the anchor started. In `params`, `start_in_s`
    becomes `start_at` (ms) when it is sent (see `resolve`)."""

    at: float
    command: str
    params: dict[str, Any]


PRODUCTS: Final = [
    {
        "id": f"lt-p{i}",
        "name": name,
        "image": f"https://example.com/img/p{i}.jpg",
        "price": price,
        "list_price": price * 2,
        "stock": 1000,
    }
    for i, (name, price) in enumerate(
        [("Silk scarf", 9900), ("Green tea 250 g", 4900), ("Ceramic mug", 2900)]
    )
]


def anchor_plan(
    *,
    run: str,
    viewers: int,
    cycle_s: float = 30.0,
    first_s: float = 1.0,
    countdown_s: float = 3.0,
    stock: int = 0,
    coupons: int = 0,
    winners: int = 3,
    lift_ip_limits: bool = False,
) -> Iterator[Step]:
    """The anchor's timeline: setup at 0, then cycle k from `first_s + k * cycle_s`: a product
    card and a flash sale opening after `countdown_s` (stock: a quarter of the viewers unless
    given), a coupon drop at 30 % of the cycle (half the viewers), a lottery at 45 % (keyword or
    lottery_enter) drawn at 85 %, a live-numbers read at 60 %. Ids carry `run`, so two runs in
    one room never collide. `lift_ip_limits`: first switch the room's per-IP rate limits off
    (`set_limit`), for a load that comes from a few addresses the engine cannot see past (a
    deployed engine behind its own load balancer). Endless: the caller stops reading it."""
    stock = stock or max(1, viewers // 4)
    coupons = coupons or max(1, viewers // 2)
    yield Step(0.0, "create_room", {"title": "Locust live", "anchor": ANCHOR})
    for action in (
        ("join", "danmaku", "like", "grab", "coupon", "lottery") if lift_ip_limits else ()
    ):
        yield Step(0.0, "set_limit", {"action": action, "dimension": "ip", "off": True})
    yield Step(0.0, "set_products", {"products": PRODUCTS})
    yield Step(0.0, "start_room", {})
    k = 0
    while True:
        t, tag = first_s + k * cycle_s, f"{run}-{k}"
        product = PRODUCTS[k % len(PRODUCTS)]["id"]
        yield Step(t, "pin_product", {"product": product})
        yield Step(
            t,
            "start_seckill",
            {
                "product": product,
                "price": 990,
                "stock": stock,
                "limit": 1,
                "sale": f"s{tag}",
                "start_in_s": countdown_s,
                "duration_s": max(2.0, cycle_s * 0.5),
            },
        )
        yield Step(
            t + cycle_s * 0.3,
            "drop_coupon",
            {
                "batch": f"c{tag}",
                "kind": "no_threshold",
                "value": 500,
                "quantity": coupons,
                "title": "5 off",
                "claim_s": max(1.0, cycle_s * 0.5),
            },
        )
        yield Step(
            t + cycle_s * 0.45,
            "create_lottery",
            {
                "lottery": f"l{tag}",
                "prize": "a tea set",
                "winners": winners,
                "entry": "both",
                "keyword": f"tea{k}",
            },
        )
        yield Step(t + cycle_s * 0.6, "live_numbers", {})
        yield Step(t + cycle_s * 0.85, "draw_lottery", {"lottery": f"l{tag}"})
        k += 1


def resolve(step: Step, wall_ms: int) -> dict[str, Any]:
    """The step's parameters as sent at `wall_ms`."""
    params = dict(step.params)
    start_in = params.pop("start_in_s", None)
    if start_in is not None:
        params["start_at"] = wall_ms + int(start_in * 1000)
    return params


# Control answers that mean "already so", not a fault: a second run in the same room
# (create_room: room_exists; start_room on a live room: bad_state).
TOLERATED: Final = {("create_room", "room_exists"), ("start_room", "bad_state")}


def control_code(status: int, body: Any) -> str:
    """The engine's error code of a control answer ('ok' below 400)."""
    if status < 400:
        return "ok"
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code")) if isinstance(error, dict) else f"http_{status}"
