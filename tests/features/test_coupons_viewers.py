"""Coupons end to end: engine nodes, real WebSockets, a real Redis. Drops by hand and by the
durable scheduler, claims and retries, counts once per tick, "all claimed" once, the claim window,
share-for-coupon through `share_recorded`, the anti-fraud guard, two nodes."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
import trio

from engine import Engine
from engine.errors import EngineError
from engine.store import keys
from engine.store.store import now_ms, open_redis
from tests.conftest import StartEngine
from tests.support import Viewer, viewer

pytestmark = pytest.mark.integration


def url(engine: Engine) -> str:
    assert engine.address is not None
    return engine.address.ws_url


async def events_of(redis_url: str, room: str, prefix: bytes = b"coupon.") -> list[Any]:
    async with open_redis(redis_url) as redis:
        entries = await redis.xrange(keys.events(room))
    out = []
    for entry in entries:
        f = {k.decode(): v for k, v in entry.field_values.items()}
        if f["type"].startswith(prefix):
            out.append((f["type"].decode(), orjson.loads(f["data"])))
    return out


async def claim(v: Viewer, batch: str, rid: Any) -> dict[str, Any]:
    await v.send(type="claim", batch=batch, rid=rid)
    return await v.recv_type("result", rid=rid)


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_a_drop_pops_up_and_claims_are_one_per_user_and_replayed(
    start_engine: StartEngine, room: str, redis_url: str, codec: str
) -> None:
    engine = await start_engine()
    async with viewer(url(engine), engine.mint_token("alice", room), codec=codec) as alice:
        batch = await engine.command("drop_coupon", room=room, batch="tea10", kind="threshold",
                                     value=1000, threshold=9900, quantity=5, title="10 off 99",
                                     valid_s=3600, claim_s=600)  # fmt: skip
        assert batch["state"] == "live" and batch["left"] == 5
        popup = (await alice.recv_type("popup"))["popup"]
        assert popup["kind"] == "coupon" and popup["ttl"] <= 600
        data = popup["data"]
        assert (data["batch"], data["kind"], data["value"], data["threshold"]) == (
            "tea10", "threshold", 1000, 9900)  # fmt: skip
        assert (data["quantity"], data["left"], data["title"]) == (5, 5, "10 off 99")
        assert data["claim_until"] - popup["ts"] <= 600_000
        first = await claim(alice, "tea10", 1)
        assert first["ok"] and first["data"]["coupon"] == "tea10.1"
        assert first["data"]["value"] == 1000 and first["data"]["threshold"] == 9900
        assert "replayed" not in first["data"]
        again = await claim(alice, "tea10", 1)
        assert again["ok"] and again["data"]["coupon"] == "tea10.1" and again["data"]["replayed"]
        other = await claim(alice, "tea10", "second")
        assert (other["ok"], other["code"], other["data"]["coupon"]) == (
            False, "already_claimed", "tea10.1")  # fmt: skip
        unknown = await claim(alice, "nope", 2)
        assert (unknown["ok"], unknown["code"]) == (False, "unknown_batch")
        await alice.send(type="claim", batch="tea10")  # no rid: no idempotency key
        assert (await alice.recv_type("error"))["code"] == "bad_field"
    async with viewer(url(engine), engine.mint_token("bob", room)) as bob:
        [live] = bob.welcome["snapshot"]["coupons"]  # type: ignore[attr-defined]
        assert live["batch"] == "tea10" and (live["left"], live["quantity"]) == (4, 5)
    granted = [d for t, d in await events_of(redis_url, room) if t == "coupon.granted"]
    assert len(granted) == 1
    g = granted[0]
    assert (g["user"], g["coupon"], g["source"], g["rid"], g["value"]) == (
        "alice", "tea10.1", "viewer", "1", 1000)  # fmt: skip
    status = await engine.command("coupon_status", room=room, batch="tea10")
    assert (status["left"], status["granted"], status["quantity"]) == (4, 1, 5)


async def test_counts_go_out_once_per_tick_and_all_claimed_once_over_two_nodes(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    tick_s = 0.3
    a = await start_engine(promo_counter_interval_s=tick_s)
    b = await start_engine(promo_counter_interval_s=tick_s)
    claimers, quantity = 30, 12
    async with viewer(url(b), b.mint_token("watcher", room)) as watcher:
        await a.command("drop_coupon", room=room, batch="rush", kind="no_threshold", value=500,
                        quantity=quantity)  # fmt: skip
        await watcher.recv_type("popup")
        results: list[dict[str, Any]] = []
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(claimers):

                async def one(i: int = i) -> None:
                    node = (a, b)[i % 2]
                    async with viewer(url(node), node.mint_token(f"c{i}", room)) as v:
                        results.append(await claim(v, "rush", i))

                nursery.start_soon(one)
        frames, popups = [], []
        with trio.move_on_after(3 * tick_s + 2):
            while not frames or frames[-1]["left"] != 0:
                message = await watcher.recv()
                if message["type"] == "coupon_left":
                    frames.append(message)
                elif message["type"] == "popup":
                    popups.append(message["popup"]["kind"])
        with trio.move_on_after(1.0):  # anything more that was coming
            while True:
                message = await watcher.recv()
                if message["type"] == "popup":
                    popups.append(message["popup"]["kind"])
        elapsed = trio.current_time() - started
    assert [r["ok"] for r in results].count(True) == quantity
    assert {r["code"] for r in results if not r["ok"]} == {"all_claimed"}
    assert frames and frames[-1]["left"] == 0 and frames[-1]["quantity"] == quantity
    # two nodes each publish at most once per tick; each viewer frame is once per tick per node
    assert len(frames) <= 2 * (math.ceil(elapsed / tick_s) + 1) and len(frames) < claimers
    assert popups.count("coupon_all_claimed") == 1
    granted = [d for t, d in await events_of(redis_url, room) if t == "coupon.granted"]
    assert len(granted) == quantity == len({d["user"] for d in granted})
    assert sorted(d["coupon"] for d in granted) == sorted(f"rush.{n}" for n in range(1, 13))


async def test_a_scheduled_drop_runs_on_the_scheduler_and_its_window_closes(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine(scheduler_poll_s=0.05)
    async with viewer(url(engine), engine.mint_token("alice", room)) as alice:
        drop_at = now_ms() + 600
        batch = await engine.command("schedule_coupon", room=room, batch="later",
                                     kind="percent", value=20, quantity=3, drop_at=drop_at,
                                     claim_s=1)  # fmt: skip
        assert batch["state"] == "scheduled" and batch["drop_at"] == drop_at
        early = await claim(alice, "later", "early")
        assert (early["ok"], early["code"]) == (False, "not_started")
        popup = (await alice.recv_type("popup", timeout=5))["popup"]
        assert popup["kind"] == "coupon" and popup["data"]["batch"] == "later"
        assert popup["ts"] >= drop_at
        assert (await claim(alice, "later", "on-time"))["ok"]
        with trio.fail_after(5):
            while (await engine.command("coupon_status", room=room, batch="later"))[
                "state"
            ] != "ended":
                await trio.sleep(0.1)
        late = await claim(alice, "later", "late")
        assert late["ok"] is False and late["code"] == "ended"
    async with viewer(url(engine), engine.mint_token("bob", room)) as bob:
        assert bob.welcome["snapshot"]["coupons"] == []  # type: ignore[attr-defined]
        late = await claim(bob, "later", 1)
        assert (late["ok"], late["code"]) == (False, "ended")
    kinds = [(t, d.get("reason")) for t, d in await events_of(redis_url, room)]
    assert kinds == [("coupon.created", None), ("coupon.dropped", None),
                     ("coupon.granted", None), ("coupon.ended", "time")]  # fmt: skip
    with pytest.raises(EngineError) as refused:
        await engine.command("schedule_coupon", room=room, batch="later", drop_at=now_ms() + 9e5)
    assert refused.value.code == "bad_field"  # a float is not a time
    with pytest.raises(EngineError) as refused:
        await engine.command("drop_coupon", room=room, batch="later")
    assert refused.value.code == "ended"


async def test_share_for_coupon_goes_through_the_claim_script(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine()
    await engine.command("create_coupon", room=room, batch="share5", kind="no_threshold",
                         value=500, quantity=2)  # fmt: skip
    none = await engine.command("share_recorded", room=room, share_id="s0", user="zed")
    assert none["coupon"] is None  # no batch named, no share coupon set
    await engine.command("set_share_coupon", room=room, batch="share5")
    first = await engine.command("share_recorded", room=room, share_id="s1", user="ann")
    assert first["new"] and first["coupon"]["ok"] and first["coupon"]["coupon"] == "share5.1"
    retry = await engine.command("share_recorded", room=room, share_id="s1", user="ann")
    assert not retry["new"] and retry["coupon"]["replayed"] and retry["coupon"]["ok"]
    second_share = await engine.command("share_recorded", room=room, share_id="s2", user="ann")
    assert second_share["coupon"]["code"] == "already_claimed"  # one per user and batch
    stolen = await engine.command("share_recorded", room=room, share_id="s1", user="bob")
    assert stolen["coupon"]["code"] == "duplicate"  # a share id belongs to one user
    await engine.command("drop_coupon", room=room, batch="share5")
    async with viewer(url(engine), engine.mint_token("ann", room)) as ann:
        assert (await claim(ann, "share5", 1))["code"] == "already_claimed"
    explicit = await engine.command("share_recorded", room=room, share_id="s3", user="cid",
                                    batch="share5")  # fmt: skip
    assert explicit["coupon"]["coupon"] == "share5.2"
    gone = await engine.command("share_recorded", room=room, share_id="s4", user="dee")
    assert gone["coupon"]["code"] == "all_claimed"
    granted = [d for t, d in await events_of(redis_url, room) if t == "coupon.granted"]
    assert [(d["user"], d["source"], d.get("share_id")) for d in granted] == [
        ("ann", "share", "s1"), ("cid", "share", "s3")]  # fmt: skip
    with pytest.raises(EngineError) as refused:
        await engine.command("set_share_coupon", room=room, batch="missing")
    assert refused.value.code == "unknown_batch"


async def test_claims_pass_the_antifraud_guard(start_engine: StartEngine, room: str) -> None:
    engine = await start_engine(limit_coupon="user=1/1m burst 1")
    for batch in ("g1", "g2"):
        await engine.command("drop_coupon", room=room, batch=batch, kind="no_threshold",
                             value=100, quantity=10)  # fmt: skip
    async with viewer(url(engine), engine.mint_token("fast", room)) as fast:
        assert (await claim(fast, "g1", 1))["ok"]
        await fast.send(type="claim", batch="g2", rid=2)
        refused = await fast.recv_type("error", rid=2)
        assert refused["code"] == "rate_limited" and refused["retry_after_ms"] > 0
    assert (await engine.command("coupon_status", room=room, batch="g2"))["granted"] == 0


async def test_bad_batches_are_refused_with_clear_codes(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine()
    bad = [
        {"kind": "threshold", "value": 1000, "threshold": 500, "quantity": 1},  # threshold <= v
        {"kind": "percent", "value": 100, "quantity": 1},
        {"kind": "fixed", "value": 100, "quantity": 1},  # no product
        {"kind": "no_threshold", "value": 100, "quantity": 1, "threshold": 5},
        {"kind": "no_threshold", "value": 100, "quantity": 0},
        {"kind": "no_threshold", "value": 100, "quantity": 1, "valid_until": 1},
        {"kind": "no_threshold", "quantity": 1},  # no value
        {"value": 100, "quantity": 1},  # no kind
    ]
    for terms in bad:
        with pytest.raises(EngineError) as refused:
            await engine.command("drop_coupon", room=room, batch="bad", **terms)
        assert refused.value.code == "bad_field", terms
    assert (await engine.command("list_coupons", room=room))["batches"] == []
    fixed = await engine.command("create_coupon", room=room, batch="cup", kind="fixed",
                                 value=200, quantity=1, product="cup-1")  # fmt: skip
    assert fixed["product"] == "cup-1" and fixed["state"] == "created"
    with pytest.raises(EngineError) as refused:
        await engine.command("create_coupon", room=room, batch="cup", kind="fixed", value=200,
                             quantity=1, product="cup-1")  # fmt: skip
    assert refused.value.code == "batch_exists"
    with pytest.raises(EngineError) as refused:
        await engine.command("coupon_status", room=room, batch="none")
    assert refused.value.code == "unknown_batch"
    ended = await engine.command("end_coupon", room=room, batch="cup")
    assert ended["state"] == "ended"
    assert [b["batch"] for b in (await engine.command("list_coupons", room=room))["batches"]] == [
        "cup"]  # fmt: skip


async def test_a_viewer_may_have_only_so_many_claims_unanswered(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(seckill_max_inflight_per_viewer=1, seckill_batch_window_ms=300)
    for batch in ("p1", "p2"):
        await engine.command("drop_coupon", room=room, batch=batch, kind="no_threshold",
                             value=100, quantity=5)  # fmt: skip
    async with viewer(url(engine), engine.mint_token("eager", room)) as eager:
        await eager.send(type="claim", batch="p1", rid=1)
        await eager.send(type="claim", batch="p2", rid=2)  # while the first is in its batch
        assert (await eager.recv_type("error", rid=2))["code"] == "rate_limited"
        assert (await eager.recv_type("result", rid=1))["ok"]
        assert (await claim(eager, "p2", 3))["ok"]  # answered: the next one may go
