"""Property test of the flash-sale scripts against a real Redis: random interleavings of start,
batched grabs (with repeated request ids), confirm, cancel, time passing, expiry sweeps, restock,
bans and an early end, each checked against a plain Python model, with the invariants checked
after every step:

* stock = left + held + sold, in Redis and in the model;
* no user holds or bought more units than the limit;
* every granted grab has exactly one `seckill.reserved` event (and every confirm, cancel and
  release one event of its own);
* a retried request gets its first answer again, never a second decrement.

LIBS.md Pattern B: one Trio loop in a background thread, sync rules calling into it.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine.features.seckill import parse_grab_reply, rid_key
from engine.store import keys
from engine.store.seckill import SeckillStore
from engine.store.store import open_redis
from tests.support import RedisProcess

pytestmark = pytest.mark.integration

T0 = 1_900_000_000_000
USERS = [f"u{i}" for i in range(5)]


class TrioLoop:
    """A Trio loop in a thread, holding one coredis client for the whole test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ready = threading.Event()
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self.thread.start()
        self.ready.wait(10)

    async def _main(self) -> None:
        async with open_redis(self.url) as self.redis:
            self.token = trio.lowlevel.current_trio_token()
            self.stop = trio.Event()
            self.ready.set()
            await self.stop.wait()

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return trio.from_thread.run(fn, trio_token=self.token)

    def close(self) -> None:
        trio.from_thread.run_sync(self.stop.set, trio_token=self.token)
        self.thread.join(10)


LOOP: TrioLoop | None = None


@pytest.fixture(scope="module", autouse=True)
def trio_loop(redis_server: RedisProcess) -> Iterator[TrioLoop]:
    global LOOP
    LOOP = TrioLoop(redis_server.url)
    yield LOOP
    LOOP.close()
    LOOP = None


@dataclass
class Hold:
    state: str
    qty: int
    exp: int
    user: str


@dataclass
class Model:
    """The flash sale as the scripts should keep it."""

    stock: int
    limit: int
    start: int
    end: int
    hold_ms: int
    left: int = 0
    held: int = 0
    sold: int = 0
    state: str = "live"
    granted: int = 0
    units: Counter[str] = field(default_factory=Counter)
    holds: dict[str, Hold] = field(default_factory=dict)
    answers: dict[tuple[str, str], tuple[int, str, str, int]] = field(default_factory=dict)
    banned: set[str] = field(default_factory=set)
    events: Counter[str] = field(default_factory=Counter)

    def grab(
        self, sale: str, user: str, rkey: str, qty: int, now: int
    ) -> tuple[str, str, int, bool]:
        prev = self.answers.get((user, rkey))
        if prev is not None:
            pqty, code, hold, exp = prev
            return (code, hold, exp, True) if pqty == qty else ("duplicate", "", 0, False)
        code = ""
        if self.state != "live" or now >= self.end:
            code = "ended"
        elif now < self.start:
            code = "not_started"
        elif user in self.banned:
            code = "banned"
        elif self.units[user] + qty > self.limit:
            code = "limit_reached"
        elif self.left < qty:
            code = "sold_out"
        if code:
            self.answers[(user, rkey)] = (qty, code, "", 0)
            return code, "", 0, False
        self.left -= qty
        self.held += qty
        self.granted += 1
        hold = f"{sale}.{self.granted}"
        exp = now + self.hold_ms
        self.units[user] += qty
        self.holds[hold] = Hold("held", qty, exp, user)
        self.answers[(user, rkey)] = (qty, "ok", hold, exp)
        self.events["seckill.reserved"] += 1
        return "ok", hold, exp, False

    def give_back(self, hold: Hold, state: str, event: str) -> None:
        hold.state = state
        self.left += hold.qty
        self.held -= hold.qty
        self.units[hold.user] -= hold.qty
        self.events[event] += 1


