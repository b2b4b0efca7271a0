"""The pure parts of the anti-fraud layer, without I/O: limits as written in the configuration,
bot scoring, behaviour features, the client IP behind trusted proxies."""

from __future__ import annotations

import itertools
import random
from collections import deque
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.antifraud import bots
from engine.antifraud.behaviour import RoomBehaviour, text_key, variation
from engine.antifraud.clientip import client_ip, parse_proxies
from engine.antifraud.limits import Limit, LimitTable, format_limits, parse_limits
from engine.config import Config

# --- limits -----------------------------------------------------------------------------------


def test_limits_parse_and_print_back() -> None:
    limits = parse_limits("user=20/1m burst 5, ip = 300/60s burst 60, device=2/500ms")
    assert limits["user"] == Limit(20, 60, 5)
    assert limits["ip"] == Limit(300, 60, 60)
    assert limits["device"] == Limit(2, 0.5, 2)  # burst defaults to the rate
    assert parse_limits(format_limits(limits)) == limits
    assert parse_limits("off") == {} and parse_limits("") == {}
    assert limits["user"].interval_us == 3_000_000
    assert Limit(3, 1, 1).interval_us == 333_334  # rounded up: never more than the rate


@pytest.mark.parametrize("bad", ["user=5", "user=5/s burst 0", "who=1/s", "user=1/s, user=2/s",
                                 "user=0/s", "user=1/0s", "user=1/2d"])  # fmt: skip
