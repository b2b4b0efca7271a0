"""The control WebSocket pushes live numbers about once a second to a connected anchor while
viewers act: online (over nodes), peak, likes, danmaku rate and total."""

from __future__ import annotations

import pytest
import trio

from tests.conftest import StartEngine
from tests.control.support import address, control_socket
from tests.support import viewer

pytestmark = pytest.mark.integration


async def test_live_numbers_reach_a_connected_anchor_while_viewers_act(
    start_engine: StartEngine, room: str
) -> None:
    node_a = await start_engine(control_socket="none", numbers_interval_s=0.2)
    node_b = await start_engine(control_socket="none", numbers_interval_s=0.2)
    anchor_token = node_a.mint_token("anchor-1", room, role="anchor")
    async with control_socket(node_a, anchor_token) as anchor:
        first = await anchor.next_numbers()
        assert first["room"] == room and first["online"] == 0 and first["sales"] == []
        async with (
            viewer(address(node_a).ws_url, node_a.mint_token("v1", room)) as v1,
            viewer(address(node_b).ws_url, node_b.mint_token("v2", room)) as v2,
        ):
            await v1.send(type="like", count=5)
            await v2.send(type="like", count=7)
            for i in range(6):
                await v1.send(type="danmaku", text=f"a{i}")
                await v2.send(type="danmaku", text=f"b{i}")
            with trio.fail_after(20):  # pushes keep coming until they show it all
                while True:
                    numbers = await anchor.next_numbers()
                    if (numbers["online"], numbers["likes"], numbers["danmaku_total"]) == (
                        2,
                        12,
                        12,
                    ):
                        break
            assert numbers["peak"] >= 2
            with trio.fail_after(20):  # the rate covers whole seconds: it shows a moment later
                while numbers["danmaku_per_s"] == 0:
                    numbers = await anchor.next_numbers()
            assert 0 < numbers["danmaku_per_s"] <= 12
        with trio.fail_after(20):  # the viewers left: online drops, the peak stays
            while (numbers := await anchor.next_numbers())["online"] != 0:
                pass
        assert numbers["peak"] == 2 and numbers["likes"] == 12
    assert len(anchor.numbers) >= 3  # pushed repeatedly, not once


async def test_live_numbers_command_gives_the_pushed_shape(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(control_socket="none")
    async with viewer(address(engine).ws_url, engine.mint_token("v1", room)) as v:
        await v.send(type="like", count=3)
        with trio.fail_after(10):
            while (numbers := await engine.command("live_numbers", room=room))["likes"] != 3:
                await trio.sleep(0.05)
    assert numbers["online"] == 1 and set(numbers) == {
        "room", "online", "peak", "likes", "danmaku_per_s", "danmaku_total", "sales", "ts",
        "coupons", "lotteries", "new_follows", "followers",
    }  # fmt: skip
