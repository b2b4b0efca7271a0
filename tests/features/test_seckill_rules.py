"""Flash sales and products, the pure part: validation, reply parsing, the sold-out shortcut and
what viewers see. No sockets, no Redis."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import ErrorCode, RequestRefused
from engine.fanout.broadcaster import RoomBroadcaster
from engine.features.products import cards_view, parse_products
from engine.features.seckill import (
    SoldOutGate,
    StockView,
    hold_sale,
    parse_grab_reply,
    rid_key,
    sale_spec,
    sale_views,
    stock_message,
)
from engine.gateway.handlers.seckill import grab_result

NOW = 1_800_000_000_000


def spec(**kw: Any) -> Any:
    args: dict[str, Any] = dict(sale="s1", product="tea", price=990, stock=10, limit=1,
                                start_ms=None, end_ms=None, duration_s=60, hold_s=900, now=NOW)  # fmt: skip
    args.update(kw)
    return sale_spec(**args)


def test_a_sale_defaults_to_start_now_and_takes_a_duration_or_an_end() -> None:
    s = spec()
    assert (s.start_ms, s.end_ms, s.hold_ms) == (NOW, NOW + 60_000, 900_000)
    s = spec(start_ms=NOW + 5000, end_ms=NOW + 9000, duration_s=None)
    assert (s.start_ms, s.end_ms) == (NOW + 5000, NOW + 9000)
    view = s.view({"name": "Tea", "image": "https://i/t.png", "list_price": 1990})
    assert view["left"] == view["stock"] == 10 and view["start_at"] == NOW + 5000
    assert s.event()["hold_s"] == 900


@pytest.mark.parametrize(
    "bad",
    [
        {"sale": "a.b"},  # '.' separates a hold's number
        {"sale": ""},
        {"sale": "x" * 49},
        {"stock": 0},
        {"stock": True},
        {"limit": 0},
        {"price": -1},
        {"price": 1.5},
        {"hold_s": 0},
        {"duration_s": None},  # neither end nor duration
        {"end_ms": NOW + 1},  # both
        {"start_ms": NOW + 10_000, "end_ms": NOW + 5_000, "duration_s": None},
        {"start_ms": NOW - 100_000, "end_ms": NOW - 1, "duration_s": None},  # over already
        {"duration_s": 30 * 86400},
    ],
)
def test_bad_sale_settings_are_refused_with_bad_field(bad: dict[str, Any]) -> None:
    with pytest.raises(RequestRefused) as caught:
        spec(**bad)
    assert caught.value.code is ErrorCode.BAD_FIELD


def test_request_keys_keep_ints_and_strings_apart() -> None:
    assert rid_key(1) == "i1" and rid_key("1") == "s1" and rid_key(1) != rid_key("1")


def test_grab_reply_is_parsed_in_order() -> None:
    reply = [3, 10, 8, 1, b"ok", b"s1.7", 1_800_000_900_000, 0, b"sold_out", b"", 0, 0,
             b"ok", b"s1.2", 5, 1]  # fmt: skip
    view, sold_out_now, answers = parse_grab_reply(reply, 3)
    assert view == StockView(3, 10, 8) and sold_out_now
    assert [a.code for a in answers] == ["ok", "sold_out", "ok"]
    assert answers[0].hold == "s1.7" and not answers[0].replayed and answers[2].replayed
    view, _, answers = parse_grab_reply([-1, 0, 0, 0, b"unknown_sale", b"", 0, 0], 1)
    assert view is None and answers[0].code == "unknown_sale"


def test_hold_ids_name_their_sale() -> None:
    assert hold_sale("flash-1.42") == "flash-1"
    for bad in ("flash-1", "a.b.c", ".1", "s.x", 7, None, "{r}.1"):
        with pytest.raises(RequestRefused) as caught:
            hold_sale(bad)
        assert caught.value.code is ErrorCode.UNKNOWN_HOLD


def peek(
    left: int, ver: int, *winners: str, start: int = NOW - 1, end: int = NOW + 60_000
) -> list[Any]:
    return [left, ver, start, end, 1, *(w.encode() for w in winners)]


def test_the_shortcut_answers_only_once_sold_out_and_only_for_users_who_hold_nothing() -> None:
    gate = SoldOutGate(recheck_s=0.25)
    assert gate.decide("u1", NOW, 0.0) is None  # knows nothing: ask Redis
    gate.observe(StockView(2, 10, 5), 0.0)
    assert gate.decide("u1", NOW, 0.0) is None and not gate.needs_peek
    gate.observe(StockView(0, 10, 7), 0.0)
    assert gate.needs_peek and gate.decide("u1", NOW, 0.0) is None  # winners not known yet
    gate.loading = True
    gate.peeked(peek(0, 7, "w1", "w2"), 0.0)
    assert gate.decide("u1", NOW, 0.1) == "sold_out"
    assert gate.decide("w1", NOW, 0.1) is None  # a winner's retry must get its first answer
    assert gate.decide("u1", NOW + 61_000, 0.1) == "ended"
    assert gate.decide("u1", NOW, 0.3) is None  # lapsed: one batch goes to Redis
    gate.observe(StockView(0, 10, 7), 0.3)  # ...and Redis says: still sold out, same version
    assert gate.decide("u1", NOW, 0.4) == "sold_out"
    gate.observe(StockView(5, 15, 8), 0.4)  # a restock seen anywhere: back to Redis
    assert gate.decide("u1", NOW, 0.4) is None


def test_an_older_peek_never_overrides_newer_knowledge() -> None:
    gate = SoldOutGate(recheck_s=1)
    gate.observe(StockView(0, 10, 7), 0.0)
    gate.observe(StockView(3, 13, 9), 0.0)
    gate.peeked(peek(0, 7, "w1"), 0.0)
    assert gate.decide("u1", NOW, 0.0) is None


def test_grab_results_carry_the_hold_or_the_code() -> None:
    from engine.features.seckill import GrabAnswer

    ok = grab_result(7, "s1", 2, GrabAnswer("ok", "s1.3", NOW, replayed=True))
    assert ok == {"type": "result", "rid": 7, "ok": True,
                  "data": {"sale": "s1", "hold": "s1.3", "expires_at": NOW, "qty": 2, "replayed": True}}  # fmt: skip
    no = grab_result("r", "s1", 1, GrabAnswer("sold_out"))
    assert no == {
        "type": "result",
        "rid": "r",
        "ok": False,
        "code": "sold_out",
        "data": {"sale": "s1"},
    }


def test_snapshots_show_running_sales_with_their_live_stock() -> None:
    s1 = spec(sale="s1").view({"name": "Tea"})
    s2 = spec(sale="s2", duration_s=30).view({"name": "Cup"})
    old = spec(sale="s0", start_ms=NOW - 10_000, end_ms=NOW + 1, duration_s=None).view({})
    state = {"sale:s1": s1, "left:s1": [4, 12, 9], "sale:s2": s2, "sale:s0": old, "likes": 3}
    views = sale_views(state, NOW + 5)
    assert [v["sale"] for v in views] == ["s2", "s1"]  # soonest end first; s0 is over
    assert (views[1]["left"], views[1]["stock"], views[1]["ver"]) == (4, 12, 9)
    assert views[0]["left"] == 10


def test_stock_counters_go_out_once_per_tick_newest_version_first() -> None:
    b = RoomBroadcaster(tick_s=0.1, max_messages=10, max_bytes=10_000)
    for ver, left in [(3, 7), (5, 5), (4, 6)]:  # nodes publish in any order
        b.counter("stock:s1", ver, stock_message("s1", StockView(left, 10, ver)), seq=ver)
    out = b.tick()
    assert [o.message["left"] for o in out] == [5] and out[0].key == "stock:s1"
    assert b.tick() == []  # nothing new: nothing sent
    b.counter("stock:s1", 5, stock_message("s1", StockView(5, 10, 5)), seq=6)
    assert b.tick() == []


def test_product_lists_are_validated() -> None:
    good = [{"id": "tea", "name": " Tea ", "image": "https://i/t.png", "price": 990, "stock": 5},
            {"id": "cup", "name": "Cup", "image": "http://i/c.png", "price": 0, "stock": 0,
             "list_price": 100, "order": 9, "promo": "new"}]  # fmt: skip
    products = parse_products(good)
    assert products[0].name == "Tea" and products[0].list_price == 990 and products[0].order == 0
    assert products[1].card() == {
        "id": "cup",
        "name": "Cup",
        "price": 0,
        "image": "http://i/c.png",
        "stock": 0,
    }
    for bad in (
        "tea",
        [good[0], good[0]],
        [{**good[0], "id": "{x}"}],
        [{**good[0], "image": "javascript:alert(1)"}],
        [{**good[0], "price": -1}],
        [{**good[0], "name": ""}],
        [{**good[0], "name": "a\nb"}],
        [{**good[0], "stock": "5"}],
        [{**good[0], "promo": "x" * 33}],
        [7],
        [good[0]] * 501,
    ):
        with pytest.raises(RequestRefused) as caught:
            parse_products(bad)
        assert caught.value.code is ErrorCode.BAD_FIELD


def test_cards_view_is_tolerant_of_what_redis_holds() -> None:
    assert cards_view(None) == {"mounted": [], "pinned": None}
    raw = {"mounted": [{"id": "a", "name": "A", "price": 1, "image": "https://i", "stock": 2, "order": 0}],
           "pinned": ""}  # fmt: skip
    assert cards_view(raw) == {"mounted": [{"id": "a", "name": "A", "price": 1, "image": "https://i", "stock": 2}],
                               "pinned": None}  # fmt: skip


def test_result_frames_are_the_same_bytes_as_the_general_encoder() -> None:
    from engine.gateway.handlers.seckill import result_frame
    from engine.protocol.codec import JSON, MSGPACK
    from engine.protocol.wsframe import encode_frame

    for codec in (JSON, MSGPACK):
        for message in (
            {"type": "result", "rid": 1, "ok": True},
            {"type": "result", "x": "y" * 300},
        ):
            assert result_frame(codec, message) == encode_frame(codec, message)
