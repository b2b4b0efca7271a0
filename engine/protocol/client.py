"""Client-to-server messages: the envelope, every type and its validation.

Envelope: a map with `type` (str), optional `rid` (the client's request id: a string of at most
64 characters or an integer, echoed in the answer) and the fields of that type. Fields a type does
not know are ignored, so older servers accept newer clients.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from engine.errors import ErrorCode, ProtocolError
from engine.protocol.codec import Codec

RequestId = str | int | None

MAX_RID_CHARS: Final = 64
MAX_USER_ID_CHARS: Final = 64
MAX_PHRASE_ID: Final = 10_000
MAX_GRAB_QTY: Final = 99
OBJECT_ID: Final = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")  # rooms, products (as identity ids)
SALE_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,48}$")  # no '.': a hold id is "<sale>.<n>"


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 4096
    max_text_chars: int = 200
    max_likes: int = 100


@dataclass(frozen=True, slots=True)
class Danmaku:
    """A chat message: free `text`, or a room quick phrase by `phrase` id; anchors may reply."""

    text: str | None = None
    phrase: int | None = None
    reply_to: str | None = None
    rid: RequestId = None
    type: str = "danmaku"


@dataclass(frozen=True, slots=True)
class Like:
    count: int = 1
    rid: RequestId = None
    type: str = "like"


@dataclass(frozen=True, slots=True)
class Ping:
    rid: RequestId = None
    type: str = "ping"


@dataclass(frozen=True, slots=True)
class Pin:
    """Anchor/admin: pin a message for everyone, including viewers who join later."""

    text: str
    rid: RequestId = None
    type: str = "pin"


@dataclass(frozen=True, slots=True)
class Unpin:
    rid: RequestId = None
    type: str = "unpin"


@dataclass(frozen=True, slots=True)
class Leave:
    rid: RequestId = None
    type: str = "leave"


@dataclass(frozen=True, slots=True)
class Reserve:
    """Reserve the (scheduled) room: the host is told, and reminded to notify before the start."""

    rid: RequestId = None
    type: str = "reserve"


@dataclass(frozen=True, slots=True)
class Unreserve:
    rid: RequestId = None
    type: str = "unreserve"


@dataclass(frozen=True, slots=True)
class Grab:
    """Grab `qty` units of a running flash sale. `rid` is required: it is the idempotency key (a
    retry with the same rid gets the first answer again). `room`, if given, must be the
    connection's room."""

    sale: str
    rid: RequestId = None
    qty: int = 1
    room: str | None = None
    type: str = "grab"


@dataclass(frozen=True, slots=True)
class Click:
    """A click on a product card (counted for the statistics)."""

    product: str
    rid: RequestId = None
    type: str = "click"


@dataclass(frozen=True, slots=True)
class Claim:
    """Claim a coupon of a dropped batch. `rid` is required: it is the idempotency key (a retry
    with the same rid gets the first answer again)."""

    batch: str
    rid: RequestId = None
    type: str = "claim"


@dataclass(frozen=True, slots=True)
class Follow:
    """Follow the room's anchor (idempotent); it also enters lotteries that take follows."""

    rid: RequestId = None
    type: str = "follow"


@dataclass(frozen=True, slots=True)
class LotteryEnter:
    """Enter a lottery explicitly (keyword lotteries also take the keyword as a danmaku)."""

    lottery: str
    rid: RequestId = None
    type: str = "lottery_enter"


ClientMessage = (
    Danmaku | Like | Ping | Pin | Unpin | Leave | Reserve | Unreserve | Grab | Click | Claim
    | Follow | LotteryEnter
)  # fmt: skip


def to_wire(message: ClientMessage) -> dict[str, Any]:
    """The wire form of a client message (used by our clients and tests)."""
    out: dict[str, Any] = {"type": message.type}
    for name in message.__slots__:
        value = getattr(message, name)
        if name != "type" and value is not None:
            out[name] = value
    return out


# --- validation --------------------------------------------------------------------------


def _bad(field: str, why: str) -> ProtocolError:
    return ProtocolError(f"{field}: {why}", code=ErrorCode.BAD_FIELD)


def _rid(obj: dict[Any, Any]) -> RequestId:
    rid = obj.get("rid")
    if rid is None:
        return None
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        raise _bad("rid", "must be a string or an integer")
    if isinstance(rid, str) and not 0 < len(rid) <= MAX_RID_CHARS:
        raise _bad("rid", f"must be 1..{MAX_RID_CHARS} characters")
    if isinstance(rid, int) and not -(2**53) < rid < 2**53:
        raise _bad("rid", "integer out of range")
    return rid


def clean_text(value: Any, field: str, max_chars: int) -> str:
    """Trimmed text with no control characters; emoji and every script are welcome."""
    if not isinstance(value, str):
        raise _bad(field, "must be a string")
    text = value.strip()
    if not text:
        raise _bad(field, "must not be empty")
    if len(text) > max_chars:
        raise ProtocolError(
            f"{field}: longer than {max_chars} characters", code=ErrorCode.TOO_LARGE
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in text):
        raise _bad(field, "contains control characters")
    return text


