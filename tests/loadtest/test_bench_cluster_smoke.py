"""Smoke test of the cluster benchmark (`python -m loadtest.bench_cluster`): a tiny run of every
part (one node vs two, the --workers 2 search, resume storms on one and two workers) must
finish and report every figure. No timing thresholds: the figures are whatever this machine
gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["--viewers", "20", "--probes", "4", "--hot-senders", "4", "--hot-rate", "50",
        "--duration", "1", "--warmup", "0.5", "--drain", "5", "--steps", "20,40",
        "--search-misses", "2", "--storm-viewers", "30", "--storm-back", "10",
        "--storm-extra", "2", "--storm-fill-rate", "40", "--storm-senders", "2",
        "--storm-spread", "0.5", "--storm-linger", "0.5", "--storm-rest", "0", "--client-procs", "2",
        "--quiet-wait", "0", "--retries", "0", "--settle", "1"]  # fmt: skip
ROWS = ["1. one node vs two nodes", "delivered messages/s", "of which on node A / node B",
        "send-to-deliver p99 ms", "engine CPU % per node", "redis-server CPU %",
        "load client CPU %", "2. hot room", "largest held", "3. resume storm", "history reads",
        "search_goal", "storm_reads_workers-2"]  # fmt: skip


def _check_hot(figures: dict[str, object]) -> None:
    latency = figures["latency"]
    assert isinstance(latency, dict) and latency["samples"] > 0 and latency["p99_ms"] is not None
    for key in ("server_cpu", "redis_cpu", "client_cpu_total", "other_cpu", "lost"):
        assert figures[key] is not None, key


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_cluster", *TINY, "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=140,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    for row in ROWS:
        assert row in proc.stdout, f"{row!r} missing from the output:\n{proc.stdout}"
    assert " -m loadtest.bench_cluster --viewers 20" in proc.stdout

    results = json.loads(out.read_text())
    for nodes in (1, 2):  # one node, then two on one Redis, viewers half on each
        res = results["cross"][f"nodes-{nodes}"]
        for scenario in ("fanout", "hot"):
            assert res[f"{scenario}_room"]["viewers"] == 20, res[f"{scenario}_room"]
            figures = res[scenario]
            assert figures["msgs_per_s"] > 0, (nodes, scenario, figures)
            per_node = figures["msgs_per_s_by_node"]
            assert len(per_node) == nodes and all(v > 0 for v in per_node), per_node
            assert len(figures["engine_cpu_by_process"]) == nodes
        assert res["fanout"]["lost"] == 0
        _check_hot(res["hot"])

    search = results["search"]
    assert search["workers"] == 2 and [s["step"] for s in search["steps"]] == [20, 40]
    for step in search["steps"]:
        assert step["viewers"] == step["step"] and isinstance(step["held"], bool)
        _check_hot(step["hot"])
        workers = [k for k in step["hot"]["engine_cpu_by_process"] if k.startswith("node")]
        assert len(workers) == 2, step["hot"]["engine_cpu_by_process"]

    for workers in (1, 2):
        storm = results["storm"][f"workers-{workers}"]
        for mode in ("fresh", "warm", "cold"):
            r = storm[mode]
            recovery = "fresh" if mode == "fresh" else "resumed"
            assert r["recovery"] == {recovery: 30}, (workers, mode, r["recovery"])
            assert r["caught_up"] == 30 and r["position"]["chat_items"] > 0, r
            for key in ("all_welcome_s", "welcome_p50_ms", "welcome_p99_ms", "all_caught_up_s",
                        "catch_up_p50_ms", "catch_up_p99_ms", "engine_cpu_s", "redis_cpu_s",
                        "client_cpu_s", "opened_over_s", "other_top"):  # fmt: skip
                assert r[key] is not None, key
            assert isinstance(r["history_reads"], int)
        assert storm["cold"]["history_reads"] >= 1  # the room was closed: the history was read
    assert {"hot_p99_1_node", "hot_p99_2_nodes", "search_goal", "storm_reads_workers-1",
            "storm_reads_workers-2"} <= set(results["verdicts"])  # fmt: skip
