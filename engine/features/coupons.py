"""Coupons, the pure part: validating a batch, the shapes of claim answers, and what viewers see.
No I/O here; `coupons_node` does the I/O and `scripts/lua/coupon_*.lua` make every decision on
shared state (docs/coupons.md).

A batch is `quantity` coupons of one kind and value, valid until a time. It is *created*
(share-for-coupon grants may use it), *scheduled* (dropped later by the durable scheduler) or
*live* (dropped: viewers got a popup and may claim until its claim window closes), then *ended*.
Each user gets at most one coupon of a batch, whoever asks (a viewer's claim or a share grant),
however often; at every moment quantity = left + granted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from engine.errors import ErrorCode, RequestRefused
from engine.protocol.client import OBJECT_ID, SALE_ID

KINDS: Final = ("fixed", "threshold", "no_threshold", "percent")
MAX_QUANTITY: Final = 10_000_000
MAX_VALUE: Final = 10**12  # minor units (fen, cents)
MAX_VALID_S: Final = 366 * 86400
MAX_CLAIM_S: Final = 7 * 86400
DEFAULT_VALID_S: Final = 7 * 86400
MAX_TITLE_CHARS: Final = 32
OK: Final = "ok"
SOURCES: Final = ("viewer", "share")


def refuse(code: ErrorCode, message: str) -> RequestRefused:
    return RequestRefused(message, code=code)


def valid_batch_id(value: Any) -> bool:
    """Batch ids are like sale ids (no '.': a coupon id is "<batch>.<n>")."""
    return isinstance(value, str) and SALE_ID.match(value) is not None


@dataclass(frozen=True, slots=True)
class BatchSpec:
    batch: str
    kind: str
    value: int  # minor units off, or percent off for `percent`
    threshold: int  # the order must reach this (minor units); 0: none
    quantity: int
    valid_until: int  # ms: when the coupons stop being usable (the host enforces use)
    claim_ms: int  # claim window after the drop (0: until valid_until)
    title: str
    product: str  # `fixed`: the product the amount comes off; else ""

    def terms(self) -> dict[str, Any]:
        """The batch as the host and viewers see it."""
        out: dict[str, Any] = {"batch": self.batch, "kind": self.kind, "value": self.value,
                               "threshold": self.threshold, "quantity": self.quantity,
                               "valid_until": self.valid_until}  # fmt: skip
        if self.title:
            out["title"] = self.title
        if self.product:
            out["product"] = self.product
        return out


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise refuse(ErrorCode.BAD_FIELD, f"{name} must be an integer {low}..{high}")
    return value


def _seconds(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise refuse(ErrorCode.BAD_FIELD, f"{name} must be a number {low:g}..{high:g}")
    return float(value)


def batch_spec(
    *,
    batch: Any,
    kind: Any = None,
    value: Any = None,
    quantity: Any = None,
    threshold: Any = 0,
    valid_until: Any = None,
    valid_s: Any = None,
    claim_s: Any = None,
    title: Any = None,
    product: Any = None,
    now: int,
) -> BatchSpec:
    """Validate an operator's batch. Raises RequestRefused(bad_field) saying what is wrong.

    Kinds: `fixed` (`value` off one `product`), `threshold` (`value` off an order of at least
    `threshold`, which must be more than the value), `no_threshold` (`value` off any order),
    `percent` (`value` percent off, 1..99, optionally from `threshold` on)."""
    if not valid_batch_id(batch):
        raise refuse(ErrorCode.BAD_FIELD, "batch id must be 1..48 of [A-Za-z0-9_-]")
    if kind not in KINDS:
        raise refuse(ErrorCode.BAD_FIELD, f"kind must be one of {', '.join(KINDS)}")
    high = 99 if kind == "percent" else MAX_VALUE
    amount = _int(value, "value", 1, high)
    floor = _int(threshold if threshold is not None else 0, "threshold", 0, MAX_VALUE)
    if kind == "threshold" and floor <= amount:
        raise refuse(ErrorCode.BAD_FIELD, "a threshold coupon needs a threshold above its value")
    if kind in ("no_threshold", "fixed") and floor:
        raise refuse(ErrorCode.BAD_FIELD, f"a {kind} coupon has no threshold")
    if kind == "fixed":
        if not isinstance(product, str) or OBJECT_ID.match(product) is None:
            raise refuse(ErrorCode.BAD_FIELD, "a fixed coupon names its product")
    elif product is not None:
        raise refuse(ErrorCode.BAD_FIELD, "only a fixed coupon names a product")
    if valid_until is not None and valid_s is not None:
        raise refuse(ErrorCode.BAD_FIELD, "give valid_until or valid_s, not both")
    if valid_until is None:
        seconds = DEFAULT_VALID_S if valid_s is None else valid_s
        until = now + int(_seconds(seconds, "valid_s", 60, MAX_VALID_S) * 1000)
    else:
        until = _int(valid_until, "valid_until", 0, 2**53)
    if until <= now:
        raise refuse(ErrorCode.BAD_FIELD, "valid_until is in the past")
    if until - now > MAX_VALID_S * 1000:
        raise refuse(ErrorCode.BAD_FIELD, f"coupons are valid for at most {MAX_VALID_S} s")
    claim_ms = 0 if claim_s is None else int(_seconds(claim_s, "claim_s", 1, MAX_CLAIM_S) * 1000)
    name = ""
    if title is not None:
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_CHARS:
            raise refuse(ErrorCode.BAD_FIELD, f"title must be 1..{MAX_TITLE_CHARS} characters")
        name = title.strip()
    return BatchSpec(
        batch=batch,
        kind=kind,
        value=amount,
        threshold=floor,
        quantity=_int(quantity, "quantity", 1, MAX_QUANTITY),
        valid_until=until,
        claim_ms=claim_ms,
        title=name,
        product=product if kind == "fixed" else "",
    )


# --- claims --------------------------------------------------------------------------------


def viewer_key(rid: str | int) -> str:
    """A viewer's request id as the claim script keys it (an int and a string never collide)."""
    return f"i{rid}" if isinstance(rid, int) else f"s{rid}"


