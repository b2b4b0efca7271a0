"""Flash sales (seckill), the pure part: validating a sale, the shapes of grab answers, the
node's sold-out shortcut, and what viewers see. No I/O here; `seckill_node` does the I/O and
`scripts/lua/seckill_*.lua` make every decision that touches shared state.

A sale is on one product of the room, with its own price, stock, per-user limit (units), window
[start, end) and hold time. A granted grab is a *hold*: units reserved for the user until the host
confirms the payment (sold), cancels it, or it expires (released). At every moment
stock = left + held + sold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from engine.errors import ErrorCode, RequestRefused
from engine.protocol.client import SALE_ID

MAX_STOCK: Final = 100_000_000
MAX_LIMIT: Final = 1_000_000
MAX_PRICE: Final = 10**12  # in the currency's minor unit (fen, cents)
MAX_DURATION_S: Final = 7 * 86400
MIN_HOLD_S: Final = 1.0
MAX_HOLD_S: Final = 86400.0

# Grab answers, as the grab script returns them; each is an `ErrorCode` except "ok".
OK: Final = "ok"
GRAB_CODES: Final = frozenset(
    {
        ErrorCode.SOLD_OUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_STARTED,
        ErrorCode.ENDED,
        ErrorCode.BANNED,
        ErrorCode.DUPLICATE,
        ErrorCode.UNKNOWN_SALE,
    }
)


def refuse(code: ErrorCode, message: str) -> RequestRefused:
    return RequestRefused(message, code=code)


# --- starting a sale ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SaleSpec:
    sale: str
    product: str
    price: int
    stock: int
    limit: int
    start_ms: int
    end_ms: int
    hold_ms: int

    def view(self, product: Mapping[str, Any] | None) -> dict[str, Any]:
        """The sale as viewers see it (popup and snapshot): product card fields, price, window,
        limit, stock."""
        p = product or {}
        return {
            "sale": self.sale,
            "product": self.product,
            "name": p.get("name"),
            "image": p.get("image"),
            "list_price": p.get("list_price"),
            "price": self.price,
            "stock": self.stock,
            "left": self.stock,
            "limit": self.limit,
            "start_at": self.start_ms,
            "end_at": self.end_ms,
        }

    def event(self) -> dict[str, Any]:
        """Data of the `seckill.started` host event."""
        return {
            "sale": self.sale,
            "product": self.product,
            "price": self.price,
            "stock": self.stock,
            "limit": self.limit,
            "start_at": self.start_ms,
            "end_at": self.end_ms,
            "hold_s": self.hold_ms / 1000,
        }


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise refuse(ErrorCode.BAD_FIELD, f"{name} must be an integer {low}..{high}")
    return value


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise refuse(ErrorCode.BAD_FIELD, f"{name} must be a number {low:g}..{high:g}")
    return float(value)


def valid_sale_id(value: Any) -> bool:
    return isinstance(value, str) and SALE_ID.match(value) is not None


def sale_spec(
    *,
    sale: str,
    product: str,
    price: int,
    stock: int,
    limit: int,
    start_ms: int | None,
    end_ms: int | None,
    duration_s: float | None,
    hold_s: float,
    now: int,
) -> SaleSpec:
    """Validate the anchor's request. Times are ms since the epoch; `start_ms` defaults to now;
    give `end_ms` or `duration_s` (not both). Raises RequestRefused(bad_field)."""
    if not valid_sale_id(sale):
        raise refuse(ErrorCode.BAD_FIELD, "sale id must be 1..48 of [A-Za-z0-9_-]")
    if not isinstance(product, str) or not product:
        raise refuse(ErrorCode.BAD_FIELD, "product must be a product id")
    start = now if start_ms is None else _int(start_ms, "start_at", 0, 2**53)
    if (end_ms is None) == (duration_s is None):
        raise refuse(ErrorCode.BAD_FIELD, "give exactly one of end_at or duration_s")
    if duration_s is not None:
        end = start + int(_number(duration_s, "duration_s", 1, MAX_DURATION_S) * 1000)
    else:
        end = _int(end_ms, "end_at", 0, 2**53)
    if end <= start:
        raise refuse(ErrorCode.BAD_FIELD, "end_at must be after start_at")
    if end <= now:
        raise refuse(ErrorCode.BAD_FIELD, "end_at is in the past")
    if end - start > MAX_DURATION_S * 1000:
        raise refuse(ErrorCode.BAD_FIELD, f"a sale lasts at most {MAX_DURATION_S} s")
    return SaleSpec(
        sale=sale,
        product=product,
        price=_int(price, "price", 0, MAX_PRICE),
        stock=_int(stock, "stock", 1, MAX_STOCK),
        limit=_int(limit, "limit", 1, MAX_LIMIT),
        start_ms=start,
        end_ms=end,
        hold_ms=int(_number(hold_s, "hold_s", MIN_HOLD_S, MAX_HOLD_S) * 1000),
    )


# --- grabs -------------------------------------------------------------------------------


def rid_key(rid: str | int) -> str:
    """The request id as the grab script keys it (an int and a string never collide)."""
    return f"i{rid}" if isinstance(rid, int) else f"s{rid}"


@dataclass(frozen=True, slots=True)
class StockView:
    """A sale's stock as viewers see it; `ver` grows with every change of `left` or `stock`."""

    left: int
    stock: int
    ver: int


