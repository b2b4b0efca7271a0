"""`claim`: a viewer claims a coupon of a dropped batch.

The claim passes the anti-fraud guard (`coupon` limits, bans) and is then decided in Redis with
other claims of the batch that arrived on this node at the same moment (one script call); the
viewer gets a `result` with its rid: ok with the coupon and its terms, or ok=false with a stable
code (docs/coupons.md). A retry with the same rid gets the first answer again.
"""

from __future__ import annotations

from engine.antifraud.guard import AntiFraud
from engine.fanout.room import LocalRoom
from engine.features.coupons import claim_data
from engine.features.coupons_node import Coupons
from engine.gateway.connection import ViewerConnection
from engine.gateway.dispatch import Dispatcher, reply
from engine.protocol.client import Claim


def register(dispatcher: Dispatcher, coupons: Coupons, guard: AntiFraud | None = None) -> None:
    async def claim(conn: ViewerConnection, room: LocalRoom, message: Claim) -> None:
        if guard is not None and conn.visitor is not None:
            await guard.check(conn.visitor, "coupon")  # rate_limited, banned: an error frame
        assert message.rid is not None  # the protocol requires it for claims
        answer, terms = await coupons.claim(room.id, message.batch, conn.identity.user,
                                            message.rid)  # fmt: skip
        data = claim_data(message.batch, answer, terms)
        if answer.ok:
            reply(conn, message.rid, **data)
        else:
            reply(conn, message.rid, ok=False, code=answer.code, **data)

    dispatcher.register(Claim, claim)