def share_key(share_id: str) -> str:
    """A share grant's request key: one grant decision per host share id."""
    return f"h{share_id}"


@dataclass(frozen=True, slots=True)
class ClaimAnswer:
    code: str  # "ok" or a claim code
    coupon: str = ""  # the coupon id (ok, and already_claimed: the one the user has)
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.code == OK


UNAVAILABLE: Final = ClaimAnswer(ErrorCode.UNAVAILABLE.value)


@dataclass(frozen=True, slots=True)
class CountView:
    """A batch's count as viewers see it; `ver` grows with every grant."""

    left: int
    quantity: int
    ver: int


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_claim_reply(
    reply: Sequence[Any], count: int
) -> tuple[CountView | None, bool, dict[str, Any], list[ClaimAnswer]]:
    """The claim script's reply: (count view, or None for an unknown batch; all claimed by this
    call; the batch terms; one answer per claim in order)."""
    left, quantity, ver, all_now = (int(v) for v in reply[:4])
    terms = {"kind": _s(reply[4]), "value": int(reply[5]), "threshold": int(reply[6]),
             "valid_until": int(reply[7])}  # fmt: skip
    if _s(reply[8]):
        terms["title"] = _s(reply[8])
    if _s(reply[9]):
        terms["product"] = _s(reply[9])
    answers = [
        ClaimAnswer(_s(reply[i]), _s(reply[i + 1]), reply[i + 2] == 1)
        for i in range(10, 10 + 3 * count, 3)
    ]
    view = None if left < 0 else CountView(left, quantity, ver)
    return view, all_now == 1, terms, answers


def claim_data(batch: str, answer: ClaimAnswer, terms: Mapping[str, Any]) -> dict[str, Any]:
    """The data of a claim's `result`: the coupon and its terms when granted; the batch (and
    the user's coupon for already_claimed) when not."""
    data: dict[str, Any] = {"batch": batch}
    if answer.coupon:
        data["coupon"] = answer.coupon
    if answer.ok:
        data.update(terms)
    if answer.replayed:
        data["replayed"] = True
    return data


# --- what viewers see ----------------------------------------------------------------------


def count_key(batch: str) -> str:
    return f"coupon:{batch}"


def count_message(batch: str, view: CountView) -> dict[str, Any]:
    """The `coupon_left` server message (at most one per batch and tick reaches a viewer)."""
    return {"type": "coupon_left", "batch": batch, "left": view.left,
            "quantity": view.quantity, "ver": view.ver}  # fmt: skip


def coupon_views(state: Mapping[str, Any], now: int) -> list[dict[str, Any]]:
    """The room's live batches for a snapshot, from the state hash fields `coupon:<id>` (the
    batch as dropped) and `cleft:<id>` ([left, quantity, ver], kept by the claim script); batches
    whose claim window has closed are left out; soonest closing first."""
    out = []
    for field, value in state.items():
        if not field.startswith("coupon:") or not isinstance(value, dict):
            continue
        if int(value.get("claim_until", 0)) <= now:
            continue
        view = dict(value)
        live = state.get("cleft:" + field[7:])
        if isinstance(live, list | tuple) and len(live) == 3:
            view["left"], view["quantity"], view["ver"] = (int(v) for v in live)
        out.append(view)
    out.sort(key=lambda v: (v["claim_until"], v["batch"]))
    return out


def batch_info(batch: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """A batch's stored hash as the control plane shows it."""
    out: dict[str, Any] = {"batch": batch}
    for name, value in raw.items():
        if name in ("so", "expire_at"):
            continue
        out[name] = int(value) if value.lstrip("-").isdigit() else value
    if not out.get("title"):
        out.pop("title", None)
    if not out.get("product"):
        out.pop("product", None)
    return out
