"""Flash sales and product cards end to end: engine nodes, real WebSockets, a real Redis."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
import trio

from engine import Engine
from engine.errors import ErrorCode, RequestRefused
from engine.store import keys
from engine.store.store import open_redis
from tests.conftest import StartEngine
from tests.support import Viewer, viewer

pytestmark = pytest.mark.integration

PRODUCTS = [
    {"id": "tea", "name": "Tea", "image": "https://img.example/tea.png", "price": 990,
     "list_price": 1990, "stock": 100, "order": 2, "promo": "hot"},
    {"id": "cup", "name": "Cup", "image": "https://img.example/cup.png", "price": 500,
     "stock": 7, "order": 1},
]  # fmt: skip


def url(engine: Engine) -> str:
    assert engine.address is not None
    return engine.address.ws_url


async def events_of(redis_url: str, room: str) -> list[tuple[str, dict[str, Any]]]:
    async with open_redis(redis_url) as redis:
        entries = await redis.xrange(keys.events(room))
    out = []
    for entry in entries:
        f = {k.decode(): v for k, v in entry.field_values.items()}
        if f["type"].startswith(b"seckill.") or f["type"].startswith(b"product."):
            out.append((f["type"].decode(), orjson.loads(f["data"])))
    return out


async def grab(v: Viewer, sale: str, rid: Any, **extra: Any) -> dict[str, Any]:
    await v.send(type="grab", sale=sale, rid=rid, **extra)
    return await v.recv_type("result", rid=rid)


async def test_a_sale_pops_up_with_its_countdown_and_joiners_see_it_with_live_stock(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine()
    await engine.set_products(room, PRODUCTS)
    async with viewer(url(engine), engine.mint_token("alice", room)) as alice:
        sale = await engine.start_seckill(room, "tea", price=100, stock=5, limit=2,
                                          duration_s=60, sale="flash1")  # fmt: skip
        popup = (await alice.recv_type("popup"))["popup"]
        assert popup["kind"] == "seckill" and popup["data"] == sale
        data = popup["data"]
        assert data["name"] == "Tea" and data["image"].endswith("tea.png")
        assert data["price"] == 100 and data["list_price"] == 1990
        assert (data["stock"], data["left"], data["limit"]) == (5, 5, 2)
        assert data["end_at"] - data["start_at"] == 60_000 and popup["ttl"] <= 60
        assert data["start_at"] <= popup["ts"]  # the popup's ts is the server's clock
        ok = await grab(alice, "flash1", 1, qty=2)
        assert ok["ok"] and ok["data"]["hold"] == "flash1.1" and ok["data"]["qty"] == 2
        assert ok["data"]["expires_at"] >= data["start_at"] + 900_000
        stock = await alice.recv_type("stock", sale="flash1", left=3)
        assert stock["stock"] == 5 and stock["ver"] >= 2
    async with viewer(url(engine), engine.mint_token("bob", room)) as bob:
        snapshot = bob.welcome["snapshot"]  # type: ignore[attr-defined]
        [live] = snapshot["sales"]
        assert live["sale"] == "flash1" and (live["left"], live["stock"]) == (3, 5)
        assert snapshot["popup"]["kind"] == "seckill"


async def test_grab_results_limits_and_retries(start_engine: StartEngine, room: str) -> None:
    engine = await start_engine()
    await engine.set_products(room, PRODUCTS)
    await engine.start_seckill(room, "tea", price=100, stock=3, limit=1, duration_s=60,
                               sale="s")  # fmt: skip
    async with viewer(url(engine), engine.mint_token("alice", room), codec="msgpack") as alice:
        first = await grab(alice, "s", "r1")
        assert first["ok"] and "replayed" not in first["data"]
        again = await grab(alice, "s", "r1")
        assert again["ok"] and again["data"]["hold"] == first["data"]["hold"]
        assert again["data"]["replayed"] is True
        assert (await grab(alice, "s", "r2"))["code"] == "limit_reached"
        assert (await grab(alice, "s", "r1", qty=2))["code"] == "duplicate"  # same rid, other ask
        assert (await grab(alice, "s", "r3", qty=5))["code"] == "limit_reached"
    status = await engine.seckill_status(room, "s")
    assert (status["left"], status["held"], status["sold"]) == (2, 1, 0)


async def test_sold_out_is_announced_once_and_answered_by_each_node(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    a = await start_engine(seckill_soldout_recheck_s=30)
    b = await start_engine(seckill_soldout_recheck_s=30)
    await a.set_products(room, PRODUCTS)
    await a.start_seckill(room, "cup", price=1, stock=3, duration_s=60, sale="cups")
    async with viewer(url(b), b.mint_token("watcher", room)) as watcher:
        results = []
        for i in range(8):
            node = (a, b)[i % 2]
            async with viewer(url(node), node.mint_token(f"u{i}", room)) as v:
                results.append(await grab(v, "cups", i))
        assert [r["ok"] for r in results].count(True) == 3
        assert {r.get("code") for r in results if not r["ok"]} == {"sold_out"}
        popups = []
        with trio.move_on_after(1.0):
            while True:
                popups.append((await watcher.recv_type("popup"))["popup"]["kind"])
        assert popups.count("sold_out") == 1
    # both nodes now answer by themselves; a winner's retry still gets its hold back
    assert a._running().seckill.stats.shortcut + b._running().seckill.stats.shortcut >= 1
    winner = next(i for i, r in enumerate(results) if r["ok"])
    for node in (a, b):
        async with viewer(url(node), node.mint_token(f"u{winner}", room)) as v:
            again = await grab(v, "cups", winner)
            assert again["ok"] and again["data"]["hold"] == results[winner]["data"]["hold"]
    reserved = [e for t, e in await events_of(redis_url, room) if t == "seckill.reserved"]
    assert len(reserved) == 3


async def test_stock_reaches_viewers_at_most_once_per_tick(
    start_engine: StartEngine, room: str
) -> None:
    tick_s = 0.5
    engine = await start_engine(chat_tick_ms=int(tick_s * 1000))
    await engine.set_products(room, PRODUCTS)
    await engine.start_seckill(room, "tea", price=1, stock=100, duration_s=60, sale="t")
    grabbers = 30
    async with viewer(url(engine), engine.mint_token("watcher", room)) as watcher:
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(grabbers):

                async def one(i: int = i) -> None:
                    async with viewer(url(engine), engine.mint_token(f"g{i}", room)) as v:
                        assert (await grab(v, "t", 1))["ok"]

                nursery.start_soon(one)
        frames = []
        while not frames or frames[-1]["left"] != 100 - grabbers:
            frames.append(await watcher.recv_type("stock", timeout=5))
        elapsed = trio.current_time() - started
    assert len(frames) <= math.ceil(elapsed / tick_s) + 1 and len(frames) < grabbers
    assert [f["ver"] for f in frames] == sorted({f["ver"] for f in frames})


async def test_holds_expire_and_their_stock_comes_back(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine(seckill_sweep_interval_s=0.1)
    await engine.set_products(room, PRODUCTS)
    await engine.start_seckill(room, "tea", price=1, stock=1, duration_s=60, hold_s=1.0,
                               sale="short")  # fmt: skip
    async with viewer(url(engine), engine.mint_token("alice", room)) as alice:
        held = await grab(alice, "short", 1)
        assert held["ok"]
        assert (await grab(alice, "short", 2))["code"] == "limit_reached"
        stock = await alice.recv_type("stock", left=1, timeout=10)  # released after ~1 s
        assert stock["sale"] == "short"
        with pytest.raises(RequestRefused) as caught:
            await engine.confirm_order(room, held["data"]["hold"])
        assert caught.value.code is ErrorCode.HOLD_EXPIRED
        assert (await grab(alice, "short", 3))["ok"]  # the units (and the quota) came back
    types = [t for t, _ in await events_of(redis_url, room)]
    assert types == ["seckill.started", "seckill.reserved", "seckill.released", "seckill.reserved"]


async def test_confirm_and_cancel_tell_the_host_once(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine()
    await engine.set_products(room, PRODUCTS)
    await engine.start_seckill(room, "tea", price=250, stock=2, limit=1, duration_s=60, sale="o")
    holds = []
    for user in ("ann", "ben"):
        async with viewer(url(engine), engine.mint_token(user, room)) as v:
            holds.append((await grab(v, "o", "x"))["data"]["hold"])
    paid = await engine.confirm_order(room, holds[0], order_id="order-77")
    assert paid == {"hold": holds[0], "sale": "o", "user": "ann", "qty": 1, "already": False}
    assert (await engine.confirm_order(room, holds[0]))["already"] is True
    assert (await engine.cancel_order(room, holds[1], reason="changed mind"))["user"] == "ben"
    assert (await engine.cancel_order(room, holds[1]))["already"] is True
    for call, code in [
        (engine.cancel_order(room, holds[0]), ErrorCode.ALREADY_CONFIRMED),
        (engine.confirm_order(room, holds[1]), ErrorCode.HOLD_CANCELLED),
        (engine.confirm_order(room, "o.99"), ErrorCode.UNKNOWN_HOLD),
        (engine.confirm_order(room, "nosale.1"), ErrorCode.UNKNOWN_SALE),
        (engine.confirm_order(room, "garbage"), ErrorCode.UNKNOWN_HOLD),
    ]:
        with pytest.raises(RequestRefused) as caught:
            await call
        assert caught.value.code is code
    status = await engine.seckill_status(room, "o")
    assert (status["stock"], status["left"], status["held"], status["sold"]) == (2, 1, 0, 1)
    events = await events_of(redis_url, room)
    assert [t for t, _ in events] == ["seckill.started", "seckill.reserved", "seckill.reserved",
                                      "seckill.confirmed", "seckill.cancelled"]  # fmt: skip
    confirmed, cancelled = events[3][1], events[4][1]
    assert confirmed == {"sale": "o", "product": "tea", "hold": holds[0], "user": "ann", "qty": 1,
                         "price": 250, "order": "order-77"}  # fmt: skip
    assert cancelled["reason"] == "changed mind" and cancelled["user"] == "ben"
    reserved = events[1][1]
    assert set(reserved) == {"sale", "product", "hold", "user", "rid", "qty", "price",
                             "expires_at"} and reserved["rid"] == "x"  # fmt: skip


async def test_restock_and_end(start_engine: StartEngine, room: str, redis_url: str) -> None:
    engine = await start_engine()
    await engine.set_products(room, PRODUCTS)
    await engine.start_seckill(room, "tea", price=1, stock=1, duration_s=60, sale="r")
    async with viewer(url(engine), engine.mint_token("w", room)) as w:
        assert (await grab(w, "r", 1))["ok"]
        assert (await engine.restock(room, "r", 4)) == {"sale": "r", "left": 4, "stock": 5}
        await w.recv_type("stock", left=4)
        assert (await engine.end_seckill(room, "r"))["already"] is False
        assert (await w.recv_type("popup"))["popup"]["kind"] in ("sold_out", "seckill_ended")
        async with viewer(url(engine), engine.mint_token("late", room)) as late:
            assert late.welcome["snapshot"]["sales"] == []  # type: ignore[attr-defined]
            assert (await grab(late, "r", 1))["code"] == "ended"
        with pytest.raises(RequestRefused) as caught:
            await engine.restock(room, "r", 1)
        assert caught.value.code is ErrorCode.ENDED
    assert (await engine.end_seckill(room, "r"))["already"] is True
    types = [t for t, _ in await events_of(redis_url, room)]
    assert types.count("seckill.restocked") == 1 and types.count("seckill.ended") == 1


async def test_bad_input_gets_clear_codes_and_changes_nothing(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine(seckill_max_inflight_per_viewer=1, seckill_batch_window_ms=200)
    other_room = room + "-other"
    await engine.set_products(room, PRODUCTS)
    await engine.set_products(other_room, PRODUCTS)
    await engine.start_seckill(room, "tea", price=1, stock=5, duration_s=60, sale="main")
    await engine.start_seckill(other_room, "tea", price=1, stock=5, duration_s=60, sale="elsewhere")
    async with open_redis(redis_url) as redis:
        await redis.sadd(keys.banned(room), ["mallory"])
    before = await engine.seckill_status(room, "main")
    events_before = await events_of(redis_url, room)
    async with viewer(url(engine), engine.mint_token("eve", room)) as eve:
        assert (await grab(eve, "nosuch", 1))["code"] == "unknown_sale"
        assert (await grab(eve, "elsewhere", 2))["code"] == "unknown_sale"  # another room's sale
        await eve.send(type="grab", sale="main", rid=3, room=other_room)
        assert (await eve.recv_type("error", rid=3))["code"] == "wrong_room"
        for bad in ({"sale": "main"}, {"sale": "main", "rid": 4, "qty": 0},
                    {"sale": "a.b", "rid": 5}, {"sale": ["main"], "rid": 6},
                    {"sale": "main", "rid": 7, "qty": "1"}):  # fmt: skip
            await eve.send(type="grab", **bad)
            assert (await eve.recv_type("error"))["code"] == "bad_field"
        await eve.send(type="click", product="nope", rid=8)
        assert (await eve.recv_type("result", rid=8))["code"] == "unknown_product"
        # two grabs at once with one allowed in flight: the second is refused, not queued
        await eve.send(type="grab", sale="nosuch", rid=9)
        await eve.send(type="grab", sale="nosuch", rid=10)
        assert (await eve.recv_type("error", rid=10))["code"] == "rate_limited"
        await eve.recv_type("result", rid=9)
    async with viewer(url(engine), engine.mint_token("mallory", room)) as mallory:
        assert (await grab(mallory, "main", 1))["code"] == "banned"
        assert (await grab(mallory, "main", 1))["code"] == "banned"  # the answer is recorded
    after = await engine.seckill_status(room, "main")
    assert {k: after[k] for k in ("stock", "left", "held", "sold")} == {
        k: before[k] for k in ("stock", "left", "held", "sold")
    }
    assert await events_of(redis_url, room) == events_before
    assert (await engine.seckill_status(other_room, "elsewhere"))["left"] == 5
    for call, code in [
        (engine.start_seckill(room, "nope", price=1, stock=1, duration_s=9), "unknown_product"),
        (engine.start_seckill(room, "tea", price=1, stock=1, duration_s=9, sale="main"),
         "sale_exists"),
        (engine.start_seckill(room, "tea", price=-5, stock=1, duration_s=9), "bad_field"),
        (engine.restock(room, "main", 0), "bad_field"),
        (engine.restock(room, "nosuch", 1), "unknown_sale"),
        (engine.end_seckill(room, "nosuch"), "unknown_sale"),
        (engine.seckill_status(room, "{bad}"), "unknown_sale"),
        (engine.mount_product(room, "nope"), "unknown_product"),
        (engine.set_products(room, [{"id": "x"}]), "bad_field"),
    ]:  # fmt: skip
        with pytest.raises(RequestRefused) as caught:
            await call
        assert caught.value.code.value == code
    assert (await engine.seckill_status(room, "main"))["stock"] == 5


async def test_product_cards_and_clicks(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine()
    assert await engine.set_products(room, PRODUCTS) == sorted(
        [as_stored(p) for p in PRODUCTS], key=lambda p: p["order"]
    )
    async with viewer(url(engine), engine.mint_token("vic", room)) as vic:
        cards = await engine.mount_product(room, "tea")
        popup = (await vic.recv_type("popup"))["popup"]
        assert popup["kind"] == "product_card" and popup["data"]["action"] == "mount"
        assert popup["data"]["card"] == {"id": "tea", "name": "Tea", "price": 990,
                                         "image": "https://img.example/tea.png", "stock": 100}  # fmt: skip
        await engine.pin_product(room, "cup")  # pinning mounts it too
        popup = (await vic.recv_type("popup"))["popup"]
        assert popup["data"]["cards"]["pinned"] == "cup"
        assert [c["id"] for c in popup["data"]["cards"]["mounted"]] == ["cup", "tea"]  # by order
        for _ in range(3):
            await vic.send(type="click", product="tea", rid="c")
            assert (await vic.recv_type("result", rid="c"))["ok"]
    async with viewer(url(engine), engine.mint_token("joiner", room)) as joiner:
        cards = joiner.welcome["snapshot"]["cards"]  # type: ignore[attr-defined]
        assert cards["pinned"] == "cup" and [c["id"] for c in cards["mounted"]] == ["cup", "tea"]
        await joiner.send(type="click", product="tea")
        await joiner.send(type="ping", rid="p")
        await joiner.recv_type("pong")
    cards = await engine.unmount_product(room, "cup")
    assert cards == {"mounted": [cards["mounted"][0]], "pinned": None}
    # a new list drops cards of products no longer sold and refreshes the others
    await engine.set_products(room, [{**PRODUCTS[0], "price": 800}])
    cards = await engine.pin_product(room, "tea")
    assert cards["mounted"][0]["price"] == 800
    assert await engine.product_clicks(room) == {"tea": 4}
    clicked = [e for t, e in await events_of(redis_url, room) if t == "product.clicked"]
    assert clicked == [{"product": "tea", "user": "vic"}, {"product": "tea", "user": "joiner"}]


def as_stored(p: dict[str, Any]) -> dict[str, Any]:
    return {"list_price": p["price"], "promo": "", **p}
