"""`claim`: a viewer claims a coupon of a dropped batch.

The claim passes the anti-fraud guard (`coupon` limits, bans) and is then decided in Redis with
other claims of the batch that arrived on this node at the same moment (one script call); the
viewer gets a `result` with its rid: ok with the coupon and its terms, or ok=false with a stable
code (docs/coupons.md). A retry with the same rid gets the first answer again. The read loop
does not wait for the answer: up to `seckill_max_inflight_per_viewer` claims of one viewer may
be unanswered, more are refused with `rate_limited`.
"""

from __future__ import annotations

from engine.antifraud.guard import AntiFraud
from engine.errors import ErrorCode, ProtocolError
from engine.fanout.room import LocalRoom
from engine.features.coupons import claim_data
from engine.features.coupons_node import Claimed, Coupons
from engine.gateway.connection import ViewerConnection
from engine.gateway.dispatch import Dispatcher, reply
from engine.protocol.client import Claim


def register(
    dispatcher: Dispatcher,
    coupons: Coupons,
    guard: AntiFraud | None = None,
    *,
    max_inflight: int = 16,
) -> None:
    inflight: dict[ViewerConnection, int] = {}

    async def claim(conn: ViewerConnection, room: LocalRoom, message: Claim) -> None:
        if guard is not None and conn.visitor is not None:
            await guard.check(conn.visitor, "coupon")  # rate_limited, banned: an error frame
        rid, batch = message.rid, message.batch
        assert rid is not None  # the protocol requires it for claims
        count = inflight.get(conn, 0)
        if count >= max_inflight:
            raise ProtocolError(
                f"more than {max_inflight} claims unanswered", code=ErrorCode.RATE_LIMITED
            )
        inflight[conn] = count + 1

        def answer(claimed: Claimed) -> None:
            left = inflight.pop(conn, 1) - 1
            if left > 0:
                inflight[conn] = left
            result, terms = claimed
            data = claim_data(batch, result, terms)
            if result.ok:
                reply(conn, rid, **data)
            else:
                reply(conn, rid, ok=False, code=result.code, **data)

        # the read loop goes on: the answer is written when the claim's batch comes back
        coupons.claim_nowait(room.id, batch, conn.identity.user, rid, answer)

    dispatcher.register(Claim, claim)
