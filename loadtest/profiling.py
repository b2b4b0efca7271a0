"""py-spy around a measured window: a flame graph (svg), the collapsed stacks (raw) and a short
text summary of where the engine's time goes (self and inclusive time per function)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Recording:
    def __init__(self, procs: list[subprocess.Popen[bytes]], raw: Path, summary: Path) -> None:
        self.procs, self.raw, self.summary = procs, raw, summary

    def finish(self) -> None:
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.raw.exists():
            self.summary.write_text(summarize(self.raw.read_text()))


class Profiler:
    """Profiles engine processes only (the baseline is not ours to tune)."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.exe = py_spy()
        if self.exe is None:
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")

    def start(self, sut: Any, name: str, duration: float) -> Recording | None:
        if sut.kind != "engine" or self.exe is None:
            return None
        self.outdir.mkdir(parents=True, exist_ok=True)
        base = self.outdir / name
        common = ["record", "--pid", str(sut.proc.pid), "--duration", str(max(1, int(duration))),
                  "--nonblocking", "--rate", "100"]  # fmt: skip
        if getattr(sut.proc, "children", False):  # a supervisor: its workers are the engine
            common.append("--subprocesses")
        procs = []
        for fmt, suffix in (("flamegraph", ".svg"), ("raw", ".txt")):
            argv = [self.exe, *common, "--format", fmt, "-o", f"{base}{suffix}"]
            log = (self.outdir / f"{name}.py-spy.log").open("ab")
            procs.append(subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL))
        return Recording(procs, Path(f"{base}.txt"), Path(f"{base}.summary.txt"))


def _func(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    for marker in ("site-packages/", "lib/python3", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m.group('func')} ({file})"


def summarize(collapsed: str, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_func(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "self time (where the CPU is):"]
    lines += [f"{100 * n / total:6.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive time (this function and what it calls):"]
    lines += [f"{100 * n / total:6.1f}%  {f}" for f, n in incl.most_common(top)]
    return "\n".join(lines) + "\n"
