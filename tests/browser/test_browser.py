"""The demo viewer page, the anchor console and the JS client in a real browser: Debian's
headless Chromium driven by playwright-core (tests/browser/run.mjs), against an engine node
started here in dev mode. Each test runs one scenario; the scenario itself checks what the
pages show and fails with a screenshot of every page in the test's tmp dir."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser import support
from tests.conftest import StartEngine

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def _run(name: str, start_engine: StartEngine, room: str, tmp_path: Path) -> Any:
    support.require()
    engine = await start_engine(dev=True)
    address = engine.address
    assert address is not None
    return await support.scenario(name, http_url=address.http_url, ws_port=address.ws_port,
                                  room=room, out=tmp_path)  # fmt: skip


async def test_two_viewers_see_each_others_danmaku(
    start_engine: StartEngine, room: str, tmp_path: Path
) -> None:
    """Alice (JSON) and Bob (msgpack) chat with text, an emoji from the picker and a quick
    phrase; both see every message, in the same order, and so does the anchor console."""
    details = await _run("danmaku", start_engine, room, tmp_path)
    assert details["codecs"] == ["json", "msgpack"]
    assert details["chat"][:2] == ["hello from alice 👋", "hi alice, bob here🔥"]


async def test_like_total_rises_for_everyone(
    start_engine: StartEngine, room: str, tmp_path: Path
) -> None:
    """12 taps of the like buttons on two pages: both pages and the console's live numbers
    show the total."""
    details = await _run("likes", start_engine, room, tmp_path)
    assert details["total"] == details["before"] + 12


async def test_flash_sale_popup_counts_down_shows_stock_and_grab_results(
    start_engine: StartEngine, room: str, tmp_path: Path
) -> None:
    """The anchor starts a sale 6 s ahead from the console; the viewer's popup counts down to
    the start, then to the end, with the stock; a grab is granted, a second one hits the
    per-person limit, and the other viewer sees the stock fall."""
    details = await _run("seckill", start_engine, room, tmp_path)
    assert details["results"] == [{"ok": True}, {"ok": False, "code": "limit_reached"}]
    assert details["stock"] == "1 / 3 left"


async def test_cut_connection_resumes_without_losing_messages(
    start_engine: StartEngine, room: str, tmp_path: Path
) -> None:
    """A proxy between Alice's page and the engine drops her connection and refuses new ones;
    meanwhile Bob chats and likes and the anchor pins. When the network is back, the client
    reconnects with `recovery: "resumed"`: every message once, in order, likes and pin too."""
    details = await _run("resume", start_engine, room, tmp_path)
    assert [w["recovery"] for w in details["welcomes"]] == ["fresh", "resumed"]
    assert "reconnecting" in details["states"] and details["states"][-1] == "open"
    assert details["texts"][1:6] == ["missed 1", "missed 2 🎉", "missed 3", "missed 4", "missed 5"]


async def test_silent_connection_is_noticed_by_the_heartbeat_and_resumed(
    start_engine: StartEngine, room: str, tmp_path: Path
) -> None:
    """The proxy stops forwarding without closing anything: the client's pings go unanswered,
    it drops the connection itself, reconnects and resumes with nothing missing."""
    details = await _run("heartbeat", start_engine, room, tmp_path)
    assert [w["recovery"] for w in details["welcomes"]] == ["fresh", "resumed"]


async def test_anchor_console_pins_replies_mutes_and_shows_numbers(
    start_engine: StartEngine, room: str, tmp_path: Path
) -> None:
    """From the console: pin a message, reply to a viewer's message (@alice), pin a product
    card, a stream notice, mute a viewer (whose danmaku then reach nobody); live numbers."""
    details = await _run("console", start_engine, room, tmp_path)
    assert "@alice" in details["reply"] and "sure, here it is" in details["reply"]
    assert all(entry.endswith(":true") for entry in details["log"]), details["log"]


async def test_coupon_and_lottery_from_the_console(
    start_engine: StartEngine, room: str, tmp_path: Path
) -> None:
    """The anchor drops 2 coupons: two viewers claim them, the count falls to 0 everywhere; a
    lottery (keyword or follow): one viewer sends the keyword, the other follows, 2 entrants;
    the anchor draws: one winner, told so."""
    details = await _run("promos", start_engine, room, tmp_path)
    assert len(details["winners"]) == 1 and details["coupon"].endswith("0 / 2 left")


async def test_screenshots_of_both_pages(
    start_engine: StartEngine, room: str, tmp_path: Path
) -> None:
    """The room in full swing: what docs/demo-viewer.png and docs/demo-console.png show
    (`make screenshots` runs this with SCREENSHOTS_DIR=docs to refresh them)."""
    out = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    details = await _run("showcase", start_engine, room, out)
    for path in details["screenshots"]:
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