def _user_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_USER_ID_CHARS:
        raise _bad(field, f"must be a user id of 1..{MAX_USER_ID_CHARS} characters")
    return value


def _danmaku(obj: dict[Any, Any], rid: RequestId, limits: Limits) -> Danmaku:
    text, phrase = obj.get("text"), obj.get("phrase")
    if (text is None) == (phrase is None):
        raise _bad("text", "give exactly one of text or phrase")
    if phrase is not None and (
        isinstance(phrase, bool) or not isinstance(phrase, int) or not 0 <= phrase <= MAX_PHRASE_ID
    ):
        raise _bad("phrase", f"must be an integer 0..{MAX_PHRASE_ID}")
    reply_to = obj.get("reply_to")
    return Danmaku(
        text=None if text is None else clean_text(text, "text", limits.max_text_chars),
        phrase=phrase,
        reply_to=None if reply_to is None else _user_id(reply_to, "reply_to"),
        rid=rid,
    )


def _like(obj: dict[Any, Any], rid: RequestId, limits: Limits) -> Like:
    count = obj.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= limits.max_likes:
        raise _bad("count", f"must be an integer 1..{limits.max_likes}")
    return Like(count=count, rid=rid)


def _pin(obj: dict[Any, Any], rid: RequestId, limits: Limits) -> Pin:
    return Pin(text=clean_text(obj.get("text"), "text", limits.max_text_chars), rid=rid)


def _object_id(value: Any, field: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise _bad(field, f"must match {pattern.pattern}")
    return value


def _grab(obj: dict[Any, Any], rid: RequestId, limits: Limits) -> Grab:
    if rid is None:
        raise _bad("rid", "a grab needs a request id (its idempotency key)")
    qty = obj.get("qty", 1)
    if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_GRAB_QTY:
        raise _bad("qty", f"must be an integer 1..{MAX_GRAB_QTY}")
    room = obj.get("room")
    return Grab(
        sale=_object_id(obj.get("sale"), "sale", SALE_ID),
        rid=rid,
        qty=qty,
        room=None if room is None else _object_id(room, "room", OBJECT_ID),
    )


def _click(obj: dict[Any, Any], rid: RequestId, limits: Limits) -> Click:
    return Click(product=_object_id(obj.get("product"), "product", OBJECT_ID), rid=rid)


def _claim(obj: dict[Any, Any], rid: RequestId, limits: Limits) -> Claim:
    if rid is None:
        raise _bad("rid", "a claim needs a request id (its idempotency key)")
    return Claim(batch=_object_id(obj.get("batch"), "batch", SALE_ID), rid=rid)


def _lottery_enter(obj: dict[Any, Any], rid: RequestId, limits: Limits) -> LotteryEnter:
    return LotteryEnter(lottery=_object_id(obj.get("lottery"), "lottery", SALE_ID), rid=rid)


_Parser = Callable[[dict[Any, Any], RequestId, Limits], "ClientMessage"]
_PARSERS: Final[dict[str, _Parser]] = {
    "danmaku": _danmaku,
    "like": _like,
    "ping": lambda obj, rid, limits: Ping(rid=rid),
    "pin": _pin,
    "unpin": lambda obj, rid, limits: Unpin(rid=rid),
    "leave": lambda obj, rid, limits: Leave(rid=rid),
    "reserve": lambda obj, rid, limits: Reserve(rid=rid),
    "unreserve": lambda obj, rid, limits: Unreserve(rid=rid),
    "grab": _grab,
    "click": _click,
    "claim": _claim,
    "follow": lambda obj, rid, limits: Follow(rid=rid),
    "lottery_enter": _lottery_enter,
}
CLIENT_TYPES: Final = frozenset(_PARSERS)


def parse_client_message(obj: Any, limits: Limits) -> ClientMessage:
    """Validate one decoded client message. Raises only `ProtocolError` (with `.rid` set when the
    message carried a usable one, so the error frame can name the request)."""
    if not isinstance(obj, dict):
        raise ProtocolError("a message must be a map", code=ErrorCode.BAD_FRAME)
    rid: RequestId = None
    try:
        rid = _rid(obj)
        kind = obj.get("type")
        if not isinstance(kind, str):
            raise _bad("type", "missing or not a string")
        parser = _PARSERS.get(kind)
        if parser is None:
            raise ProtocolError(f"unknown message type {kind[:32]!r}", code=ErrorCode.UNKNOWN_TYPE)
        message: ClientMessage = parser(obj, rid, limits)
        return message
    except ProtocolError as exc:
        exc.rid = rid
        raise


def decode_client_message(codec: Codec, data: bytes | str, limits: Limits) -> ClientMessage:
    """Bytes (or text) of one whole WebSocket message -> a validated client message."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > limits.max_message_bytes:
        raise ProtocolError(
            f"message of {size} bytes is over {limits.max_message_bytes}", code=ErrorCode.TOO_LARGE
        )
    return parse_client_message(codec.decode(data), limits)
