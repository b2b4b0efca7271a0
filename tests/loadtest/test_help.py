"""Every benchmark's `--help` prints (argparse expands `%` in help strings: a stray one crashes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = sorted(p.stem for p in (REPO / "loadtest").glob("bench_*.py"))


@pytest.mark.parametrize("tool", TOOLS)
def test_help_prints(tool: str) -> None:
    done = subprocess.run([sys.executable, "-m", f"loadtest.{tool}", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_sendcost_measures_a_tiny_run() -> None:
    done = subprocess.run([sys.executable, "-m", "loadtest.bench_sendcost", "--sizes", "100,2000",
                           "--sockets", "20", "--seconds", "0.3"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == [100, 2000]
    # CPU time is accounted in clock ticks: a tiny run may show 0.00 us, never less
    assert all(int(row[1].replace(",", "")) > 0 and float(row[3]) >= 0 for row in rows)
