"""The locust scenarios' pure part (loadtest/locustproto.py), without sockets: tokens the engine
accepts, URLs, frames, how answers are counted, what a viewer does on each popup, and an anchor
plan whose every command the control registry accepts."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import msgpack
import pytest

from engine.control.commands import build_registry
from engine.identity import Role, TokenVerifier
from loadtest import locustproto as lp

KEYS = {"lt": b"locust-unit-secret-0123456789abcdef012345"}


def brain(**kw: object) -> lp.ViewerBrain:
    return lp.ViewerBrain("v1", rng=random.Random(7), **kw)  # type: ignore[arg-type]


# -- tokens and URLs ------------------------------------------------------------------------


def test_keys_parse_like_engine_token_keys() -> None:
    assert lp.parse_keys("a:secret1, b:secret2") == {"a": b"secret1", "b": b"secret2"}
    assert lp.parse_keys("a:with:colon") == {"a": b"with:colon"}
    for bad in ("", "nokid", ":secret", "kid:"):
        with pytest.raises(ValueError):
            lp.parse_keys(bad)


def test_dev_keys_read_the_file_engine_run_dev_writes(tmp_path: Path) -> None:
    assert lp.dev_keys(tmp_path) == ""
    (tmp_path / "dev-keys.json").write_text(json.dumps({"dev": "ab" * 32}))
    assert lp.parse_keys(lp.dev_keys(tmp_path)) == {"dev": ("ab" * 32).encode()}


def test_minted_tokens_pass_the_engine_verifier() -> None:
    verifier = TokenVerifier(KEYS)
    who = verifier.verify(lp.mint(KEYS, user="v1", room="r1", device="d-v1", name="fan 1"), "r1")
    assert (who.user, who.room, who.role, who.device, who.name) == (
        "v1",
        "r1",
        Role.VIEWER,
        "d-v1",
        "fan 1",
    )
    anchor = verifier.verify(lp.mint(KEYS, user=lp.ANCHOR, room="r1", role="anchor"))
    assert anchor.role is Role.ANCHOR


def test_ws_url_is_guessed_only_for_engine_run_ports() -> None:
    assert lp.default_ws_url("http://127.0.0.1:8901") == "ws://127.0.0.1:8900/v1/ws"
    assert (
        lp.default_ws_url("https://live.example.com:8901/") == "wss://live.example.com:8900/v1/ws"
    )
    with pytest.raises(ValueError, match="--ws-url"):
        lp.default_ws_url("https://live.example.com")


def test_viewer_url_resumes_only_with_a_position() -> None:
    assert lp.viewer_url("ws://h/v1/ws", "T", "r1") == "ws://h/v1/ws?token=T&room=r1"
    assert lp.viewer_url("ws://h/v1/ws", "T", "r1", 5, "") == "ws://h/v1/ws?token=T&room=r1"
    assert lp.viewer_url("ws://h/v1/ws", "T", "r1", 5, "e") == (
        "ws://h/v1/ws?token=T&room=r1&since=5&epoch=e"
    )


def test_fake_ips_are_distinct_private_addresses() -> None:
    ips = {lp.fake_ip(n) for n in range(70_000)}
    assert len(ips) == 70_000 and all(ip.startswith("10.") for ip in ips)


# -- frames ---------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_frames_round_trip(codec: str) -> None:
    msg = {"type": "grab", "sale": "s1", "rid": "g1", "text": "❤️"}
    assert lp.decode(lp.encode(msg, codec), binary=codec == "msgpack") == msg


def test_undecodable_or_non_map_frames_are_none() -> None:
    assert lp.decode("{nope", binary=False) is None
    assert lp.decode("[1, 2]", binary=False) is None
    assert lp.decode(b"\xc1", binary=True) is None
    assert lp.decode(msgpack.packb([1]), binary=True) is None


def test_stamps_survive_the_text_and_give_send_to_deliver() -> None:
    sent = 1_764_000_000_123_456
    text = lp.stamp_text("want!! (v1)", sent)
    assert lp.stamp_of(text) == sent and lp.stamp_of("no stamp") is None and lp.stamp_of(5) is None
    chat = {"type": "chat", "msgs": [{"text": text}, {"text": "tea0"}, "junk", {"text": None}]}
    assert lp.deliveries(chat, sent + 42_500) == [42.5]
    assert lp.deliveries({"type": "chat", "msgs": "junk"}, sent) == []


@pytest.mark.parametrize(
    ("kind", "msg", "expected"),
    [
        ("grab", {"type": "result", "ok": True, "data": {"sale": "s"}}, ("ok", True)),
        ("grab", {"type": "result", "ok": False, "code": "sold_out"}, ("sold_out", True)),
        ("grab", {"type": "result", "ok": False, "code": "limit_reached"}, ("limit_reached", True)),
        ("grab", {"type": "result", "ok": False, "code": "unknown_sale"}, ("unknown_sale", False)),
        ("grab", {"type": "result", "ok": False, "code": "refused"}, ("refused", False)),
        ("grab", {"type": "error", "code": "rate_limited"}, ("rate_limited", False)),
        ("claim", {"type": "result", "ok": False, "code": "all_claimed"}, ("all_claimed", True)),
        (
            "claim",
            {"type": "result", "ok": False, "code": "unknown_batch"},
            ("unknown_batch", False),
        ),
        ("enter", {"type": "result", "ok": True, "data": {"new": False}}, ("again", True)),
        (
            "enter",
            {"type": "result", "ok": False, "code": "lottery_closed"},
            ("lottery_closed", True),
        ),
        ("danmaku", {"type": "error", "code": "muted"}, ("muted", False)),
    ],
)
def test_lost_races_are_outcomes_and_faults_are_failures(
    kind: str, msg: dict[str, object], expected: tuple[str, bool]
) -> None:
    assert lp.outcome(kind, msg) == expected


# -- the viewer -----------------------------------------------------------------------------


def sale_popup(pid: str, sale: str, start_at: int, end_at: int, ts: int) -> dict[str, object]:
    data = {"sale": sale, "start_at": start_at, "end_at": end_at, "left": 3}
    return {"type": "popup", "popup": {"id": pid, "kind": "seckill", "ts": ts, "data": data}}


def test_a_sale_popup_schedules_one_grab_at_its_t0() -> None:
    b = brain(grab_jitter_s=0.5)
    metrics, later = b.on_message(sale_popup("p1", "s1", 13_000, 20_000, 9_990), 100.0, 10_000)
    assert [m.name for m in metrics] == ["popup:seckill"] and metrics[0].ms == 10
    [grab] = later  # t0 on the engine's clock: 3.01 s after the popup's ts
    assert grab.kind == "grab" and grab.target == "s1" and 3.01 <= grab.delay <= 3.51
    # the same popup again (a resume) and the sale in a snapshot: nothing more
    assert b.on_message(sale_popup("p1", "s1", 13_000, 20_000, 9_990), 101.0, 11_000) == ([], [])
    welcome = {"type": "welcome", "epoch": "e1", "seq": 4, "snapshot": {"sales": [
        {"sale": "s1", "start_at": 13_000, "end_at": 20_000, "left": 3}]}}  # fmt: skip
    assert b.on_message(welcome, 102.0, 12_000) == ([], [])
    assert (b.epoch, b.seq) == ("e1", 4)


def test_sales_over_or_sold_out_are_not_grabbed() -> None:
    b = brain()
    assert b.on_message(sale_popup("p1", "s1", 1_000, 5_000, 9_000), 0.0, 10_000)[1] == []
    welcome = {"type": "welcome", "snapshot": {"sales": [{"sale": "s2", "left": 0}]}}
    assert b.on_message(welcome, 0.0, 10_000)[1] == []
    [grab] = b.on_message(sale_popup("p2", "s3", 11_000, 20_000, 10_000), 0.0, 10_000)[1]
    sold = {
        "type": "popup",
        "popup": {"id": "p3", "kind": "sold_out", "ts": 1, "data": {"sale": "s3"}},
    }
    b.on_message(sold, 0.0, 10_500)
    assert not b.wants(grab)


def test_a_grab_is_timed_from_send_to_answer_under_its_code() -> None:
    b = brain()
    msg = b.request("grab", "s1", now=10.0)
    assert msg == {"type": "grab", "sale": "s1", "rid": msg["rid"]}
    answer = {"type": "result", "rid": msg["rid"], "ok": False, "code": "sold_out"}
    [metric], later = b.on_message(answer, 10.25, 0)
    assert metric == lp.Metric("grab:sold_out", 250.0) and later == [] and not b.pending
    # an answer nobody asked for (another rid) is ignored
    assert b.on_message({"type": "result", "rid": "x9", "ok": True}, 11.0, 0) == ([], [])


def test_unavailable_is_retried_with_the_same_rid_then_reported() -> None:
    b = brain()
    msg = b.request("claim", "c1", now=0.0)
    rid = msg["rid"]
    unavailable = {"type": "result", "rid": rid, "ok": False, "code": "unavailable"}
    for _ in range(lp.MAX_RETRIES - 1):
        metrics, [retry] = b.on_message(unavailable, 0.1, 0)
        assert metrics == [] and retry.kind == "retry" and retry.target == rid
        assert b.retry_message(rid) == {"type": "claim", "batch": "c1", "rid": rid}
    [metric], later = b.on_message(unavailable, 0.5, 0)
    assert metric.name == "claim:unavailable" and metric.error == "unavailable" and later == []
    assert b.retry_message(rid) is None


def test_requests_never_answered_are_reported_once() -> None:
    b = brain(timeout_s=10.0)
    b.request("grab", "s1", now=0.0)
    b.request("like", "3", now=5.0)
    assert b.overdue(9.0) == []
    [late] = b.overdue(10.5)
    assert late.name == "grab:no_answer" and late.error == "no_answer"
    assert [m.name for m in b.overdue(20.0)] == ["like:no_answer"] and b.overdue(30.0) == []


def test_danmaku_and_like_successes_carry_their_kind_only() -> None:
    b = brain()
    chat = b.danmaku(1.0, wall_us=1_764_000_000_000_000)
    assert chat["type"] == "danmaku" and lp.stamp_of(chat["text"]) == 1_764_000_000_000_000
    like = b.like(1.0)
    assert like["type"] == "like" and 1 <= like["count"] <= 10
    ok = [b.on_message({"type": "result", "rid": m["rid"], "ok": True}, 1.02, 0)[0][0]
          for m in (chat, like)]  # fmt: skip
    assert [(m.name, m.error) for m in ok] == [("danmaku", None), ("like", None)]
    refused = b.danmaku(2.0, wall_us=1)
    [m], _ = b.on_message({"type": "error", "rid": refused["rid"], "code": "rate_limited"}, 2.1, 0)
    assert (m.name, m.error) == ("danmaku:rate_limited", "rate_limited")


def test_coupons_and_lotteries_are_acted_on_after_a_reaction_delay() -> None:
    b = brain(react_s=(0.5, 1.0))
    coupon = {"id": "p1", "kind": "coupon", "ts": 1, "data": {"batch": "c1", "left": 10}}
    [claim] = b.on_message({"type": "popup", "popup": coupon}, 0.0, 2)[1]
    assert claim.kind == "claim" and claim.target == "c1" and 0.5 <= claim.delay <= 1.0
    assert b.request("claim", "c1", 0.0)["type"] == "claim"
    kinds = set()
    for i in range(40):  # entry "both": about half by keyword danmaku, half by lottery_enter
        data = {"lottery": f"l{i}", "entry": "both", "keyword": "tea0"}
        popup = {"id": f"q{i}", "kind": "lottery", "ts": 1, "data": data}
        [act] = b.on_message({"type": "popup", "popup": popup}, 0.0, 2)[1]
        kinds.add((act.kind, act.target if act.kind == "keyword" else "lottery"))
    assert kinds == {("keyword", "tea0"), ("enter", "lottery")}
    follow_only = {
        "id": "q99",
        "kind": "lottery",
        "ts": 1,
        "data": {"lottery": "lx", "entry": "follow"},
    }
    [act] = b.on_message({"type": "popup", "popup": follow_only}, 0.0, 2)[1]
    assert (act.kind, act.target) == ("enter", "lx")
    assert b.request("enter", "lx", 0.0) == {"type": "lottery_enter", "lottery": "lx", "rid": "e2"}
    assert b.request("keyword", "tea0", 0.0)["text"] == "tea0"


def test_only_watchers_time_deliveries_and_everyone_keeps_the_position() -> None:
    chat = {"type": "chat", "seq": 9, "msgs": [{"text": lp.stamp_text("hi", 1_000_000)}]}
    watcher, other = brain(watcher=True), brain()
    assert watcher.on_message(chat, 0.0, 1_050.0)[0] == [lp.Metric("deliver", 50.0)]
    assert other.on_message(chat, 0.0, 1_050.0) == ([], [])
    assert watcher.seq == other.seq == 9
    other.on_message({"type": "likes", "total": 3, "seq": 7}, 0.0, 0)
    assert other.seq == 9


def test_errors_without_rid_are_failures() -> None:
    [m], _ = brain().on_message({"type": "error", "code": "bad_frame", "message": "x"}, 0.0, 0)
    assert (m.name, m.error) == ("error:bad_frame", "bad_frame")


# -- the anchor -----------------------------------------------------------------------------


def test_the_anchor_plan_sets_up_then_cycles_in_time_order() -> None:
    steps = list(itertools.islice(lp.anchor_plan(run="r", viewers=40, cycle_s=10.0), 3 + 12))
    assert [s.command for s in steps[:3]] == ["create_room", "set_products", "start_room"]
    times = [s.at for s in steps]
    assert times == sorted(times)
    cycle = [s.command for s in steps[3:9]]
    assert cycle == ["pin_product", "start_seckill", "drop_coupon", "create_lottery",
                     "live_numbers", "draw_lottery"]  # fmt: skip
    sales = [s.params["sale"] for s in steps if s.command == "start_seckill"]
    assert len(set(sales)) == 2
    sale = next(s for s in steps if s.command == "start_seckill")
    assert sale.params["stock"] == 10
    assert next(s for s in steps if s.command == "drop_coupon").params["quantity"] == 20
    assert lp.resolve(sale, 1_000)["start_at"] == 1_000 + 3_000
    assert "start_in_s" not in lp.resolve(sale, 1_000)


def test_every_planned_command_is_one_the_registry_accepts() -> None:
    registry = build_registry()
    plan = lp.anchor_plan(run="r", viewers=3, lift_ip_limits=True)
    for step in itertools.islice(plan, 3 + 6 + 12):
        command = registry.get(step.command)
        command.params.model_validate(lp.resolve(step, 1_764_000_000_000))


def test_ip_limits_are_lifted_only_when_asked() -> None:
    def lifted(**kw: bool) -> list[str]:
        setup = itertools.islice(lp.anchor_plan(run="r", viewers=3, **kw), 9)
        return [s.params["action"] for s in setup if s.command == "set_limit"]

    assert lifted() == []
    assert lifted(lift_ip_limits=True) == ["join", "danmaku", "like", "grab", "coupon", "lottery"]


def test_control_codes_and_what_a_rerun_tolerates() -> None:
    assert lp.control_code(200, {"sale": "s"}) == "ok"
    assert lp.control_code(409, {"error": {"code": "room_exists", "message": "m"}}) == "room_exists"
    assert lp.control_code(502, "<html>") == "http_502"
    assert ("create_room", "room_exists") in lp.TOLERATED
