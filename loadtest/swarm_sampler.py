"""The swarm's sampler: once a second it reads every client process's counters and latency
samples and the CPU of each party, adds a row to the series (the charts' data), prints the
progress line, and at the end gives each phase its rates, latency, errors and CPU."""

from __future__ import annotations

import sys
import time
from bisect import bisect_right
from collections import defaultdict
from typing import Any

import trio

from loadtest.swarm_report import Histogram, floats, summary
from loadtest.swarm_target import CpuMeter
from loadtest.swarm_workers import WorkerGone, Workers


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Sampler:
    """Once a second: every client process's counters and latency samples, CPU; one row of the
    series and the progress line."""

    def __init__(self, workers: Workers, meter: CpuMeter, started: float, progress: bool) -> None:
        self.workers, self.meter, self.started = workers, meter, started
        self.progress = progress
        self.series: list[dict[str, Any]] = []
        self.hist = Histogram()
        self.phase_lat: dict[str, list[float]] = defaultdict(list)
        self.phases: list[tuple[float, str]] = [(0.0, "setup")]  # (since, name)
        self.prev: dict[str, float] | None = None
        self.tty = sys.stderr.isatty()

    @property
    def phase(self) -> str:
        return self.phases[-1][1]

    @phase.setter
    def phase(self, name: str) -> None:
        self.phases.append((time.time(), name))

    def phase_at(self, when: float) -> str:
        """The phase under way at `when` (rows and latency samples belong to the phase of the
        moment they describe, not of the moment they were read)."""
        i = bisect_right(self.phases, when, key=lambda p: p[0]) - 1
        return self.phases[max(0, i)][1]

    async def run(self) -> None:
        next_at = trio.current_time()
        while True:
            next_at = max(next_at + 1.0, trio.current_time())
            await trio.sleep_until(next_at)
            try:
                await self.sample()
            except trio.TooSlowError:  # a client process too busy to answer: no row this time
                log("   sampler: a client process did not answer within 60 s")
            except WorkerGone as exc:  # the phase that needs it reports the loss
                log(f"   sampler stopped: {exc}")
                return

    async def sample(self) -> None:
        stats = await self.workers.same(("swarm_stats",), timeout=60)
        now = time.time()
        cpu = self.meter.read()
        tot = {
            "msgs": sum(s["msgs"] for s in stats),
            "frames": sum(s["frames"] for s in stats),
            "bytes": sum(s["bytes"] for s in stats),
            "danmaku": sum(s["sent"].get("danmaku", 0) for s in stats),
            "like_msgs": sum(s["sent"].get("like_msgs", 0) for s in stats),
            "answers": sum(sum(s["answers"].values()) for s in stats),
            "t": now,
        }
        prev, self.prev = self.prev or tot, tot
        dt = max(1e-6, now - prev["t"]) if prev is not tot else 1.0

        def per_s(key: str) -> float:
            return round((tot[key] - prev[key]) / dt, 1)

        lat: list[float] = []
        for s in stats:
            triples = floats(s["chat_lat"])
            for at, x in zip(triples[0::3], triples[1::3], strict=True):
                lat.append(x)
                self.hist.add(x)
                self.phase_lat[self.phase_at(at)].append(x)
        row = {
            "t": round(now - self.started, 2),
            "phase": self.phase_at(now - dt / 2),
            "live": sum(s["live"] for s in stats),
            "recv_msgs_per_s": per_s("msgs"),
            "frames_per_s": per_s("frames"),
            "mbytes_per_s": round(per_s("bytes") / 1e6, 3),
            "danmaku_per_s": per_s("danmaku"),
            "like_msgs_per_s": per_s("like_msgs"),
            "answers_per_s": per_s("answers"),
            "errors": sum(s["errors"] for s in stats),
            "lost": sum(s["lost"] for s in stats),
            "lat": summary(lat),
            "cpu": {k: round(v, 1) for k, v in cpu.items()},
        }
        self.series.append(row)
        if self.progress:
            self.show(row)

    def show(self, row: dict[str, Any]) -> None:
        p99 = row["lat"]["p99_ms"]
        run_p99 = self.hist.percentile(0.99)
        cpu = row["cpu"]
        known = "engine" in cpu and cpu["engine"] == cpu["engine"]  # (NaN: not readable)
        engine = f"engine {cpu['engine']:.0f}% " if known else ""
        line = (
            f"[{row['t']:7.1f}s] {self.phase[:10]:<10} viewers {row['live']:>6,}  recv "
            f"{row['recv_msgs_per_s']:>9,.0f} msg/s  sent "
            f"{row['danmaku_per_s'] + row['like_msgs_per_s']:>6,.0f}/s  answers "
            f"{row['answers_per_s']:>6,.0f}/s  p99 "
            f"{'-' if p99 is None else f'{p99:,.0f}':>5} ms (run "
            f"{'-' if run_p99 is None else f'{run_p99 * 1000:,.0f}'} ms)  errors "
            f"{row['errors']:,}  lost {row['lost']:,}  cpu {engine}clients "
            f"{cpu.get('clients', 0):.0f}% other {cpu.get('other', 0):.0f}%"
        )
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
        else:
            log(line)


def phase_figures(sampler: Sampler, name: str) -> dict[str, Any]:
    """What the sampler saw during a phase: rates, latency, errors, CPU."""
    rows = [r for r in sampler.series if r["phase"] == name]
    out: dict[str, Any] = {"latency": summary(sampler.phase_lat.get(name, []))}
    if not rows:
        return out | {
            "viewers": 0,
            "sent_per_s": 0.0,
            "delivered_per_s": 0.0,
            "errors": 0,
            "lost": 0,
            "cpu": {},
        }
    before = (
        sampler.series[sampler.series.index(rows[0]) - 1]
        if rows[0] is not sampler.series[0]
        else None
    )

    def mean(key: str) -> float:
        return round(sum(r[key] for r in rows) / len(rows), 1)

    names = rows[0]["cpu"].keys()
    cpu = {}
    for k in names:
        vals = [r["cpu"][k] for r in rows if r["cpu"].get(k) == r["cpu"].get(k)]
        cpu[k] = round(sum(vals) / len(vals), 1) if vals else None
    return out | {
        "viewers": rows[-1]["live"],
        "sent_per_s": round(mean("danmaku_per_s") + mean("like_msgs_per_s"), 1),
        "delivered_per_s": mean("recv_msgs_per_s"),
        "peak_delivered_per_s": max(r["recv_msgs_per_s"] for r in rows),
        "errors": rows[-1]["errors"] - (before["errors"] if before else 0),
        "lost": rows[-1]["lost"] - (before["lost"] if before else 0),
        "cpu": cpu,
    }
