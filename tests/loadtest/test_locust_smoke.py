"""Smoke test of the locust scenarios (loadtest/locustfile.py): a few seconds of a live with a
handful of users against an engine node with its anti-fraud defaults (viewers spread over
addresses with X-Forwarded-For, the engine trusting 127.0.0.1 as a proxy), then locust's CSV
must show every kind of row with counts, and no failure at all (a lost race such as
`grab:sold_out` is a success by design, so any failure means something is wrong)."""

from __future__ import annotations

import csv
import dataclasses
import sys
from pathlib import Path

import pytest
import trio

from engine.config import Config
from tests.conftest import StartEngine
from tests.support import TOKEN_KEYS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LIMITS = {
    f.name: f.default for f in dataclasses.fields(Config) if f.name.startswith("limit_")
}
WS_ROWS = ["join", "deliver", "danmaku", "like"]
WS_PREFIXES = ["grab:", "claim:", "enter:", "popup:seckill", "popup:coupon", "popup:lottery"]
CONTROL_ROWS = [("GET", "openapi"), ("POST", "create_room"), ("POST", "set_products"),
                ("POST", "start_room"), ("POST", "start_seckill"), ("POST", "drop_coupon"),
                ("POST", "create_lottery"), ("POST", "draw_lottery"), ("GET", "live_numbers")]  # fmt: skip


@pytest.mark.timeout(90)
async def test_a_short_live_fills_every_row_without_failures(
    start_engine: StartEngine, room: str, tmp_path: Path
) -> None:
    engine = await start_engine(chat_tick_ms=100, trusted_proxies="127.0.0.1", **DEFAULT_LIMITS)
    prefix = tmp_path / "smoke"
    argv = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py"),
            "--headless", "-u", "10", "-r", "10", "-t", "8s", "--csv", str(prefix),
            "--only-summary", "--host", engine.address.http_url,
            "--ws-url", engine.address.ws_url, "--engine-secret", TOKEN_KEYS, "--room", room,
            "--cycle-s", "6", "--countdown-s", "1", "--watch-share", "1"]  # fmt: skip
    proc = await trio.run_process(argv, cwd=tmp_path, capture_stdout=True, capture_stderr=True,
                                  check=False)  # fmt: skip
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    assert "Traceback" not in output, output[-6000:]
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
    failures = Path(f"{prefix}_failures.csv").read_text()
    assert failures.count("\n") == 1, failures  # the header only
    assert proc.returncode == 0, output[-6000:]
    counts = {key: int(r["Request Count"]) for key, r in rows.items()}
    assert all(int(r["Failure Count"]) == 0 for r in rows.values()), rows
    for name in WS_ROWS:
        assert counts.get(("WS", name), 0) > 0, f"no WS {name} row: {sorted(counts)}"
    for prefix_ in WS_PREFIXES:
        assert any(t == "WS" and n.startswith(prefix_) for t, n in counts), (prefix_, counts)
    for key in CONTROL_ROWS:
        assert counts.get(key, 0) > 0, f"no {key} row: {sorted(counts)}"
    # grabs: at most the stock granted (10 users: 9 viewers, stock 2 per sale)
    sales = counts[("POST", "start_seckill")]
    assert 0 < counts.get(("WS", "grab:ok"), 0) <= 2 * sales
