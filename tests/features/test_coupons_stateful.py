"""Property test of the coupon scripts against a real Redis: random interleavings of batched viewer
claims (with retried and reused request ids), share-for-coupon grants through the real
`share_recorded` path (repeated share ids, a share id reported for another user), drops, stops,
bans and time passing, each answer checked against a plain Python model, and after every step:

* never more coupons granted than the quantity (quantity = left + granted, left >= 0);
* never two coupons of one batch to one user, whoever asked (claims, shares, retries);
* every grant has exactly one `coupon.granted` event, and every event is a grant;
* a request (user, rid) or a share id is decided once: its retries get the first answer.

LIBS.md Pattern B: one Trio loop in a background thread, sync rules calling into it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine.features.counters import TickCounters
from engine.features.coupons import batch_spec, parse_claim_reply, viewer_key
from engine.features.coupons_node import Coupons
from engine.features.popups import Popups
from engine.features.shares import Shares
from engine.scheduler import Scheduler
from engine.store import keys
from engine.store.coupons import CouponStore
from engine.store.jobs import JobStore
from engine.store.rooms import RoomStore
from engine.store.store import Store
from tests.features.redis_loop import TrioLoop, aw
from tests.support import RedisProcess, engine_config

pytestmark = pytest.mark.integration

T0 = 1_900_000_000_000
USERS = [f"u{i}" for i in range(5)]
BATCHES = ["b1", "b2"]
LOOP: TrioLoop | None = None


@pytest.fixture(scope="module", autouse=True)
def trio_loop(redis_server: RedisProcess) -> Iterator[TrioLoop]:
    global LOOP
    LOOP = TrioLoop(redis_server.url)
    yield LOOP
    LOOP.close()
    LOOP = None


@dataclass
class Batch:
    """One batch as the scripts should keep it."""

    quantity: int
    valid_until: int
    claim_ms: int
    state: str
    claim_until: int = 0
    granted: int = 0
    holders: dict[str, str] = field(default_factory=dict)  # user -> coupon
    answers: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    shares: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # id -> user, code, c

    @property
    def left(self) -> int:
        return self.quantity - self.granted

    def decide(self, user: str, source: str, now: int, banned: set[str]) -> tuple[str, str]:
        if source == "viewer":
            if self.state in ("created", "scheduled"):
                return "not_started", ""
            if self.state != "live" or now >= self.claim_until:
                return "ended", ""
        elif self.state == "ended" or now >= self.valid_until:
            return "ended", ""
        if user in banned:
            return "banned", ""
        if user in self.holders:
            return "already_claimed", self.holders[user]
        if self.left <= 0:
            return "all_claimed", ""
        self.granted += 1
        coupon = f"{self.batch_id}.{self.granted}"
        self.holders[user] = coupon
        return "ok", coupon

    batch_id: str = ""


class CouponClaims(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert LOOP is not None
        self.loop = LOOP
        self.now = T0
        self.room = f"cp-{uuid.uuid4().hex[:10]}"
        redis = self.loop.redis
        self.store = CouponStore(redis, event_maxlen=100_000, clock=lambda: self.now)
        room_store = Store(redis, event_maxlen=100_000)
        config = engine_config("redis://unused", Path("/tmp"))
        self.coupons = Coupons(config, self.store, Popups(room_store), Scheduler(JobStore(redis)),
                               TickCounters(room_store, 1.0))  # fmt: skip
        self.shares = Shares(RoomStore(redis, event_maxlen=100_000), self.coupons.for_share)
        self.banned: set[str] = set()
        self.model: dict[str, Batch] = {}

    def call(self, fn: Any) -> Any:
        return self.loop.run(fn)

    @initialize(q1=st.integers(1, 4), q2=st.integers(1, 4), claim_s=st.sampled_from([5, 30]))
    def create(self, q1: int, q2: int, claim_s: int) -> None:
        for batch, quantity, state in (("b1", q1, "created"), ("b2", q2, "live")):
            spec = batch_spec(batch=batch, kind="no_threshold", value=100, quantity=quantity,
                              valid_until=T0 + 60_000, claim_s=claim_s, now=self.now)  # fmt: skip
            code, claim_until = self.call(lambda s=spec, st_=state: self.store.create(
                self.room, s, state=st_))  # fmt: skip
            assert code == "ok"
            model = Batch(quantity, T0 + 60_000, claim_s * 1000, state, batch_id=batch)
            if state == "live":
                model.claim_until = min(T0 + 60_000, self.now + claim_s * 1000)
                assert claim_until == model.claim_until
            self.model[batch] = model
        again = self.call(lambda: self.store.create(self.room, spec, state="live"))
        assert again[0] == "batch_exists"

    # --- rules ---------------------------------------------------------------------------

    @rule(
        batch=st.sampled_from(BATCHES),
        claims=st.lists(
            st.tuples(st.sampled_from(USERS), st.integers(0, 3) | st.sampled_from(["a", "b"])),
            min_size=1,
            max_size=8,
        ),
    )
    def claim(self, batch: str, claims: list[tuple[str, int | str]]) -> None:
        items: list[Any] = []
        for user, rid in claims:
            items += [user, viewer_key(rid), "viewer"]
        raw = self.call(lambda: self.store.claim(self.room, batch, items))
        view, _, _, answers = parse_claim_reply(raw, len(claims))
        model = self.model[batch]
        for (user, rid), answer in zip(claims, answers, strict=True):
            key = (user, viewer_key(rid))
            if key in model.answers:
                assert (answer.code, answer.coupon, answer.replayed) == (*model.answers[key], True)
                continue
            want = model.decide(user, "viewer", self.now, self.banned)
            model.answers[key] = want
            assert (answer.code, answer.coupon, answer.replayed) == (*want, False), (user, rid)
        assert view is not None and (view.left, view.quantity) == (model.left, model.quantity)

    @rule(batch=st.sampled_from(BATCHES), share=st.integers(0, 5), user=st.sampled_from(USERS))
    def share(self, batch: str, share: int, user: str) -> None:
        """The host's share_recorded, through Shares and the coupon feature (the claim script)."""
        share_id = f"sh{share}"
        result = self.call(lambda: self.shares.record(self.room, share_id, user, batch=batch))
        grant = result["coupon"]
        model = self.model[batch]
        first = model.shares.get(share_id)
        if first is None:
            code, coupon = model.decide(user, "share", self.now, self.banned)
            model.shares[share_id] = (user, code, coupon)
            assert (grant["code"], grant.get("coupon", "")) == (code, coupon)
            assert not grant.get("replayed")
        elif first[0] == user:  # the host retried: the same answer again
            assert (grant["code"], grant.get("coupon", ""), grant["replayed"]) == (
                first[1], first[2], True)  # fmt: skip
        else:  # the share id was used for another user: refused, nothing granted
            assert grant["code"] == "duplicate" and "coupon" not in grant

    @rule(batch=st.sampled_from(BATCHES))
    def drop(self, batch: str) -> None:
        code, already, claim_until = self.call(lambda: self.store.drop(self.room, batch))
        model = self.model[batch]
        if model.state == "live":
            assert (code, already, claim_until) == ("ok", True, model.claim_until)
        elif model.state == "ended" or self.now >= model.valid_until:
            assert code == "ended"
        else:
            model.state = "live"
            model.claim_until = min(model.valid_until, self.now + model.claim_ms)
            assert (code, already, claim_until) == ("ok", False, model.claim_until)

    @rule(batch=st.sampled_from(BATCHES))
    def stop(self, batch: str) -> None:
        code, already, left, quantity, _ = self.call(
            lambda: self.store.end(self.room, batch, "stopped")
        )
        model = self.model[batch]
        assert (code, already, left, quantity) == (
            "ok", model.state == "ended", model.left, model.quantity)  # fmt: skip
        model.state = "ended"

    @rule(batch=st.sampled_from(BATCHES))
    def close_on_time(self, batch: str) -> None:
        code, *_ = self.call(lambda: self.store.end(self.room, batch, "time"))
        model = self.model[batch]
        if model.state == "ended":
            assert code == "ok"
        elif model.state == "live" and self.now >= model.claim_until:
            assert code == "ok"
            model.state = "ended"
        else:
            assert code == "not_due"

    @rule(ms=st.sampled_from([1_000, 6_000, 40_000]))
    def time_passes(self, ms: int) -> None:
        self.now += ms

    @rule(user=st.sampled_from(USERS))
    def ban(self, user: str) -> None:
        self.call(lambda: aw(self.loop.redis.sadd(keys.banned(self.room), [user])))
        self.banned.add(user)

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def never_more_than_the_quantity(self) -> None:
        for batch, model in self.model.items():
            info = self.call(lambda b=batch: self.store.info(self.room, b))
            quantity, left, granted = (int(info[k]) for k in ("quantity", "left", "granted"))
            assert quantity == left + granted and left >= 0 and granted <= quantity
            assert (quantity, left, granted, info["state"]) == (
                model.quantity, model.left, model.granted, model.state)  # fmt: skip

    @invariant()
    def one_coupon_per_user_and_batch(self) -> None:
        redis = self.loop.redis
        for batch, model in self.model.items():
            raw = self.call(lambda b=batch: aw(redis.hgetall(keys.coupon_users(self.room, b))))
            holders = {k.decode(): v.decode() for k, v in raw.items()}
            assert holders == model.holders
            assert len(set(holders.values())) == len(holders)  # each coupon to one user

    @invariant()
    def every_grant_has_exactly_one_event(self) -> None:
        entries = self.call(lambda: aw(self.loop.redis.xrange(keys.events(self.room))))
        granted: Counter[tuple[str, str]] = Counter()
        pairs: Counter[tuple[str, str]] = Counter()
        ids = set()
        shares = 0
        for entry in entries:
            f = {k.decode(): v for k, v in entry.field_values.items()}
            ids.add(f["id"])
            if f["type"] == b"share.recorded":
                shares += 1
            if f["type"] != b"coupon.granted":
                continue
            data = orjson.loads(f["data"])
            granted[(data["batch"], data["coupon"])] += 1
            pairs[(data["batch"], data["user"])] += 1
            assert data["source"] in ("viewer", "share")
        assert len(ids) == len(entries)  # every event has its own idempotency key
        expected = {(b, c) for b, m in self.model.items() for c in m.holders.values()}
        assert set(granted) == expected and all(n == 1 for n in granted.values())
        assert all(n == 1 for n in pairs.values())
        assert shares == len({s for m in self.model.values() for s in m.shares})


TestCouponClaims = CouponClaims.TestCase
TestCouponClaims.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
