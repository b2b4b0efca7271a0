"""Products and flash sales through the control plane: the host sets products over HTTP, the
anchor starts a sale on the control WebSocket, viewers grab, the live numbers show the sale's
stock and grabs, and only the host (admin) confirms orders."""

from __future__ import annotations

import pytest
import trio

from tests.conftest import StartEngine
from tests.control.support import address, control_socket, ctl, http_call
from tests.support import viewer

pytestmark = pytest.mark.integration

PRODUCTS = [
    {"id": "tea", "name": "Tea", "image": "https://img.example/tea.png", "price": 990,
     "stock": 100, "promo": "hot"},
    {"id": "cup", "name": "Cup", "image": "https://img.example/cup.png", "price": 500, "stock": 7},
]  # fmt: skip


async def test_a_flash_sale_driven_by_the_control_plane_shows_in_the_live_numbers(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(control_socket="none", numbers_interval_s=0.2)
    admin = engine.mint_token("host", "ops", role="admin")
    listed = await http_call(engine, admin, "set_products", room, products=PRODUCTS)
    assert [p["id"] for p in listed.result["products"]] == ["tea", "cup"]
    bad = await http_call(engine, admin, "set_products", room, products=[{"id": "x"}])
    assert bad.code == "bad_field"
    anchor_token = engine.mint_token("anchor-1", room, role="anchor")
    async with (
        control_socket(engine, anchor_token) as anchor,
        viewer(address(engine).ws_url, engine.mint_token("alice", room)) as alice,
    ):
        cards = await anchor.call("pin_product", product="cup")
        assert cards.result["pinned"] == "cup"
        started = await anchor.call("start_seckill", product="tea", price=100, stock=5,
                                    duration_s=60, sale="flash1")  # fmt: skip
        assert started.result["left"] == 5
        assert (await anchor.call("start_seckill", product="nope", price=1, stock=1,
                                  duration_s=60)).code == "unknown_product"  # fmt: skip
        await alice.send(type="grab", sale="flash1", rid=1)
        granted = await alice.recv_type("result", rid=1)
        assert granted["ok"], granted
        with trio.fail_after(20):
            while True:
                numbers = await anchor.next_numbers()
                if numbers["sales"] and numbers["sales"][0]["grabs"] == 1:
                    break
        (sale,) = numbers["sales"]
        assert (sale["sale"], sale["left"], sale["stock"], sale["status"]) == ("flash1", 4, 5,
                                                                              "live")  # fmt: skip
        hold = granted["data"]["hold"]
        assert (await anchor.call("confirm_order", hold=hold)).code == "forbidden"
        paid = await http_call(engine, admin, "confirm_order", room, hold=hold, order_id="o-1")
        assert paid.result["already"] is False and paid.result["user"] == "alice"
        status = await anchor.call("seckill_status", sale="flash1")
        assert status.result["sold"] == 1
        ended = await anchor.call("end_seckill", sale="flash1")
        assert ended.result["already"] is False
        with trio.fail_after(20):
            while (await anchor.next_numbers())["sales"]:
                pass
    code, out, _err = await ctl("--url", address(engine).http_url, "--token", admin,
                                "product-clicks", "--room", room)  # fmt: skip
    assert code == 0 and out.startswith("clicks:")
