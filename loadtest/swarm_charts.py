"""The swarm's PNG charts (matplotlib, Agg backend: no display needed), from the report's
per-second series: danmaku send-to-deliver percentiles over time, and rates over time (what the
viewers received and sent, answers to grabs/claims/entries, viewers connected, CPU). Phases are
shaded and named along the top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

SHADES = ("#f2f2f2", "#e4ecf7")


def _phases(ax: Axes, phases: list[dict[str, Any]], label: bool) -> None:
    for i, p in enumerate(phases):
        ax.axvspan(p["start_s"], p["end_s"], color=SHADES[i % 2], zorder=0)
        if label:
            ax.text(
                (p["start_s"] + p["end_s"]) / 2,
                1.01,
                p["name"],
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=0,
            )


def latency_chart(report: dict[str, Any], path: Path) -> Path:
    series, phases = report["series"], report["phases"]
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    _phases(ax, phases, label=True)
    t = [s["t"] for s in series if s["lat"]["n"]]
    for key, name, style in (
        ("p50_ms", "p50", "-"),
        ("p90_ms", "p90", "-"),
        ("p99_ms", "p99", "-"),
        ("max_ms", "max", ":"),
    ):
        ax.plot(t, [s["lat"][key] for s in series if s["lat"]["n"]], style, label=name, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the first phase")
    ax.set_ylabel("danmaku send-to-deliver, ms (probes)")
    ax.set_title(
        f"swarm {report['date']}: {report['viewers']:,} viewers, latency per second",
        fontsize=10,
        pad=16,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def rates_chart(report: dict[str, Any], path: Path) -> Path:
    series, phases = report["series"], report["phases"]
    t = [s["t"] for s in series]
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), dpi=100, sharex=True)
    recv, sent, live, cpu = axes
    for i, ax in enumerate(axes):
        _phases(ax, phases, label=i == 0)
        ax.grid(True, alpha=0.3)
    recv.plot(t, [s["recv_msgs_per_s"] for s in series], label="chat messages received/s")
    recv.plot(t, [s["frames_per_s"] for s in series], label="frames received/s", lw=0.8)
    recv.set_ylabel("all viewers")
    recv.legend(loc="upper left", fontsize=8)
    recv.set_title(f"swarm {report['date']}: rates per second", fontsize=10, pad=16)
    sent.plot(t, [s["danmaku_per_s"] for s in series], label="danmaku sent/s")
    sent.plot(t, [s["like_msgs_per_s"] for s in series], label="like messages sent/s")
    sent.plot(t, [s["answers_per_s"] for s in series], label="grab/claim/enter answers/s")
    sent.set_ylabel("per second")
    sent.legend(loc="upper left", fontsize=8)
    live.plot(t, [s["live"] for s in series], label="viewers connected")
    live.plot(t, [s["errors"] for s in series], label="error frames (total)")
    live.plot(t, [s["lost"] for s in series], label="connections lost (total)")
    live.set_ylabel("count")
    live.legend(loc="upper left", fontsize=8)
    names = report.get("cpu_names") or []
    for name in names:
        cpu.plot(t, [s["cpu"].get(name) for s in series], label=f"{name} CPU %", lw=1)
    cpu.set_ylabel("% of a core")
    cpu.set_xlabel("seconds since the first phase")
    cpu.legend(loc="upper left", fontsize=8, ncol=max(1, len(names)))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_charts(report: dict[str, Any], stem: Path) -> list[Path]:
    """`<stem>-latency.png` and `<stem>-rates.png`."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    return [
        latency_chart(report, stem.with_name(stem.name + "-latency.png")),
        rates_chart(report, stem.with_name(stem.name + "-rates.png")),
    ]