@dataclass(frozen=True, slots=True)
class GrabAnswer:
    code: str  # "ok" or a grab code
    hold: str = ""
    expires_at: int = 0
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.code == OK


UNAVAILABLE: Final = GrabAnswer(ErrorCode.UNAVAILABLE.value)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_grab_reply(
    reply: Sequence[Any], count: int
) -> tuple[StockView | None, bool, list[GrabAnswer]]:
    """The grab script's reply: (stock view or None for an unknown sale, sold out by this batch,
    one answer per grab in order)."""
    left, stock, ver, sold_out_now = (int(v) for v in reply[:4])
    answers = []
    for i in range(4, 4 + 4 * count, 4):
        answers.append(
            GrabAnswer(_s(reply[i]), _s(reply[i + 1]), int(reply[i + 2]), reply[i + 3] == 1)
        )
    view = None if left < 0 else StockView(left, stock, ver)
    return view, sold_out_now == 1, answers


def hold_sale(hold: Any) -> str:
    """The sale a hold id belongs to ("<sale>.<n>"). Raises RequestRefused(unknown_hold)."""
    if isinstance(hold, str):
        sale, dot, n = hold.rpartition(".")
        if dot and n.isdigit() and valid_sale_id(sale):
            return sale
    raise refuse(ErrorCode.UNKNOWN_HOLD, f"{str(hold)[:80]!r} is not a hold id")


# --- the sold-out shortcut ---------------------------------------------------------------


class SoldOutGate:
    """What one node knows about one sale, to answer grabs without Redis once it is sold out.

    The node learns the sale's stock from its own batch results (and asks Redis for the
    `seckill_peek` once it sees left = 0): with left = 0 at version v and the users who ever won
    a hold (read in the same step), a grab from anyone else can only get `sold_out` (or `ended`
    once the window closes) until the version changes, which needs stock to come back. Users who
    won something still go to Redis: their retries must get their first answer again. The
    shortcut lapses `recheck_s` after it was last confirmed, so one batch per lapse goes to Redis
    and notices stock that came back (restock, cancel, expiry) on any node.
    """

    __slots__ = ("end_ms", "left", "live", "loading", "recheck_s", "start_ms", "until", "ver",
                 "winners", "winners_ver")  # fmt: skip

    def __init__(self, recheck_s: float) -> None:
        self.recheck_s = recheck_s
        self.ver = -1
        self.left = -1
        self.winners: frozenset[str] | None = None
        self.winners_ver = -1
        self.start_ms = 0
        self.end_ms = 0
        self.live = True
        self.until = 0.0
        self.loading = False

    @property
    def needs_peek(self) -> bool:
        return self.left == 0 and self.winners_ver != self.ver and not self.loading

    def observe(self, view: StockView, mono: float) -> None:
        """A stock view read from Redis (a batch result, a host operation, a sweep)."""
        if view.ver > self.ver:
            self.ver, self.left = view.ver, view.left
        elif view.ver == self.ver and self.left == 0 and self.winners_ver == self.ver:
            self.until = mono + self.recheck_s  # still sold out, confirmed by Redis

    def peeked(self, reply: Sequence[Any], mono: float) -> None:
        """The `seckill_peek` reply: {left, ver, start, end, live, winners...}."""
        self.loading = False
        left, ver, start, end, live = (int(v) for v in reply[:5])
        if left < 0 or ver < self.ver:
            return
        self.ver, self.left = ver, left
        if left == 0:
            self.winners = frozenset(_s(u) for u in reply[5:])
            self.winners_ver = ver
            self.start_ms, self.end_ms, self.live = start, end, live == 1
            self.until = mono + self.recheck_s

    def decide(self, user: str, now: int, mono: float) -> str | None:
        """The answer for a grab from `user` without Redis, or None: ask Redis."""
        if self.left != 0 or self.winners_ver != self.ver or mono >= self.until:
            return None
        winners = self.winners
        if winners is None or user in winners or now < self.start_ms:
            return None
        return (
            ErrorCode.ENDED.value
            if not self.live or now >= self.end_ms
            else ErrorCode.SOLD_OUT.value
        )


# --- what viewers see --------------------------------------------------------------------


def stock_key(sale: str) -> str:
    return f"stock:{sale}"


def stock_message(sale: str, view: StockView) -> dict[str, Any]:
    """The `stock` server message (at most one per sale and tick reaches a viewer)."""
    return {"type": "stock", "sale": sale, "left": view.left, "stock": view.stock, "ver": view.ver}


def sale_views(state: Mapping[str, Any], now: int) -> list[dict[str, Any]]:
    """The running sales of a room for a viewer's snapshot, from the room state hash fields
    `sale:<id>` (the sale as started) and `left:<id>` ([left, stock, ver], kept current by the
    scripts), soonest end first; sales whose window has closed are left out."""
    out = []
    for field, value in state.items():
        if not field.startswith("sale:") or not isinstance(value, dict):
            continue
        if int(value.get("end_at", 0)) <= now:
            continue
        view = dict(value)
        live = state.get("left:" + field[5:])
        if isinstance(live, list | tuple) and len(live) == 3:
            view["left"], view["stock"], view["ver"] = (int(v) for v in live)
        out.append(view)
    out.sort(key=lambda v: (v["end_at"], v["sale"]))
    return out
