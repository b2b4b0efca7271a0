"""Running the Node side of the browser tests from pytest (tests/browser/run.mjs and friends).

They need `node`, Debian's Chromium (/usr/bin/chromium) and `npm ci` in tests/browser;
`make test` installs what is missing and sets BROWSER_TESTS=required, so a missing piece fails
there instead of skipping."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

BROWSER_DIR = Path(__file__).parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def missing(*, chromium: bool = True, package: str = "playwright-core") -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if chromium and not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: apt-get install chromium (make test does)"
    if not (BROWSER_DIR / "node_modules" / package).is_dir():
        return f"{package} is missing: cd tests/browser && npm ci (make test does)"
    return None


def require(**kw: Any) -> None:
    """Skip (or fail, under `make test`) when the browser tooling is not installed."""
    reason = missing(**kw)
    if reason is None:
        return
    if os.environ.get("BROWSER_TESTS") == "required":
        pytest.fail(reason)
    # Justified skip: only a bare `pytest` on a machine without node/chromium gets here (a
    # developer running the Python tests alone); `make test` and CI set BROWSER_TESTS=required
    # and install the tooling, so there a missing browser fails instead of hiding the tests.
    pytest.skip(reason)


async def node(*args: str, timeout_s: float = 240, stdin: bytes | None = None) -> str:
    """Run `node ARGS` in tests/browser without blocking the test's Trio loop (an engine node
    may be serving in it); its stdout, or a test failure with its output."""
    with trio.fail_after(timeout_s):
        result = await trio.run_process(
            ["node", *args], cwd=BROWSER_DIR, stdin=stdin, capture_stdout=True,
            capture_stderr=True, check=False,
        )  # fmt: skip
    out, err = result.stdout.decode(), result.stderr.decode()
    if result.returncode != 0:
        pytest.fail(
            f"node {' '.join(args)} exited {result.returncode}\n{err[-6000:]}\n{out[-3000:]}"
        )
    return out


async def scenario(name: str, *, http_url: str, ws_port: int, room: str, out: Path) -> Any:
    """Run one scenario of run.mjs; its details."""
    stdout = await node("run.mjs", name, "--http", http_url, "--ws-port", str(ws_port),
                        "--room", room, "--out", str(out))  # fmt: skip
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["ok"] is True and result["scenario"] == name
    return result["details"]
