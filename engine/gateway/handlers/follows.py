"""`follow` (follow the anchor) and `lottery_enter` (an explicit lottery entry).

A follow is idempotent: the answer says whether it was new, and lists the open lotteries that
take follows the viewer is now in. A keyword lottery is entered by sending its keyword as a
danmaku (the chat hook in `Lottery.on_danmaku`), or explicitly with `lottery_enter`, which
answers whether the entry was new (docs/lottery.md). Entries are decided in Redis with the other
entries of the lottery that arrived on this node at the same moment (one script call); the read
loop does not wait for the answer: up to `seckill_max_inflight_per_viewer` entries of one viewer
may be unanswered, more are refused with `rate_limited`.
"""

from __future__ import annotations

from engine.antifraud.guard import AntiFraud
from engine.errors import ErrorCode, ProtocolError
from engine.fanout.room import LocalRoom
from engine.features.follows import Follows
from engine.features.lottery_node import Entered, Lottery
from engine.gateway.connection import ViewerConnection
from engine.gateway.dispatch import Dispatcher, reply, send_to
from engine.protocol import server
from engine.protocol.client import Follow, LotteryEnter

MAX_REMEMBERED = 100_000  # (room, user) follows a node answers without Redis


def register(
    dispatcher: Dispatcher,
    follows: Follows,
    lottery: Lottery,
    guard: AntiFraud | None = None,
    *,
    max_inflight: int = 16,
) -> None:
    known: set[tuple[str, str]] = set()  # followers this node has recorded: repeats are free
    inflight: dict[ViewerConnection, int] = {}  # entries sent to the batcher, not yet answered

    async def follow(conn: ViewerConnection, room: LocalRoom, message: Follow) -> None:
        user = conn.identity.user
        new = False
        if (room.id, user) not in known:
            new, _ = await follows.follow(room.id, user)
            if len(known) >= MAX_REMEMBERED:
                known.clear()
            known.add((room.id, user))
        entered = await lottery.on_follow(room.id, conn.identity)
        reply(conn, message.rid, new=new, lotteries=entered)

    async def lottery_enter(conn: ViewerConnection, room: LocalRoom, message: LotteryEnter) -> None:
        if guard is not None and conn.visitor is not None:
            await guard.check(conn.visitor, "lottery")  # rate_limited, banned: an error frame
        rid, name = message.rid, message.lottery
        count = inflight.get(conn, 0)
        if count >= max_inflight:
            raise ProtocolError(
                f"more than {max_inflight} lottery entries unanswered", code=ErrorCode.RATE_LIMITED
            )
        inflight[conn] = count + 1

        def answer(entered: Entered | None, error: Exception | None) -> None:
            left = inflight.pop(conn, 1) - 1
            if left > 0:
                inflight[conn] = left
            if entered is None:  # as when Redis fails under a handler (gateway._on_message)
                send_to(conn, server.error(ErrorCode.UNAVAILABLE, "try again", rid))
                return
            code, new, _ = entered
            if code == "ok":
                reply(conn, rid, lottery=name, new=new)
            else:
                reply(conn, rid, ok=False, code=code, lottery=name)

        # the read loop goes on: the answer is written when the entry's batch comes back
        lottery.enter_nowait(room.id, name, conn.identity, answer)

    dispatcher.register(Follow, follow)
    dispatcher.register(LotteryEnter, lottery_enter)
