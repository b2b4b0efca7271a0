"""Smoke test of the coupon stampede benchmark (`python -m loadtest.bench_coupons`): a tiny run
must finish, print every figure and its verdicts, and grant exactly the quantity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["--viewers", "40", "--quantity", "7", "--client-procs", "2", "--spread", "0.3",
        "--drain", "20", "--quiet-wait", "0"]  # fmt: skip
ROWS = ["claims sent", "claim latency p50 ms", "claim latency p99 ms", "granted of quantity 7",
        "coupon.granted events", "PASS  exactly_quantity", "command: "]  # fmt: skip


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_tiny_stampede_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "coupons.json"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_coupons", *TINY, "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    for row in ROWS:
        assert row in proc.stdout, f"{row!r} missing from the table:\n{proc.stdout}"
    results = json.loads(out.read_text())
    stampede = results["stampede"]
    assert stampede["viewers"] == 40 and stampede["missing"] == 0
    assert stampede["codes"] == {"ok": 7, "all_claimed": 33}
    assert stampede["redis"]["granted"] == 7 and stampede["redis"]["consistent"] is True
    assert stampede["p50_ms"] is not None and stampede["p99_ms"] >= stampede["p50_ms"]
    assert all(v["pass"] for v in results["verdicts"].values())
