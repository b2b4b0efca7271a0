"""The swarm's pure pieces, without sockets: the timeline (defaults, files, `--set`, `--phases`,
refusals), percentiles and the running histogram, the difference between two readings of a
client process, chat delivery at the probes, the summary table and the verdict."""

from __future__ import annotations

import json
import math
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest import swarm_report as sr
from loadtest import swarm_target as st_
from loadtest import swarm_timeline as tl
from loadtest import swarmclient as sc

# -- the timeline ---------------------------------------------------------------------------


def test_default_timeline_has_every_phase_in_order_with_its_defaults() -> None:
    timeline = tl.build_timeline(None, [], [])
    assert [p.name for p in timeline.phases] == list(tl.DEFAULT_ORDER)
    seckill = next(p for p in timeline.phases if p.kind == "seckill")
    assert seckill.settings == tl.DEFAULTS["seckill"] and seckill.spike
    assert timeline.background == tl.BACKGROUND
    assert not next(p for p in timeline.phases if p.kind == "join").spike


def test_set_overrides_by_kind_name_and_background() -> None:
    timeline = tl.build_timeline(
        None,
        [
            "seckill.stock=5",
            "join.ramp_s=1",
            "lottery.keyword=tea time",
            "background.danmaku_rate=0",
            "seckill.fraction=0.5",
        ],
        [],
    )
    by = {p.name: p for p in timeline.phases}
    assert by["seckill"]["stock"] == 5 and by["seckill"]["fraction"] == 0.5
    assert by["join"]["ramp_s"] == 1.0 and isinstance(by["join"]["ramp_s"], float)
    assert by["lottery"]["keyword"] == "tea time"
    assert timeline.background["danmaku_rate"] == 0.0


def test_timeline_file_json_and_yaml_repeated_kinds_get_names(tmp_path: Path) -> None:
    doc = {
        "background": {"danmaku_rate": 5},
        "phases": [
            "join",
            {"kind": "seckill", "stock": 3},
            {"kind": "seckill", "stock": 4},
            {"kind": "steady", "name": "calm"},
        ],
    }
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    timeline = tl.build_timeline(path, ["seckill-2.limit=2"], [])
    assert [p.name for p in timeline.phases] == ["join", "seckill", "seckill-2", "calm"]
    assert [p["stock"] for p in timeline.phases[1:3]] == [3, 4]
    assert timeline.phases[2]["limit"] == 2 and timeline.phases[1]["limit"] == 1
    yaml_path = tmp_path / "t.yaml"
    yaml_path.write_text("phases:\n  - kind: join\n    ramp_s: 2\n  - kind: coupon\n")
    assert [p.kind for p in tl.build_timeline(yaml_path, [], []).phases] == ["join", "coupon"]


def test_phases_subset_keeps_the_first_join_and_timeline_order() -> None:
    timeline = tl.build_timeline(None, [], ["coupon", "seckill"])
    assert [p.name for p in timeline.phases] == ["join", "seckill", "coupon"]


@pytest.mark.parametrize(
    ("doc", "overrides", "phases", "says"),
    [
        ({"phases": [{"kind": "seckill"}]}, [], [], "first phase must be a join"),
        ({"phases": ["join", {"kind": "dance"}]}, [], [], "unknown kind"),
        ({"phases": ["join", {"kind": "seckill", "stok": 3}]}, [], [], "unknown setting"),
        ({"phases": ["join", {"kind": "seckill", "stock": "many"}]}, [], [], "must be an integer"),
        ({"phases": ["join", {"kind": "seckill", "stock": 0}]}, [], [], "must be positive"),
        ({"phases": ["join", {"kind": "coupon", "fraction": 1.5}]}, [], [], "fraction"),
        ({"phases": ["join", {"kind": "lottery", "entry": "follow"}]}, [], [], "entry"),
        ({"phases": ["join", {"kind": "likes", "rate": -1}]}, [], [], "negative"),
        ({"phases": ["join", {"kind": "steady", "name": "join"}]}, [], [], "used twice"),
        ({"phases": []}, [], [], "non-empty"),
        ({"phases": ["join"], "extra": 1}, [], [], "unknown timeline key"),
        ({"phases": ["join"]}, ["seckill.stock=3"], [], "no phase named"),
        ({"phases": ["join"]}, ["stock=3"], [], "PHASE.SETTING=VALUE"),
        ({"phases": ["join"]}, [], ["coupon"], "--phases"),
        ({"phases": ["join"], "background": {"likes": 3}}, [], [], "background"),
    ],
)
def test_bad_timelines_are_refused_with_the_reason(
    tmp_path: Path, doc: object, overrides: list[str], phases: list[str], says: str
) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(tl.TimelineError, match=says):
        tl.build_timeline(path, overrides, phases)