def test_bad_limits_are_refused_with_the_reason(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_limits(bad)


def test_every_configured_default_parses() -> None:
    from engine.antifraud.guard import configured_limits, configured_rules

    table = configured_limits(Config())
    assert table.of("danmaku")["user"] == Limit(20, 60, 5)
    assert configured_rules(Config())["like_burst"].mode is bots.Mode.SHADOW
    with pytest.raises(ValueError, match="limit_like"):
        configured_limits(Config(limit_like="user=lots"))
    with pytest.raises(ValueError, match="antifraud_bot_rules"):
        configured_rules(Config(antifraud_bot_rules="like_burst=smite"))


def test_room_overrides_replace_switch_off_or_keep_the_configured_limit() -> None:
    base = LimitTable({"danmaku": parse_limits("user=20/1m burst 5, ip=300/1m burst 60")})
    room = base.with_overrides({"danmaku:user": Limit(5, 1, 5).stored(), "danmaku:ip": "off",
                                "danmaku:device": Limit(1, 1, 1).stored(),
                                "nonsense": "x", "like:user": "garbage"})  # fmt: skip
    assert room.of("danmaku") == {"user": Limit(5, 1, 5), "device": Limit(1, 1, 1)}
    assert base.of("danmaku")["ip"] == Limit(300, 60, 60)  # the base is untouched
    assert room.of("like") == {}


# --- bot scoring -------------------------------------------------------------------------------


def rules(**modes: str) -> dict[str, bots.Rule]:
    return bots.apply_overrides(bots.DEFAULT_RULES, {k: v + "@" for k, v in modes.items()})


def test_nothing_fires_on_ordinary_behaviour() -> None:
    features = {"accounts_per_ip": 2, "accounts_per_device": 1, "join_burst": 1,
                "duplicate_text": 1, "regular_timing": 0.8, "like_burst": 40,
                "early_grab": 650}  # fmt: skip
    assert bots.assess(features, rules(like_burst="ban")) is bots.NOTHING


def test_a_rule_fires_with_its_reason_and_its_mode_is_the_action() -> None:
    result = bots.assess({"like_burst": 500, "join_burst": 2}, rules(like_burst="ban"))
    assert result.fired and result.action is bots.Mode.BAN
    assert result.reasons_text() == ["like_burst 500 >= 300"]
    assert result.score == pytest.approx(0.9)
    shadow = bots.assess({"like_burst": 500}, bots.DEFAULT_RULES)
    assert shadow.action is bots.Mode.SHADOW and not shadow.action.enforced


def test_below_rules_fire_under_their_threshold() -> None:
    fired = bots.assess({"early_grab": -1.0, "regular_timing": 0.01}, bots.DEFAULT_RULES)
    assert [r.rule for r in fired.reasons] == ["early_grab", "regular_timing", "score"]
    assert fired.reasons[0].text() == "early_grab -1 <= 120"


def test_the_strongest_enforced_mode_wins_and_weak_signals_combine_in_the_score() -> None:
    mixed = rules(duplicate_text="mute", early_grab="refuse_grabs", like_burst="ban")
    result = bots.assess({"duplicate_text": 9, "early_grab": 5}, mixed)
    assert result.action is bots.Mode.REFUSE_GRABS
    weak = rules(score="ban")
    assert bots.assess({"accounts_per_ip": 25}, weak).action is bots.Mode.SHADOW  # 0.5 < 0.95
    combined = bots.assess({"accounts_per_ip": 25, "conns_per_device": 5, "join_burst": 20,
                            "duplicate_text": 10}, weak)  # fmt: skip
    assert combined.score >= 0.95 and combined.action is bots.Mode.BAN
    assert combined.reasons[-1].rule == "score"


def test_off_rules_are_not_evaluated_and_thresholds_can_be_moved() -> None:
    moved = bots.apply_overrides(bots.DEFAULT_RULES, {"like_burst": "off@", "join_burst": "@3"})
    assert not bots.assess({"like_burst": 10_000}, moved).fired
    assert bots.assess({"join_burst": 3}, moved).fired


def test_rule_settings_parse_and_refuse_unknown_rules_and_modes() -> None:
    parsed = bots.parse_rules("like_burst=ban@200, early_grab=refuse_grabs, join_burst=@12")
    assert parsed == {"like_burst": "ban@200", "early_grab": "refuse_grabs@", "join_burst": "@12"}
    for bad in ("nope=ban", "like_burst=smite", "like_burst"):
        with pytest.raises(ValueError):
            bots.parse_rules(bad)
    # stored overrides that went bad are ignored, never fatal
    assert bots.apply_overrides(bots.DEFAULT_RULES, {"like_burst": "???@x"}) == bots.DEFAULT_RULES


@given(
    features=st.dictionaries(
        st.sampled_from(bots.RULE_NAMES), st.floats(allow_nan=False, allow_infinity=False)
    ),
    modes=st.dictionaries(st.sampled_from(bots.RULE_NAMES), st.sampled_from(list(bots.Mode))),
)
@settings(max_examples=200)
def test_scoring_any_features_gives_a_score_in_0_1_and_an_action_only_with_reasons(
    features: dict[str, float], modes: dict[str, bots.Mode]
) -> None:  # fmt: skip
    result = bots.assess(features, rules(**{k: v.value for k, v in modes.items()}))
    assert 0.0 <= result.score <= 1.0
    assert result.fired == bool(result.reasons)
    if result.action.enforced:
        assert any(r.mode is result.action for r in result.reasons)


# --- behaviour features --------------------------------------------------------------------


def test_text_keys_see_through_case_width_digits_and_punctuation_but_not_short_texts() -> None:
    a = text_key("Cheap FOLLOWERS at spam-site 123!!")
    assert (
        a
        == text_key("cheap followers at spamsite #456")
        == text_key("ＣＨＥＡＰ followers at spam site")
    )
    assert text_key("666") is None and text_key("how much?") is None
    assert text_key("这个多少钱啊主播快点上链接") is not None  # Chinese counts letter by letter


def test_timing_variation_needs_enough_deliberate_intervals() -> None:
    assert variation(deque([0.0, 1.0, 2.0])) is None  # too few
    regular = [i * 0.6 for i in range(17)]
    assert variation(regular) == pytest.approx(0.0, abs=1e-9)
    late = list(regular)
    late[8] += 0.25  # one message the network held back: left out, still machine-regular
    assert variation(late) < 0.01  # type: ignore[operator]
    fast = [i * 0.1 for i in range(17)]  # a client's batching timer, not a person
    assert variation(fast) is None
    rng = random.Random(3)
    people = list(itertools.accumulate(rng.lognormvariate(1.0, 0.5) for _ in range(17)))
    assert variation(people) > 0.2  # type: ignore[operator]


def test_regular_likes_count_only_when_the_counts_are_the_same_too() -> None:
    room = RoomBehaviour()
    features = [room.on_like("batcher", 3 + i % 4, now=i * 1.0) for i in range(20)]
    assert all("regular_timing" not in f for f in features)  # a client's timer, varied taps
    features = [room.on_like("bot", 3, now=i * 1.0) for i in range(17)]
    assert "regular_timing" not in features[15] and features[16]["regular_timing"] < 0.01


@dataclass
class Conn:
    user: str
    ip: str
    device: str | None
    joined: float


def test_room_behaviour_counts_joins_connections_duplicates_and_likes() -> None:
    room = RoomBehaviour()
    conns = []
    for i in range(4):
        features = room.on_join(f"u{i}", "10.0.0.1", "dev-1", now=float(i))
        conns.append(Conn(f"u{i}", "10.0.0.1", "dev-1", float(i)))
    assert features == {"join_burst": 4, "conns_per_ip": 4, "conns_per_device": 4}
    assert room.on_join("x", "10.0.0.1", None, now=25.0)["join_burst"] == 1  # window passed
    room.on_leave("u0", "10.0.0.1", "dev-1", now=26.0)
    members = conns[1:]
    assert room.related("conns_per_device", "u1", None, 26.0, members, "10.0.0.1", "dev-1") == {
        "u1", "u2", "u3"}  # fmt: skip
    assert room.related("conns_per_ip", "u1", None, 26.0, members, "10.9.9.9", None) == set()
    spam = "Visit cheap followers dot com now"
    key = text_key(spam)
    counts = [room.on_danmaku(f"u{i}", key, now=30.0 + i)["duplicate_text"] for i in range(3)]
    assert counts == [1, 2, 3]
    assert room.related("duplicate_text", "u0", key, 33.0, [], "ip", None) == {"u0", "u1", "u2"}
    assert room.on_danmaku("u9", key, now=200.0)["duplicate_text"] == 1  # the others are old
    likes = [room.on_like("liker", 100, now=40.0 + i * 0.01)["like_burst"] for i in range(4)]
    assert likes == [100, 200, 300, 400]
    assert room.on_like("liker", 1, now=43.5)["like_burst"] == 401  # within 5 s
    assert room.on_like("liker", 1, now=50.0)["like_burst"] == 1  # the burst is over
    assert room.first_time("liker", "like_burst", 50.0, 60.0)
    assert not room.first_time("liker", "like_burst", 55.0, 60.0)
    room.prune(now=10_000.0)
    assert "liker" not in room.users and "u1" in room.users  # u1 is still connected


def test_join_bursts_slide_with_time() -> None:
    room = RoomBehaviour()
    counts = [room.on_join(f"u{i}", "10.0.0.7", None, now=5.0 + i * 0.5)["join_burst"]
              for i in range(10)]  # fmt: skip
    assert counts == list(range(1, 11))  # 10 joins within 4.5 s
    # 5 s later, about half of them are still within the last 10 s
    assert room.on_join("late", "10.0.0.7", None, now=15.0)["join_burst"] in range(5, 8)
    assert room.on_join("later", "10.0.0.7", None, now=40.0)["join_burst"] == 1


def test_per_connection_cost_stays_small() -> None:
    """Reviewed like the connection object: a silent viewer costs a few hundred bytes here."""
    import tracemalloc

    room = RoomBehaviour()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(2000):
            room.on_join(f"user-{i}", f"10.0.{i // 256}.{i % 256}", f"device-{i:08x}", 1.0)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    per_join = sum(s.size_diff for s in after.compare_to(before, "filename")) / 2000
    assert per_join < 1000, per_join


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["join", "leave", "danmaku", "like"]),
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["1.1.1.1", "::1"]),
            st.sampled_from([None, "d1"]),
            st.text(max_size=40),
            st.integers(1, 100),
            st.floats(0, 1000),
        ),
        max_size=60,
    )
)
@settings(max_examples=100)
def test_behaviour_takes_any_sequence_of_events_without_breaking(events: list) -> None:  # type: ignore[type-arg]
    room = RoomBehaviour()
    now = 0.0
    for kind, user, ip, device, text, count, dt in events:
        now += dt
        if kind == "join":
            assert room.on_join(user, ip, device, now)["conns_per_ip"] >= 1
        elif kind == "leave":
            room.on_leave(user, ip, device, now)
        elif kind == "danmaku":
            room.on_danmaku(user, text_key(text), now)
        else:
            assert room.on_like(user, count, now)["like_burst"] >= count
        room.prune(now)


