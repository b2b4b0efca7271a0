"""The `engine` command and the node's HTTP side."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engine.cli import main
from engine.identity import TokenVerifier
from tests.conftest import StartEngine
from tests.support import KEYS, TOKEN_KEYS, viewer


def test_config_lists_every_setting() -> None:
    out = io.StringIO()
    assert main(["config"], out=out) == 0
    assert "ENGINE_REDIS_URL" in out.getvalue() and "ENGINE_CHAT_TICK_MS" in out.getvalue()


def test_token_mints_a_token_the_engine_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_TOKEN_KEYS", TOKEN_KEYS)
    out = io.StringIO()
    assert main(["token", "--user", "u1", "--room", "r1", "--role", "anchor"], out=out) == 0
    identity = TokenVerifier(KEYS).verify(out.getvalue().strip(), "r1")
    assert identity.user == "u1" and identity.role.value == "anchor"


def test_dev_mode_creates_a_private_key_once(tmp_path: Path) -> None:
    first, second = io.StringIO(), io.StringIO()
    args = ["token", "--dev", "--data-dir", str(tmp_path), "--user", "u", "--room", "r"]
    assert main(args, out=first) == 0 and main(args, out=second) == 0
    key_file = tmp_path / "dev-keys.json"
    assert key_file.exists() and oct(key_file.stat().st_mode)[-3:] == "600"


def test_token_without_keys_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGINE_TOKEN_KEYS", raising=False)
    assert main(["token", "--user", "u", "--room", "r"], out=io.StringIO()) == 2


def test_bad_settings_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_WS_PORT", "eighty")
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run"], capture_output=True, text=True,
        env={**os.environ, "ENGINE_WS_PORT": "eighty"}, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2 and "ENGINE_WS_PORT='eighty'" in result.stderr


@pytest.mark.integration
async def test_metrics_and_health_endpoints(start_engine: StartEngine, room: str) -> None:
    engine = await start_engine()
    address = engine.address
    assert address is not None
    async with viewer(address.ws_url, engine.mint_token("m", room)) as v:
        await v.send(type="danmaku", text="count me")
        await v.chat_texts(1)
        await v.send_raw("nonsense")
        await v.recv_type("error")
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{address.http_url}/metrics")).text
            health = await http.get(f"{address.http_url}/healthz")
    assert health.status_code == 200 and health.json()["ok"] is True
    for name in (
        "engine_connections 1.0",
        "engine_rooms 1.0",
        "engine_frames_sent_total",
        "engine_bytes_sent_total",
        "engine_frames_dropped_total",
        "engine_slow_consumer_closes_total",
        "engine_tick_duration_seconds_bucket",
        "engine_history_reads_total",
        "engine_reads_waiting 0.0",
        "engine_joins_waiting 0.0",
        'engine_client_errors_total{code="bad_frame"} 1.0',
        'engine_messages_received_total{type="danmaku"} 1.0',
    ):
        assert name in metrics, name


@pytest.mark.integration
async def test_events_tail_prints_a_rooms_events_as_json_lines(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    import orjson
    import trio

    engine = await start_engine()
    async with viewer(engine.address.ws_url, engine.mint_token("tailed", room)):  # type: ignore[union-attr]
        pass
    args = [sys.executable, "-m", "engine.cli", "events", "tail", "--redis-url", redis_url,
            "--group", "cli-test", "--room", room, "--log-level", "warning"]  # fmt: skip
    lines: list[dict] = []  # type: ignore[type-arg]
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(lambda task_status: trio.run_process(
            args, stdout=subprocess.PIPE, check=False, task_status=task_status))  # fmt: skip
        buffer = b""
        with trio.fail_after(20):
            while len(lines) < 2:
                buffer += await proc.stdout.receive_some(4096)
                *done, buffer = buffer.split(b"\n")
                lines += [orjson.loads(line) for line in done if line]
        proc.terminate()
    assert [line["type"] for line in lines] == ["viewer.entered", "viewer.left"]
    assert lines[0]["room"] == room and lines[0]["data"]["user"] == "tailed"
