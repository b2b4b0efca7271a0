"""Two engine nodes on one Redis serve one room: everything crosses over the bus."""

from __future__ import annotations

import pytest
import trio

from tests.conftest import StartEngine
from tests.support import viewer

pytestmark = pytest.mark.integration


async def test_two_nodes_deliver_the_same_room_messages_to_viewers_on_both(
    start_engine: StartEngine, room: str
) -> None:
    node_a, node_b = await start_engine(), await start_engine()
    assert node_a.node_id != node_b.node_id
    url_a, url_b = node_a.address.ws_url, node_b.address.ws_url  # type: ignore[union-attr]
    async with (
        viewer(url_a, node_a.mint_token("a1", room)) as a1,
        viewer(url_a, node_a.mint_token("a2", room), codec="msgpack") as a2,
        viewer(url_b, node_b.mint_token("b1", room)) as b1,
        viewer(url_b, node_b.mint_token("b2", room), codec="msgpack") as b2,
    ):
        assert b2.welcome["snapshot"]["online"] == 4  # type: ignore[attr-defined]
        for i in range(5):
            await a1.send(type="danmaku", text=f"from a {i}")
            await b1.send(type="danmaku", text=f"from b {i}")
        expected = {f"from a {i}" for i in range(5)} | {f"from b {i}" for i in range(5)}
        for v in (a1, a2, b1, b2):
            assert set(await v.chat_texts(10)) == expected
        # each node's messages arrive in the order they were sent
        for v in (a1, b2):
            texts = [m["text"] for f in v.seen if f.get("type") == "chat" for m in f["msgs"]]
            assert [t for t in texts if t.startswith("from a")] == [f"from a {i}" for i in range(5)]
        await a2.send(type="like", count=3)
        await b2.send(type="like", count=4)
        for v in (a1, b1):
            with trio.fail_after(5):
                while (await v.recv_type("likes"))["total"] != 7:
                    pass
        item = await node_b.push_popup(room, "coupon", {"value": 5})
        assert (await a1.recv_type("popup"))["popup"]["id"] == item["id"]
        with trio.fail_after(6):  # online counts are summed over nodes
            while {"type": "online", "count": 4} not in a1.seen:
                await a1.recv(timeout=6)