def test_as_dict_round_trips() -> None:
    timeline = tl.build_timeline(None, ["coupon.quantity=9"], [])
    again = tl.parse_timeline(timeline.as_dict())
    assert again == timeline


# -- figures --------------------------------------------------------------------------------


def test_summary_counts_missing_answers_as_infinitely_late() -> None:
    s = sr.summary([0.001 * i for i in range(1, 101)])
    assert (s["n"], s["p50_ms"], s["p99_ms"], s["max_ms"]) == (100, 50.0, 99.0, 100.0)
    late = sr.summary([0.010] * 98, missing=2)
    assert late["p50_ms"] == 10.0 and math.isinf(late["p99_ms"]) and math.isinf(late["max_ms"])
    assert sr.summary([])["p50_ms"] is None and sr.summary([])["max_ms"] is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-4, max_value=30.0), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.9, 0.99, 1.0]),
)
def test_histogram_percentile_within_one_percent(samples: list[float], q: float) -> None:
    h = sr.Histogram()
    for x in samples:
        h.add(x)
    exact = sorted(samples)[max(0, math.ceil(q * len(samples)) - 1)]
    got = h.percentile(q)
    assert got is not None and exact <= got <= exact * 1.0101


def _reading(
    lat: list[float],
    codes: dict[str, int],
    sent: dict[str, int],
    successes: list[tuple[str, str, str]],
) -> dict[str, object]:
    raw = array("d", lat).tobytes()
    return {
        "codes": {"grab": codes, "claim": {}},
        "latency": {"grab": raw, "claim": b""},
        "successes": {"grab": successes, "claim": []},
        "sent": sent,
        "recovery": {},
        "errors": {},
        "closes": {},
        "lost": {},
        "join_lat": array("d", [0.01]).tobytes(),
        "rejoin_lat": b"",
        "entries": [],
        "retries": 0,
        "missing": {},
        "winners_seen": [],
    }


def test_diff_results_keeps_only_what_happened_between_readings() -> None:
    first = _reading([0.1], {"ok": 1}, {"grab": 1}, [("u1", "s1", "h1")])
    second = _reading(
        [0.1, 0.2, 0.3],
        {"ok": 2, "sold_out": 1},
        {"grab": 3},
        [("u1", "s1", "h1"), ("u2", "s2", "h2")],
    )
    d = sr.diff_results(first, second)
    assert d["codes"]["grab"] == {"ok": 1, "sold_out": 1}
    assert d["latency"]["grab"] == [0.2, 0.3] and d["sent"] == {"grab": 2}
    assert d["successes"]["grab"] == [("u2", "s2", "h2")] and d["join_lat"] == []
    assert sr.diff_results(None, first)["latency"]["grab"] == [0.1]
    merged = sr.merge([d, sr.diff_results(None, first)])
    assert merged["codes"]["grab"] == {"ok": 2, "sold_out": 1}
    assert sorted(merged["latency"]["grab"]) == [0.1, 0.2, 0.3]
    assert merged["sent"]["grab"] == 3 and len(merged["join_lat"]) == 1


def test_probe_delivery_owes_each_probe_what_was_sent_while_it_listened() -> None:
    sent = {0: [1.0, 2.0, 3.0, 4.0], 1: [1.5, 2.5]}
    probes = {
        0: {
            "first": 1.8,
            "resynced": False,
            "connected": True,
            "dups": 0,
            "regress": 0,
            "got": {0: bytes([0, 1, 1]), 1: bytes([1, 1])},
        },  # 0.3 (sent 4.0) never came
        7: {"first": 0.0, "resynced": True, "connected": True, "dups": 1, "regress": 2, "got": {}},
        9: {
            "first": 0.0,
            "resynced": False,
            "connected": False,
            "dups": 0,
            "regress": 0,
            "got": {},
        },
    }
    states = {0: bytes([1, 1, 1, 1]), 1: bytes([1, 1])}
    d = sr.probe_delivery(probes, sent, 4.5, states)
    assert (d["expected"], d["missing"], d["judged"], d["resynced"], d["gone"]) == (4, 1, 1, 1, 1)
    assert d["dups"] == 1 and d["regress"] == 2
    assert sr.probe_delivery(probes, sent, 3.5, states)["missing"] == 0
    # refused by the room (2), cut before the answer (3), unanswered (0): owed to nobody
    others = {0: bytes([1, 1, 1, 2]), 1: bytes([3, 0])}
    d = sr.probe_delivery(probes, sent, 4.5, others)
    assert (d["expected"], d["missing"]) == (2, 0)
    assert d["danmaku"] == {"accepted": 3, "refused": 1, "cut_before_answer": 1, "unanswered": 1}