class FlashSale(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert LOOP is not None
        self.loop = LOOP
        self.now = T0
        self.room = f"sm-{uuid.uuid4().hex[:10]}"
        self.sale = "flash"
        self.store = SeckillStore(self.loop.redis, event_maxlen=100_000, clock=lambda: self.now)

    def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return self.loop.run(fn)

    @initialize(
        stock=st.integers(1, 8),
        limit=st.integers(1, 3),
        delay=st.sampled_from([0, 0, 2_000]),
        hold_ms=st.sampled_from([3_000, 10_000]),
    )
    def start(self, stock: int, limit: int, delay: int, hold_ms: int) -> None:
        products = [
            {
                "id": "tea",
                "name": "Tea",
                "image": "https://i/t",
                "price": 9,
                "stock": 9,
                "order": 0,
                "list_price": 9,
                "promo": "",
            }
        ]
        self.call(lambda: self.store.set_products(self.room, products))
        spec = _Spec(self.sale, "tea", 500, stock, limit, T0 + delay, T0 + 30_000, hold_ms)
        code, left, total, ver = self.call(lambda: self.store.start(self.room, spec, {}, {}))
        assert (code, left, total, ver) == ("ok", stock, stock, 1)
        self.model = Model(stock, limit, T0 + delay, T0 + 30_000, hold_ms, left=stock)
        self.model.events["seckill.started"] += 1

    # --- rules ---------------------------------------------------------------------------

    @rule(
        grabs=st.lists(
            st.tuples(
                st.sampled_from(USERS),
                st.integers(0, 4) | st.sampled_from(["a", "b"]),
                st.sampled_from([1, 1, 1, 2]),
            ),
            min_size=1,
            max_size=6,
        )
    )
    def grab(self, grabs: list[tuple[str, int | str, int]]) -> None:
        items: list[Any] = []
        for user, rid, qty in grabs:
            items += [user, rid_key(rid), qty]
        raw = self.call(lambda: self.store.grab(self.room, self.sale, items))
        view, _, answers = parse_grab_reply(raw, len(grabs))
        for (user, rid, qty), answer in zip(grabs, answers, strict=True):
            want = self.model.grab(self.sale, user, rid_key(rid), qty, self.now)
            got = (answer.code, answer.hold, answer.expires_at, answer.replayed)
            assert got == want, (user, rid, qty)
        assert view is not None and view.left == self.model.left

    @rule(pick=st.integers(0, 50), order=st.sampled_from(["", "order-9"]))
    def confirm(self, pick: int, order: str) -> None:
        hold_id = self._pick_hold(pick)
        code, already, user, qty, left, stock, _ = self.call(
            lambda: self.store.settle(
                self.room, self.sale, hold_id, confirm=True, note=order, event_id=None
            )
        )
        hold = self.model.holds.get(hold_id)
        if hold is None:
            assert code == "unknown_hold"
            return
        expected = {"sold": "ok", "cancelled": "hold_cancelled", "released": "hold_expired"}
        if hold.state == "held" and hold.exp <= self.now:
            self.model.give_back(hold, "released", "seckill.released")
            assert code == "hold_expired"
        elif hold.state == "held":
            hold.state = "sold"
            self.model.held -= hold.qty
            self.model.sold += hold.qty
            self.model.events["seckill.confirmed"] += 1
            assert (code, already) == ("ok", False)
        else:
            assert code == expected[hold.state] and already == (hold.state == "sold")
        assert (user, qty, left, stock) == (hold.user, hold.qty, self.model.left, self.model.stock)

    @rule(pick=st.integers(0, 50))
    def cancel(self, pick: int) -> None:
        hold_id = self._pick_hold(pick)
        code, already, *_ = self.call(
            lambda: self.store.settle(
                self.room, self.sale, hold_id, confirm=False, note="user", event_id=None
            )
        )
        hold = self.model.holds.get(hold_id)
        if hold is None:
            assert code == "unknown_hold"
        elif hold.state == "held" and hold.exp <= self.now:
            self.model.give_back(hold, "released", "seckill.released")
            assert code == "hold_expired"
        elif hold.state == "held":
            self.model.give_back(hold, "cancelled", "seckill.cancelled")
            assert (code, already) == ("ok", False)
        else:
            expected = {"sold": "already_confirmed", "cancelled": "ok", "released": "hold_expired"}
            assert code == expected[hold.state] and already == (hold.state == "cancelled")

    @rule(ms=st.sampled_from([500, 2_500, 4_000, 12_000]))
    def time_passes(self, ms: int) -> None:
        self.now += ms

    @rule()
    def sweep(self) -> None:
        released, left, stock, _, more, finished = self.call(
            lambda: self.store.release(self.room, self.sale, max_holds=500, retention_s=3600)
        )
        due = [h for h in self.model.holds.values() if h.state == "held" and h.exp <= self.now]
        for hold in due:
            self.model.give_back(hold, "released", "seckill.released")
        if self.model.state == "live" and self.now >= self.model.end:
            self.model.state = "ended"
            self.model.events["seckill.ended"] += 1
        assert (released, left, stock, more) == (len(due), self.model.left, self.model.stock, False)
        assert finished == (self.model.state == "ended" and self.model.held == 0)

    @rule(count=st.integers(1, 3))
    def restock(self, count: int) -> None:
        code, left, stock, _ = self.call(lambda: self.store.restock(self.room, self.sale, count))
        if self.model.state != "live" or self.now >= self.model.end:
            assert code == "ended"
        else:
            self.model.stock += count
            self.model.left += count
            self.model.events["seckill.restocked"] += 1
            assert code == "ok"
        assert (left, stock) == (self.model.left, self.model.stock)

    @rule(user=st.sampled_from(USERS))
    def ban(self, user: str) -> None:
        """What anti-fraud will do: add the user to the room's banned set."""
        self.call(lambda: _aw(self.loop.redis.sadd(keys.banned(self.room), [user])))
        self.model.banned.add(user)

    @precondition(lambda self: self.model.state == "live")
    @rule()
    def stop(self) -> None:
        code, already, *_ = self.call(lambda: self.store.end(self.room, self.sale))
        assert (code, already) == ("ok", False)
        self.model.state = "ended"
        self.model.events["seckill.ended"] += 1

    def _pick_hold(self, pick: int) -> str:
        holds = sorted(self.model.holds)
        if not holds or pick >= 40:
            return f"{self.sale}.{999 + pick}"  # a hold that does not exist
        return holds[pick % len(holds)]

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def counters_match_and_stock_is_conserved(self) -> None:
        info = self.call(lambda: self.store.sale_info(self.room, self.sale))
        stock, left, held, sold = (int(info[k]) for k in ("stock", "left", "held", "sold"))
        m = self.model
        assert stock == left + held + sold
        assert (stock, left, held, sold) == (m.stock, m.left, m.held, m.sold)
        assert m.stock == m.left + m.held + m.sold and m.left >= 0

    @invariant()
    def no_user_over_the_limit(self) -> None:
        redis = self.loop.redis
        raw = self.call(lambda: _aw(redis.hgetall(keys.sale_users(self.room, self.sale))))
        units = {k.decode(): int(v) for k, v in raw.items()}
        assert units == {u: n for u, n in self.model.units.items() if n > 0}
        assert all(n <= self.model.limit for n in units.values())
        holding = Counter[str]()
        for hold in self.model.holds.values():
            if hold.state in ("held", "sold"):
                holding[hold.user] += hold.qty
        assert holding == +self.model.units

    @invariant()
    def one_event_per_fact(self) -> None:
        entries = self.call(lambda: _aw(self.loop.redis.xrange(keys.events(self.room))))
        types = Counter[str]()
        reserved = []
        ids = set()
        for entry in entries:
            f = {k.decode(): v for k, v in entry.field_values.items()}
            types[f["type"].decode()] += 1
            ids.add(f["id"])
            if f["type"] == b"seckill.reserved":
                reserved.append(orjson.loads(f["data"])["hold"])
        assert len(ids) == len(entries)  # every event has its own idempotency key
        assert types == +self.model.events
        assert sorted(reserved) == sorted(self.model.holds)  # exactly one per granted hold

    @invariant()
    def unconfirmed_holds_are_due_for_expiry(self) -> None:
        redis = self.loop.redis
        raw = self.call(lambda: _aw(redis.zrange(keys.sale_expiry(self.room, self.sale), 0, -1)))
        held = {h for h, hold in self.model.holds.items() if hold.state == "held"}
        assert {h.decode() for h in raw} == held


@dataclass(frozen=True)
class _Spec:
    sale: str
    product: str
    price: int
    stock: int
    limit: int
    start_ms: int
    end_ms: int
    hold_ms: int


async def _aw(request: Any) -> Any:
    return await request


TestFlashSale = FlashSale.TestCase
TestFlashSale.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
