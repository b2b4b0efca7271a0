"""Smoke test of the Trio swarm (`python -m loadtest.swarm`): a few seconds of every phase with a
handful of viewers over two client processes against its own engine must finish, print the
summary table, write a JSON report with every phase's figures and valid PNG charts, and every
invariant must PASS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.swarm_timeline import DEFAULT_ORDER

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
SHORT = [
    "join.ramp_s=1",
    "join.settle_s=0.5",
    "danmaku.rate=50",
    "danmaku.duration_s=2",
    "likes.rate=50",
    "likes.duration_s=2",
    "seckill.stock=7",
    "seckill.lead_s=1",
    "seckill.spread_s=0.5",
    "coupon.quantity=5",
    "coupon.spread_s=0.5",
    "lottery.winners=3",
    "lottery.spread_s=0.5",
    "reconnect.fraction=0.5",
    "reconnect.spread_s=0.5",
    "reconnect.settle_s=1",
    "background.danmaku_rate=10",
]
INVARIANTS = {
    "seckill": {
        "no oversell",
        "sold_out only when sold out",
        "per-user limit",
        "every granted grab recorded",
        "one seckill.reserved per hold",
    },
    "coupon": {
        "no double coupon",
        "all_claimed only when all claimed",
        "every claimed coupon recorded",
    },
    "lottery": {"lottery winners", "lottery draw verifiable", "winners popup", "lottery events"},
    "reconnect": {"no chat message twice"},
}


@pytest.mark.timeout(150)
def test_short_swarm_reports_every_phase_and_every_invariant_passes(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "loadtest.swarm",
        "--viewers",
        "30",
        "--procs",
        "2",
        "--nodes",
        "1",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    for item in SHORT:
        argv += ["--set", item]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    for row in (
        "phase ",
        "deliv. msg/s",
        "invariants",
        "verdict: PASS",
        "command: ",
        *DEFAULT_ORDER,
    ):
        assert row in proc.stdout, f"{row!r} missing from the table:\n{proc.stdout}"

    (report_path,) = tmp_path.glob("swarm-*.json")
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "PASS"
    phases = {p["name"]: p for p in report["phases"]}
    assert list(phases) == list(DEFAULT_ORDER)
    for name, phase in phases.items():
        for key in (
            "seconds",
            "viewers",
            "sent_per_s",
            "delivered_per_s",
            "latency",
            "cpu",
            "figures",
            "checks",
        ):
            assert key in phase, (name, key)
        assert phase["viewers"] == 30, (name, phase["viewers"])
    assert phases["join"]["figures"]["connected"] == 30
    assert phases["danmaku"]["figures"]["sent"] > 0
    assert phases["likes"]["figures"]["likes_sent"] > 0
    sale = phases["seckill"]["figures"]
    assert sale["granted"] == 7 and sale["missing"] == 0
    assert sale["codes"] == {"ok": 7, "sold_out": sale["requests"] - 7}
    drop = phases["coupon"]["figures"]
    assert drop["granted"] == 5 and drop["codes"]["ok"] == 5 and drop["missing"] == 0
    lottery = phases["lottery"]["figures"]
    assert lottery["winners"] == 3 and lottery["entrants"] >= 3
    again = phases["reconnect"]["figures"]
    assert again["cut"] > 0 and again["reconnected"] == again["cut"]
    for name, wanted in INVARIANTS.items():
        verdicts = {c["name"]: c["verdict"] for c in phases[name]["checks"]}
        assert set(verdicts) == wanted, (name, verdicts)
        assert set(verdicts.values()) == {"PASS"}, (name, phases[name]["checks"])
    assert report["series"] and report["drops"]["expected"] > 0

    assert len(report["charts"]) == 2
    for chart in report["charts"]:
        assert Path(chart).read_bytes()[:8] == PNG, chart
