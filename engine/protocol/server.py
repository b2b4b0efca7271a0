"""Server-to-client messages. Each builder returns the wire map; the broadcaster encodes it once
per codec and writes the same bytes to every connection.

Every server message is a map with `type`. Frames made of room messages may carry `seq`: the
room position the viewer has reached once it has this frame (everything up to and including it
was delivered); a reconnecting viewer sends back the last `seq` it saw (see docs/protocol.md).
Chat items, popups and pinned messages are built once, when they enter the bus, in their wire
shape, so fan-out never converts per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from engine.errors import ErrorCode
from engine.protocol.client import RequestId

SERVER_TYPES: Final = frozenset(
    {
        "welcome",
        "resync",
        "status",
        "chat",
        "likes",
        "online",
        "popup",
        "pinned",
        "phrases",
        "stock",
        "coupon_left",
        "lottery_entrants",
        "result",
        "pong",
        "error",
    }
)


def _with_seq(message: dict[str, Any], seq: int | None) -> dict[str, Any]:
    if seq is not None:
        message["seq"] = seq
    return message


def welcome(
    *,
    room: str,
    user: str,
    role: str,
    conn: str,
    node: str,
    snapshot: dict[str, Any],
    heartbeat_s: float,
    limits: dict[str, int],
    epoch: str = "",
    seq: int = 0,
    recovery: str = "fresh",
    reason: str | None = None,
) -> dict[str, Any]:
    """`recovery`: "fresh" (no position given), "resumed" (the missed messages follow, then live
    ones) or "resync" (the position could not be resumed: start over from this snapshot);
    `reason` says why for a resync."""
    out: dict[str, Any] = {
        "type": "welcome",
        "room": room,
        "user": user,
        "role": role,
        "conn": conn,
        "node": node,
        "epoch": epoch,
        "seq": seq,
        "recovery": recovery,
        "snapshot": snapshot,
        "heartbeat": heartbeat_s,
        "limits": limits,
    }
    if reason is not None:
        out["reason"] = reason
    return out


def resync(*, epoch: str, seq: int, reason: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Mid-connection: the room's history could not be followed (e.g. Redis lost its data)."""
    return {"type": "resync", "epoch": epoch, "seq": seq, "reason": reason, "snapshot": snapshot}


def status(*, degraded: bool, reason: str | None = None) -> dict[str, Any]:
    """The room is (or is no longer) degraded: messages may be late while it lasts."""
    out: dict[str, Any] = {"type": "status", "degraded": degraded}
    if reason is not None:
        out["reason"] = reason
    return out


def snapshot(
    *,
    online: int,
    likes: int,
    pinned: dict[str, Any] | None,
    popup: dict[str, Any] | None,
    phrases: Sequence[dict[str, Any]],
    cards: dict[str, Any] | None = None,
    sales: Sequence[dict[str, Any]] = (),
    coupons: Sequence[dict[str, Any]] = (),
    lotteries: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """`cards`: the mounted product cards {mounted: [card...], pinned: product id or null};
    `sales`: the running flash sales with their live stock; `coupons`: the coupon batches open
    for claims with their counts; `lotteries`: the lotteries not yet drawn with their entrants."""
    return {
        "online": online,
        "likes": likes,
        "pinned": pinned,
        "popup": popup,
        "phrases": list(phrases),
        "cards": cards if cards is not None else {"mounted": [], "pinned": None},
        "sales": list(sales),
        "coupons": list(coupons),
        "lotteries": list(lotteries),
    }


def chat_item(
    *,
    msg_id: str,
    user: str,
    name: str,
    text: str,
    ts: int,
    role: str = "viewer",
    reply_to: dict[str, str] | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": msg_id, "user": user, "name": name, "text": text, "ts": ts}
    if role != "viewer":
        item["role"] = role
    if reply_to is not None:
        item["reply_to"] = reply_to
    return item


def chat(items: Sequence[dict[str, Any]], seq: int | None = None) -> dict[str, Any]:
    return _with_seq({"type": "chat", "msgs": list(items)}, seq)


def likes(total: int, seq: int | None = None) -> dict[str, Any]:
    return _with_seq({"type": "likes", "total": total}, seq)


def online(count: int) -> dict[str, Any]:
    return {"type": "online", "count": count}


def popup_item(
    *, popup_id: str, kind: str, data: dict[str, Any], ts: int, ttl_s: float | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": popup_id, "kind": kind, "data": data, "ts": ts}
    if ttl_s is not None:
        item["ttl"] = ttl_s
    return item


def popup(item: dict[str, Any], seq: int | None = None) -> dict[str, Any]:
    return _with_seq({"type": "popup", "popup": item}, seq)


def pinned(item: dict[str, Any] | None, seq: int | None = None) -> dict[str, Any]:
    return _with_seq({"type": "pinned", "msg": item}, seq)


def phrases(items: Sequence[dict[str, Any]], seq: int | None = None) -> dict[str, Any]:
    return _with_seq({"type": "phrases", "phrases": list(items)}, seq)


def result(rid: RequestId, *, ok: bool, code: str | None = None, **data: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "result", "rid": rid, "ok": ok}
    if code is not None:
        out["code"] = code
    if data:
        out["data"] = data
    return out


def pong(rid: RequestId, ts: int) -> dict[str, Any]:
    return {"type": "pong", "rid": rid, "ts": ts}


def error(
    code: ErrorCode, message: str, rid: RequestId = None, *, retry_after_ms: int | None = None
) -> dict[str, Any]:
    """`retry_after_ms` (rate_limited): when the same request could pass; -1: never at its size."""
    out: dict[str, Any] = {"type": "error", "code": code.value, "message": message}
    if rid is not None:
        out["rid"] = rid
    if retry_after_ms is not None:
        out["retry_after_ms"] = retry_after_ms
    return out
