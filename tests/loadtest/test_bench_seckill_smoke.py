"""Smoke test of the flash-sale benchmark (`python -m loadtest.bench_seckill`): a tiny run of all
three parts must finish, print every figure and its verdicts, and sell exactly the stock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["--requests", "2000", "--rb-clients", "5", "--connections", "10", "--window", "2",
        "--warmup", "0.3", "--duration", "1", "--spike-viewers", "40", "--spike-stock", "7",
        "--spread", "0.3", "--drain", "20", "--spike-nodes", "2"]  # fmt: skip
ROWS = ["redis-benchmark, 1 grab per EVALSHA", "redis-benchmark, 100 grabs per EVALSHA",
        "baseline spike (plain websockets", "kernel stamp",
        "end to end, 1 node", "grab p50 ms", "grab p99 ms", "granted of stock", "command: "]  # fmt: skip


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "seckill.json"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_seckill", *TINY, "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    for row in ROWS:
        assert row in proc.stdout, f"{row!r} missing from the table:\n{proc.stdout}"
    results = json.loads(out.read_text())
    assert results["redis"]["per_call_1"]["decisions_per_s"] > 0
    assert results["redis"]["per_call_100"]["decisions_per_s"] > 0
    e2e = results["e2e"]
    assert e2e["connections"] == 10 and e2e["decisions_per_s"] > 0
    assert e2e["granted_in_window"] == e2e["answers_in_window"]  # every e2e grab is granted
    spike = results["spike"]
    assert spike["viewers"] == 40 and spike["missing"] == 0
    assert spike["codes"] == {"ok": 7, "sold_out": 33}
    assert spike["redis"]["granted"] == 7 and spike["redis"]["conserved"] is True
    assert not spike["oversell"] and spike["exact"]
    assert spike["nodes"] == 2  # a second node on the same Redis shares the viewers
    assert sum(row["sent"] for row in spike["timeline"]) == 40
    assert spike["kernel_p99_ms"] is not None and spike["kernel_p99_ms"] <= spike["p99_ms"]
    baseline = results["baseline"]  # the same spike against the plain websockets server
    assert baseline["codes"] == {"ok": 7, "sold_out": 33} and baseline["missing"] == 0
    assert set(results["verdicts"]) == {"e2e_ratio", "spike_p99", "no_oversell"}
    assert results["verdicts"]["no_oversell"]["pass"]
