"""Smoke test of the fan-out benchmark (`python -m loadtest.bench_fanout`): a tiny run of every
scenario against both servers must finish, report every figure and lose nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["--viewers", "20", "--duration", "1.5", "--warmup", "0.5", "--settle", "0.5",
        "--drain", "10", "--probes", "5", "--hot-senders", "5", "--hot-rate", "50",
        "--client-procs", "1", "--quiet-wait", "0", "--retries", "0"]  # fmt: skip
ROWS = ["delivered messages/s", "server CPU %", "redis-server CPU %", "load client CPU %",
        "idle memory per connection", "send-to-deliver p50 ms", "send-to-deliver p99 ms",
        "hot room"]  # fmt: skip


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_fanout", *TINY, "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=75,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    for row in ROWS:
        assert row in proc.stdout, f"{row!r} missing from the table:\n{proc.stdout}"
    assert "command: " in proc.stdout

    results = json.loads(out.read_text())
    servers = results["servers"]
    assert set(servers) == {"engine-0", "engine-100", "baseline-0", "baseline-100"}
    for key, scenarios in {"engine-0": ["fanout"], "engine-100": ["batch", "hot"],
                           "baseline-0": ["fanout", "hot"],
                           "baseline-100": ["batch", "hot"]}.items():  # fmt: skip
        server = servers[key]
        assert server["viewers"] == 20 and server["connect_failed"] == 0, server
        assert server["memory"]["per_conn_bytes"] is not None
        for name in scenarios:
            figures = server[name]
            assert figures["msgs_per_s"] > 0, (key, name, figures)
            assert figures["server_cpu"] > 0
            assert figures["client_cpu"] and all(v >= 0 for v in figures["client_cpu"].values())
            if name == "hot":
                assert figures["latency"]["samples"] > 0
                assert figures["latency"]["missing"] == 0, (key, figures["latency"])
                assert figures["latency"]["p99_ms"] is not None
            else:
                assert figures["lost"] == 0, (key, name, figures)
        if key.startswith("engine"):
            assert servers[key][scenarios[0]]["redis_cpu"] is not None
    assert set(results["verdicts"]) == {"fanout_ratio", "hot_cpu", "hot_p99", "idle_memory"}