def _report(verdicts: list[str]) -> dict[str, object]:
    checks = [{"name": f"check {i}", "verdict": v, "detail": "d"} for i, v in enumerate(verdicts)]
    settings_ = {"spread_s": 1.0, "stock": 5, "limit": 1}
    phase = {
        "name": "seckill",
        "kind": "seckill",
        "settings": settings_,
        "seconds": 2.5,
        "viewers": 30,
        "sent_per_s": 10.0,
        "delivered_per_s": 300.0,
        "latency": sr.summary([0.03, 0.04]),
        "errors": 0,
        "lost": 0,
        "cpu": {"engine": 12.0, "redis": 1.0, "clients": 5.0, "other": 40.0},
        "figures": {
            "requests": 30,
            "answers": 30,
            "missing": 0,
            "codes": {"ok": 5, "sold_out": 25},
            "latency": sr.summary([0.002]),
            "granted": 5,
        },
        "checks": checks,
    }
    return {
        "date": "2026-11-25",
        "viewers": 30,
        "client_procs": 2,
        "probes": 3,
        "room": "r",
        "target": {"label": "own engine"},
        "machine": {"nproc": 2},
        "cpu_names": ["engine", "redis", "clients", "other"],
        "phases": [phase],
        "drops": {"expected": 10, "missing": 0, "judged": 3, "resynced": 0, "gone": 0, "dups": 0},
        "command": "python -m loadtest.swarm",
        "verdict": sr.verdict([phase]),
    }


def test_render_shows_every_phase_spike_and_verdict() -> None:
    text = sr.render(_report(["PASS", "not checked"]))
    for part in (
        "phase ",
        "seckill",
        "30 grabs over 1 s",
        "ok 5",
        "sold_out 25",
        "granted 5 of stock 5",
        "PASS        seckill    check 0",
        "not checked seckill    check 1",
        "verdict: PASS (1 passed, 0 failed, 1 not checked)",
        "command: python -m loadtest.swarm",
    ):
        assert part in text, part


def test_one_failed_check_fails_the_run() -> None:
    report = _report(["PASS", "FAIL"])
    assert report["verdict"] == "FAIL"
    assert "verdict: FAIL" in sr.render(report)


# -- the client process's pure helpers ------------------------------------------------------


def test_last_seq_takes_room_positions_not_the_seq_inside_an_answer() -> None:
    chat = b'{"type":"chat","msgs":[{"text":"x","seq":6}],"seq":7}'
    answer = b'{"type":"result","rid":3,"ok":true,"data":{"id":"n.1","seq":9}}'
    buf = chat + answer
    assert sc.last_seq(chat) == 7
    assert sc.last_seq(buf) == 9  # without the answer's span: taken for a position
    start = buf.index(answer)
    assert sc.last_seq(buf, [(start, len(buf))]) == 7
    assert sc.last_seq(b'{"seq":12') == -1  # not complete yet
    assert sc.last_seq(b"no position") == -1


def test_chosen_picks_the_fraction_the_same_in_every_process() -> None:
    picked = [v for v in range(20_000) if sc.chosen(v, 0.25, salt=3)]
    assert 0.23 < len(picked) / 20_000 < 0.27
    assert picked == [v for v in range(20_000) if sc.chosen(v, 0.25, salt=3)]
    assert picked != [v for v in range(20_000) if sc.chosen(v, 0.25, salt=4)]
    assert all(sc.chosen(v, 1.0, salt=1) for v in range(100))


# -- the target's pure helpers --------------------------------------------------------------


def test_ws_url_keys_and_the_argv_the_report_shows(tmp_path: Path) -> None:
    assert st_.parse_ws_url("ws://10.0.0.5:8900/v1/ws") == ("10.0.0.5", 8900, "/v1/ws")
    assert st_.parse_ws_url("ws://example.com") == ("example.com", 80, "/v1/ws")
    with pytest.raises(st_.TargetError, match="ws://"):
        st_.parse_ws_url("wss://example.com/v1/ws")
    assert st_.read_keys("k1:" + "s" * 32, None) == {"k1": b"s" * 32}
    with pytest.raises(st_.TargetError, match="KID:SECRET"):
        st_.read_keys("k1:short", None)
    keys = tmp_path / "dev-keys.json"
    keys.write_text(json.dumps({"dev": "ab" * 32}))
    assert st_.read_keys(None, str(keys)) == {"dev": ("ab" * 32).encode()}
    with pytest.raises(st_.TargetError, match="no token key"):
        st_.read_keys(None, str(tmp_path / "missing.json"))
    argv = ["ENGINE_ANTIFRAUD=false", "engine", "run", "--token-keys", "a:x,b:y", "--antifraud"]
    assert st_.shown_argv(argv) == ["engine", "run", "--token-keys", "a:***,b:***", "--antifraud"]