# --- client IP --------------------------------------------------------------------------------

PROXIES = parse_proxies("127.0.0.1, 10.0.0.0/8, ::1")


@pytest.mark.parametrize(("peer", "header", "expected"), [
    ("203.0.113.9", None, "203.0.113.9"),
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # an untrusted peer cannot claim another IP
    ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
    ("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", "198.51.100.7"),  # skip our proxies
    ("127.0.0.1", "10.1.1.1, 10.2.2.2", "10.1.1.1"),  # all trusted: the leftmost
    ("127.0.0.1", "garbage, 198.51.100.7", "198.51.100.7"),
    ("127.0.0.1", "198.51.100.7, garbage", "127.0.0.1"),  # cannot read past garbage
    ("127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"),
    ("::ffff:127.0.0.1", "198.51.100.7:5555", "198.51.100.7"),
    ("::1", "2001:db8::2", "2001:db8::2"),
])  # fmt: skip
def test_client_ip_behind_trusted_proxies(peer: str, header: str | None, expected: str) -> None:
    assert client_ip(peer, header, PROXIES) == expected


def test_no_trusted_proxy_means_the_peer_and_bad_settings_are_refused() -> None:
    assert client_ip("127.0.0.1", "198.51.100.7", ()) == "127.0.0.1"
    with pytest.raises(ValueError, match="not an IP"):
        parse_proxies("10.0.0.0/8, localhost")


@given(peer=st.text(max_size=50), header=st.one_of(st.none(), st.text(max_size=300)))
@settings(max_examples=200)
def test_client_ip_never_raises(peer: str, header: str | None) -> None:
    assert isinstance(client_ip(peer, header, PROXIES), str)
