"""Stable error codes: the same string reaches the client, the log and the metric.

`docs/protocol.md` lists them; a code, once published, never changes meaning.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    # frames the client sent
    BAD_FRAME = "bad_frame"  # not decodable in the negotiated codec, or not a map
    UNKNOWN_TYPE = "unknown_type"  # `type` names no client message
    BAD_FIELD = "bad_field"  # a field is missing, of the wrong type or out of range
    TOO_LARGE = "too_large"  # message over max_message_bytes, or text over max_danmaku_chars
    FORBIDDEN = "forbidden"  # the role may not do this (e.g. a viewer pinning)
    RATE_LIMITED = "rate_limited"
    UNKNOWN_PHRASE = "unknown_phrase"
    # identity
    BAD_TOKEN = "bad_token"
    TOKEN_EXPIRED = "token_expired"
    WRONG_ROOM = "wrong_room"
    # connection lifecycle
    SLOW_CONSUMER = "slow_consumer"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    ABUSE = "abuse"
    SHUTTING_DOWN = "shutting_down"
    # control plane (docs/control.md)
    UNKNOWN_COMMAND = "unknown_command"  # no control command of that name
    ROOM_NOT_FOUND = "room_not_found"  # the room was never created with create_room
    ROOM_EXISTS = "room_exists"  # create_room for a room id that is taken
    BAD_STATE = "bad_state"  # not allowed in the room's current state (e.g. starting an ended room)
    REHEARSAL = "rehearsal"  # the room is in rehearsal: only staff tokens may join
    # products and flash sales (grab results, click results, host/anchor requests)
    SOLD_OUT = "sold_out"  # no stock left (or less than the quantity asked)
    LIMIT_REACHED = "limit_reached"  # the user would hold more than the sale's per-user limit
    NOT_STARTED = "not_started"  # the sale window has not opened yet
    ENDED = "ended"  # the sale window has closed, or the sale was stopped
    DUPLICATE = "duplicate"  # the request id was already used for a different request
    UNKNOWN_SALE = "unknown_sale"
    BANNED = "banned"  # the user is banned in this room
    UNKNOWN_PRODUCT = "unknown_product"
    UNKNOWN_HOLD = "unknown_hold"
    HOLD_EXPIRED = "hold_expired"  # the hold was not confirmed in time; its stock went back
    HOLD_CANCELLED = "hold_cancelled"
    ALREADY_CONFIRMED = "already_confirmed"  # a paid hold cannot be cancelled
    SALE_EXISTS = "sale_exists"
    # coupons (claim results, operator requests; docs/coupons.md)
    ALL_CLAIMED = "all_claimed"  # the batch has no coupon left
    ALREADY_CLAIMED = "already_claimed"  # one coupon per user and batch: this user has one
    UNKNOWN_BATCH = "unknown_batch"
    BATCH_EXISTS = "batch_exists"
    # lotteries (entry results, operator requests; docs/lottery.md)
    UNKNOWN_LOTTERY = "unknown_lottery"
    LOTTERY_EXISTS = "lottery_exists"
    LOTTERY_CLOSED = "lottery_closed"  # entries are closed (drawn, frozen for the draw, cancelled)
    FOLLOW_REQUIRED = "follow_required"  # a follow-only lottery: follow the anchor to enter
    NOT_A_WINNER = "not_a_winner"
    CLAIM_EXPIRED = "claim_expired"  # the winner's claim window has passed
    # anti-fraud (docs/antifraud.md); RATE_LIMITED and BANNED above are theirs too
    MUTED = "muted"  # the user is muted: its danmaku reach nobody
    BLOCKED = "blocked"  # the danmaku contains a blocked word
    REFUSED = "refused"  # the anti-fraud layer refuses this user's flash-sale grabs
    # server side
    UNAVAILABLE = "unavailable"  # Redis unreachable; try again
    INTERNAL = "internal"


class CloseCode(IntEnum):
    """WebSocket close codes the gateway uses (4000-4999 are ours by RFC 6455)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    BAD_TOKEN = 4001
    TOKEN_EXPIRED = 4002
    WRONG_ROOM = 4003
    ABUSE = 4008
    SLOW_CONSUMER = 4009
    HEARTBEAT_TIMEOUT = 4010
    REHEARSAL = 4011
    FORBIDDEN = 4012
    BANNED = 4013
    RATE_LIMITED = 4029


CLOSE_CODE_FOR: dict[ErrorCode, CloseCode] = {
    ErrorCode.BAD_TOKEN: CloseCode.BAD_TOKEN,
    ErrorCode.TOKEN_EXPIRED: CloseCode.TOKEN_EXPIRED,
    ErrorCode.WRONG_ROOM: CloseCode.WRONG_ROOM,
    ErrorCode.ABUSE: CloseCode.ABUSE,
    ErrorCode.SLOW_CONSUMER: CloseCode.SLOW_CONSUMER,
    ErrorCode.HEARTBEAT_TIMEOUT: CloseCode.HEARTBEAT_TIMEOUT,
    ErrorCode.REHEARSAL: CloseCode.REHEARSAL,
    ErrorCode.FORBIDDEN: CloseCode.FORBIDDEN,
    ErrorCode.BANNED: CloseCode.BANNED,
    ErrorCode.RATE_LIMITED: CloseCode.RATE_LIMITED,  # joining too often (retry after ... ms)
    ErrorCode.SHUTTING_DOWN: CloseCode.GOING_AWAY,  # reconnect: another node resumes you
    ErrorCode.TOO_LARGE: CloseCode.MESSAGE_TOO_BIG,
    ErrorCode.INTERNAL: CloseCode.INTERNAL_ERROR,
    ErrorCode.UNAVAILABLE: CloseCode.TRY_AGAIN_LATER,
}


class EngineError(Exception):
    """Base of every error the engine raises on purpose; carries a stable `code`."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str = "", *, code: ErrorCode | None = None) -> None:
        super().__init__(message or (code or self.code).value)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class ProtocolError(EngineError):
    """A client message that is malformed, unknown or out of bounds.

    `rid` is the request id the message carried, when it had a usable one, so that the error
    frame can name the request it answers."""

    code = ErrorCode.BAD_FRAME
    rid: str | int | None = None


class RateLimited(ProtocolError):
    """Over a rate limit; `retry_after_ms` says when the same request could pass (-1: never at
    this size). The error frame carries it."""

    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, retry_after_ms: int) -> None:
        super().__init__(message, code=ErrorCode.RATE_LIMITED)
        self.retry_after_ms = retry_after_ms


class AuthError(EngineError):
    """A token that is missing, bad, expired or for another room."""

    code = ErrorCode.BAD_TOKEN


class RequestRefused(EngineError):
    """A host or anchor request the engine will not carry out (bad argument, unknown id, wrong
    state); `code` says why. The control plane turns it into an error answer."""

    code = ErrorCode.BAD_FIELD


class StoreUnavailable(EngineError):
    """Redis could not be reached or timed out (translated from coredis/OS errors)."""

    code = ErrorCode.UNAVAILABLE
