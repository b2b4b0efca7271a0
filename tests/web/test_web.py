"""The node's browser side: the demo pages and the JS client are served; the demo token endpoint
exists in dev mode only; `engine run --dev` (what `make run` runs) prints the demo URLs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from engine.config import Config
from engine.identity import Role, TokenVerifier
from engine.supervisor import Supervisor
from engine.web import demo_banner
from tests.conftest import StartEngine
from tests.support import KEYS, NO_LIMITS, viewer

STATIC = Path(__file__).parent.parent.parent / "engine" / "web" / "static"
PAGES = {
    "/demo/": "text/html",
    "/demo/viewer.html": "text/html",
    "/demo/console.html": "text/html",
    "/demo/live-client.js": "text/javascript",
    "/demo/live-control.js": "text/javascript",
    "/demo/msgpack.js": "text/javascript",
    "/demo/style.css": "text/css",
    "/demo/img/tea.svg": "image/svg+xml",
}

pytestmark = pytest.mark.integration


async def _get(base: str, path: str = "") -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(base + path)


async def test_pages_and_client_are_served(start_engine: StartEngine) -> None:
    engine = await start_engine()
    assert engine.address is not None
    base = engine.address.http_url
    for path, media in PAGES.items():
        response = await _get(base, path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media), path
    served = (await _get(base, "/demo/live-client.js")).text
    assert served == (STATIC / "live-client.js").read_text()
    redirect = await _get(base, "/demo")
    assert redirect.status_code == 307 and redirect.headers["location"] == "/demo/"
    assert (await _get(base, "/demo/../node.py")).status_code == 404


async def test_no_token_endpoint_without_dev_mode(start_engine: StartEngine) -> None:
    engine = await start_engine()  # dev=False: production
    assert engine.address is not None
    response = await _get(engine.address.http_url, "/demo/token?user=alice&room=demo")
    assert response.status_code == 404
    assert "token" not in response.text


async def test_demo_pages_can_be_switched_off(start_engine: StartEngine) -> None:
    engine = await start_engine(demo_pages=False, dev=True)
    assert engine.address is not None
    assert (await _get(engine.address.http_url, "/demo/viewer.html")).status_code == 404
    token = await _get(engine.address.http_url, "/demo/token?user=alice")
    assert token.status_code == 200  # dev mode mints tokens even without the pages


async def test_dev_mode_mints_viewer_and_anchor_tokens(start_engine: StartEngine) -> None:
    engine = await start_engine(dev=True)
    address = engine.address
    assert address is not None
    verifier = TokenVerifier(KEYS)
    response = await _get(address.http_url, "/demo/token?user=alice&room=r1&name=Alice&device=d1")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["ws_url"] == address.ws_url and body["control_url"] == address.control_url
    identity = verifier.verify(body["token"], "r1")
    assert (identity.user, identity.role, identity.name, identity.device) == (
        "alice", Role.VIEWER, "Alice", "d1")  # fmt: skip
    anchor = (await _get(address.http_url, "/demo/token?user=mia&role=anchor")).json()
    assert verifier.verify(anchor["token"]).role is Role.ANCHOR and anchor["room"] == "demo"
    guest = (await _get(address.http_url, "/demo/token")).json()
    assert guest["user"].startswith("guest-")
    # the token works on the viewer socket
    async with viewer(address.ws_url, body["token"]) as v:
        assert v.welcome["user"] == "alice"  # type: ignore[attr-defined]


async def test_token_endpoint_refuses_admin_and_bad_ids(start_engine: StartEngine) -> None:
    engine = await start_engine(dev=True)
    assert engine.address is not None
    base = engine.address.http_url
    admin = await _get(base, "/demo/token?user=root&role=admin")
    assert admin.status_code == 403 and admin.json()["error"]["code"] == "forbidden"
    for query in ("user=a%20b", "room={x}", "device=" + "d" * 65):
        bad = await _get(base, f"/demo/token?{query}")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_field", query


def test_banner_names_the_pages() -> None:
    dev = demo_banner("http://127.0.0.1:8901", dev=True)
    assert "http://127.0.0.1:8901/demo/viewer.html?room=demo" in dev
    assert "http://127.0.0.1:8901/demo/console.html?room=demo" in dev
    assert "/demo/live-client.js" in demo_banner("http://h:1", dev=False)
    supervisor = Supervisor(Config(dev=True, workers=2, http_port=9100), [], sys.stdout)
    assert "http://127.0.0.1:9100/demo/console.html?room=demo" in supervisor._banner("redis://x")


async def test_engine_run_dev_prints_the_demo_urls(redis_url: str, tmp_path: Path) -> None:
    """What `make run` shows: `engine run --dev` prints where the viewer page and the console
    are, and they answer (one node: its free ports are in its own banner; the default of one
    worker per core is tests/test_workers.py's)."""
    env = {**os.environ, "ENGINE_DATA_DIR": str(tmp_path), "ENGINE_REDIS_URL": redis_url,
           **{f"ENGINE_{k.upper()}": v for k, v in NO_LIMITS.items()}}  # fmt: skip
    args = [sys.executable, "-m", "engine.cli", "run", "--dev", "--workers", "1", "--ws-port",
            "0", "--http-port", "0", "--control-socket", "none", "--log-level", "warning"]  # fmt: skip
    proc = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        text = ""
        with trio.fail_after(60):
            while "anchor console:" not in text:
                chunk = await proc.stdout.receive_some(4096)
                assert chunk, f"engine run exited early: {text}"
                text += chunk.decode()
            while not text.endswith("\n"):
                text += (await proc.stdout.receive_some(4096)).decode()
        urls = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
                for line in text.splitlines() if line.startswith("  ")}  # fmt: skip
        for page in ("demo viewer", "anchor console"):
            response = await _get(urls[page])
            assert response.status_code == 200 and "<html" in response.text, page
        token_url = urls["demo viewer"].split("/demo/")[0] + "/demo/token?user=alice"
        assert (await _get(token_url)).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(15):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
