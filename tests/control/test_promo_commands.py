"""Coupon, lottery and follow commands through the control plane: HTTP statuses, roles (the
anchor drops and draws in its own room, only the host submits prize claims), `engine ctl` over
the Unix socket, and the live numbers."""

from __future__ import annotations

import pytest

from tests.conftest import StartEngine
from tests.control.support import address, ctl_call, http_call
from tests.support import viewer

pytestmark = pytest.mark.integration


async def test_coupon_and_lottery_commands_over_http_with_roles(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(control_socket="none")
    admin = engine.mint_token("host", "ops", role="admin")
    anchor = engine.mint_token("anchor-1", room, role="anchor")
    dropped = await http_call(engine, anchor, "drop_coupon", room, batch="c1",
                              kind="no_threshold", value=300, quantity=2)  # fmt: skip
    assert dropped.status == 200 and dropped.result["state"] == "live"
    other = await http_call(engine, anchor, "drop_coupon", "another-room", batch="c1",
                            kind="no_threshold", value=300, quantity=2)  # fmt: skip
    assert (other.status, other.code) == (403, "wrong_room")
    again = await http_call(engine, admin, "drop_coupon", room, batch="c1",
                            kind="no_threshold", value=300, quantity=2)  # fmt: skip
    assert (again.status, again.code) == (409, "batch_exists")
    missing = await http_call(engine, admin, "coupon_status", room, batch="zz")
    assert (missing.status, missing.code) == (404, "unknown_batch")
    bad = await http_call(engine, admin, "drop_coupon", room, batch="c2", kind="threshold",
                          value=300, threshold=100, quantity=2)  # fmt: skip
    assert (bad.status, bad.code) == (400, "bad_field")
    listed = await http_call(engine, anchor, "list_coupons", room)
    assert [b["batch"] for b in listed.result["batches"]] == ["c1"]
    created = await http_call(engine, anchor, "create_lottery", room, prize="Tea", winners=1,
                              entry="keyword", keyword="tea", lottery="l1")  # fmt: skip
    assert created.status == 200 and len(created.result["commitment"]) == 64
    async with viewer(address(engine).ws_url, engine.mint_token("ann", room)) as ann:
        await ann.send(type="lottery_enter", lottery="l1", rid=1)
        assert (await ann.recv_type("result", rid=1))["ok"]
        await ann.send(type="claim", batch="c1", rid=2)
        assert (await ann.recv_type("result", rid=2))["ok"]
        await ann.send(type="follow", rid=3)
        await ann.recv_type("result", rid=3)
    numbers = await http_call(engine, anchor, "live_numbers", room)
    assert numbers.result["new_follows"] == 1
    assert numbers.result["coupons"][0]["left"] == 1
    assert numbers.result["lotteries"] == [
        {"lottery": "l1", "prize": "Tea", "state": "open", "entrants": 1, "draw_at": None}]  # fmt: skip
    drawn = await http_call(engine, anchor, "draw_lottery", room, lottery="l1")
    assert [w["user"] for w in drawn.result["winners"]] == ["ann"]
    by_anchor = await http_call(engine, anchor, "claim_prize", room, lottery="l1", user="ann")
    assert (by_anchor.status, by_anchor.code) == (403, "forbidden")
    by_host = await http_call(engine, admin, "claim_prize", room, lottery="l1", user="ann")
    assert by_host.status == 200 and by_host.result["rank"] == 1
    loser = await http_call(engine, admin, "claim_prize", room, lottery="l1", user="bob")
    assert (loser.status, loser.code) == (409, "not_a_winner")
    unknown = await http_call(engine, admin, "draw_lottery", room, lottery="nope")
    assert (unknown.status, unknown.code) == (404, "unknown_lottery")
    share = await http_call(engine, admin, "share_recorded", room, share_id="sh-1", user="cid",
                            batch="c1")  # fmt: skip
    assert share.result["coupon"]["coupon"] == "c1.2"


async def test_engine_ctl_runs_the_lottery_commands(
    start_engine: StartEngine, room: str, socket_path: str
) -> None:
    await start_engine(control_socket=socket_path)
    created = await ctl_call("unix", socket_path, None, "create_lottery", room, prize="Cups",
                             winners=2, entry="follow", lottery="l2", claim_s=120)  # fmt: skip
    assert created.result["entry"] == "follow" and created.result["claim_s"] == 120
    status = await ctl_call("unix", socket_path, None, "lottery_status", room, lottery="l2")
    assert status.result["seed"] is None and status.result["state"] == "open"
    drawn = await ctl_call("unix", socket_path, None, "draw_lottery", room, lottery="l2")
    assert drawn.result["state"] == "drawn" and drawn.result["winners"] == []  # nobody entered
    entrants = await ctl_call("unix", socket_path, None, "lottery_entrants", room, lottery="l2")
    assert entrants.result["users"] == [] and entrants.result["frozen"]
    follows = await ctl_call("unix", socket_path, None, "follow_numbers", room)
    assert follows.result == {"new_follows": 0, "followers": 0}
