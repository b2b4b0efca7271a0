"""`follow` (follow the anchor) and `lottery_enter` (an explicit lottery entry).

A follow is idempotent: the answer says whether it was new, and lists the open lotteries that
take follows the viewer is now in. A keyword lottery is entered by sending its keyword as a
danmaku (the chat hook in `Lottery.on_danmaku`), or explicitly with `lottery_enter`, which
answers whether the entry was new (docs/lottery.md).
"""

from __future__ import annotations

from engine.antifraud.guard import AntiFraud
from engine.fanout.room import LocalRoom
from engine.features.follows import Follows
from engine.features.lottery_node import Lottery
from engine.gateway.connection import ViewerConnection
from engine.gateway.dispatch import Dispatcher, reply
from engine.protocol.client import Follow, LotteryEnter

MAX_REMEMBERED = 100_000  # (room, user) follows a node answers without Redis


def register(
    dispatcher: Dispatcher, follows: Follows, lottery: Lottery, guard: AntiFraud | None = None
) -> None:
    known: set[tuple[str, str]] = set()  # followers this node has recorded: repeats are free

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
        code, new, _ = await lottery.enter(room.id, message.lottery, conn.identity)
        if code == "ok":
            reply(conn, message.rid, lottery=message.lottery, new=new)
        else:
            reply(conn, message.rid, ok=False, code=code, lottery=message.lottery)

    dispatcher.register(Follow, follow)
    dispatcher.register(LotteryEnter, lottery_enter)
