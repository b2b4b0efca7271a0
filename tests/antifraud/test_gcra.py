"""`ratelimit.lua` against a real Redis, driven through the script's `now` argument (no sleeping):
hypothesis picks limits and request timings. Invariants checked: no key ever lets through more
than burst + elapsed / interval units (so never more than burst + rate x elapsed), a client at
or under the rate is never refused, a request is charged on all its keys or none, and every
decision is the one a plain GCRA model makes."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.antifraud.limits import Limit
from engine.store.antifraud import AntiFraudStore, LimitRequest
from engine.store.store import now_ms, open_redis

pytestmark = pytest.mark.integration

PROPERTY = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
# keys expire at their TAT on the Redis clock: simulated time starts far in the future
FUTURE_MS = now_ms() + 10 * 86400 * 1000

limits = st.builds(
    Limit,
    rate=st.integers(1, 50).map(float),
    per_s=st.sampled_from([0.1, 0.5, 1.0, 2.5, 60.0]),
    burst=st.integers(1, 20),
)


@dataclass
class Model:
    """GCRA as the script computes it (µs)."""

    tat: dict[str, int] = field(default_factory=dict)

    def decide(self, now_us: int, cost: int, checks: list[tuple[str, int, int]]) -> bool:
        new = {}
        for key, interval, burst in checks:
            tat = max(self.tat.get(key, 0), now_us)
            new[key] = tat + cost * interval
            if cost > burst or new[key] - burst * interval > now_us:
                return False
        self.tat.update(new)
        return True


def assert_within_bound(times_ms: list[float], costs: list[int], limit: Limit) -> None:
    """Over every span [t_i, t_j] of allowed requests: units <= burst + span / interval."""
    interval_ms = limit.interval_us / 1000
    for i in range(len(times_ms)):
        units = 0
        for j in range(i, len(times_ms)):
            units += costs[j]
            span = times_ms[j] - times_ms[i]
            assert units <= limit.burst + span / interval_ms + 1e-9, (i, j, units, span)
            # and so never more than burst + rate x elapsed (the configured rate, up to the
            # rounding of the emission interval to whole microseconds)
            bound = limit.burst + span / 1000 * limit.rate / limit.per_s
            assert units <= bound * (1 + 1e-5) + 1e-9


@given(
    user=limits,
    ip=limits,
    gaps=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 3)), min_size=1, max_size=60),
    batch=st.integers(1, 8),
)
@PROPERTY
async def test_gcra_never_lets_more_than_burst_plus_rate_times_elapsed_and_matches_the_model(
    redis_url: str, user: Limit, ip: Limit, gaps: list[tuple[int, int]], batch: int
) -> None:
    prefix = uuid.uuid4().hex
    keys = {"user": f"t:{{{prefix}}}:user", "ip": f"t:{{{prefix}}}:ip"}
    spec = {"user": user, "ip": ip}
    model = Model()
    allowed: dict[str, tuple[list[float], list[int]]] = {"user": ([], []), "ip": ([], [])}
    async with open_redis(redis_url) as redis:
        store = AntiFraudStore(redis, event_maxlen=10)
        now, pending = float(FUTURE_MS), []
        for gap, cost in gaps:
            now += gap / 3  # fractional ms too
            # some requests charge only the ip key (another user behind the same IP)
            dims = ["user", "ip"] if cost != 2 else ["ip"]
            checks = [(keys[d], spec[d].interval_us, spec[d].burst) for d in dims]
            pending.append((now, cost, dims, checks))
            if len(pending) < batch and gap:
                continue
            # requests of one call share its `now` (the last one's), decided in order
            answers = await store.limit(
                [LimitRequest(c, ch) for _, c, _, ch in pending], now_ms=now
            )
            for (_, c, dims_, checks_), answer in zip(pending, answers, strict=True):
                expected = model.decide(math.floor(now * 1000), c, checks_)
                assert answer.allowed == expected
                if answer.allowed:
                    assert answer.retry_after_ms == 0 and answer.refused_by == -1
                    for d in dims_:
                        allowed[d][0].append(now)
                        allowed[d][1].append(c)
                else:
                    assert answer.retry_after_ms > 0 or answer.retry_after_ms == -1
                    assert 0 <= answer.refused_by < len(checks_)
            pending = []
        await redis.delete(list(keys.values()))
    for dim in ("user", "ip"):
        assert_within_bound(*allowed[dim], spec[dim])


@given(
    limit=limits,
    extra=st.lists(st.integers(0, 50), min_size=1, max_size=40),
    others=st.integers(0, 3),
)
@PROPERTY
async def test_a_steady_client_at_or_under_the_rate_is_never_refused(
    redis_url: str, limit: Limit, extra: list[int], others: int
) -> None:
    """Requests spaced at least one emission interval apart always pass, whatever the burst;
    `others` requests on a key of its own (another user) do not change that."""
    key, other = f"t:{{{uuid.uuid4().hex}}}:steady", f"t:{{{uuid.uuid4().hex}}}:other"
    async with open_redis(redis_url) as redis:
        store = AntiFraudStore(redis, event_maxlen=10)
        now = float(FUTURE_MS)
        step_ms = limit.interval_us / 1000
        for more in extra:
            answers = await store.limit(
                [LimitRequest(1, [(other, limit.interval_us, limit.burst)])] * others
                + [LimitRequest(1, [(key, limit.interval_us, limit.burst)])],
                now_ms=now,
            )
            assert answers[-1].allowed, (now, limit)
            now += step_ms + more
        await redis.delete([key, other])


async def test_retry_after_says_when_it_passes_and_a_refusal_costs_nothing(
    redis_url: str,
) -> None:
    limit = Limit(rate=1, per_s=1, burst=2)  # 1/s, 2 at once
    key = f"t:{{{uuid.uuid4().hex}}}:k"
    request = LimitRequest(1, [(key, limit.interval_us, limit.burst)])
    async with open_redis(redis_url) as redis:
        store = AntiFraudStore(redis, event_maxlen=10)
        t = float(FUTURE_MS)
        assert [a.allowed for a in await store.limit([request] * 3, now_ms=t)] == [
            True,
            True,
            False,
        ]
        refused = (await store.limit([request], now_ms=t + 400))[0]
        assert not refused.allowed and refused.retry_after_ms == 600
        # refusals did not move the key: at the promised time it passes
        assert (await store.limit([request], now_ms=t + 1000))[0].allowed
        too_big = LimitRequest(5, [(key, limit.interval_us, limit.burst)])
        assert (await store.limit([too_big], now_ms=t + 10_000))[0].retry_after_ms == -1
        # the key expires at its TAT on the Redis clock: nothing is kept longer than needed
        ttl = await redis.pttl(key)
        assert 0 < ttl <= 10 * 86400 * 1000 + 20_000
        await redis.delete([key])
