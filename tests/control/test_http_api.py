"""The HTTP API against its own OpenAPI document: schemathesis (live URL against a running node)
finds no 5xx and no response that breaks its schema; plus the API's edges by hand."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
import trio

from engine import Engine
from tests.conftest import StartEngine
from tests.control.support import address
from tests.support import engine_config

pytestmark = pytest.mark.integration

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CHECKS_SKIPPED = [
    # valid input may still be refused by the state (404 room_not_found, 409 bad_state): the
    # fuzzer cannot know which rooms exist
    "positive_data_acceptance",
    # need links between operations (stateful testing), which the API does not declare
    "use_after_free",
    "ensure_resource_availability",
]


async def test_schemathesis_finds_no_5xx_and_every_response_matches_its_schema(
    nursery: trio.Nursery, room: str, tmp_path: Path
) -> None:
    # a private redis-server: the fuzzer changes global settings (keyword lists, bot rules,
    # global bans) that would otherwise reach every later test on the shared one
    engine = Engine(engine_config("", tmp_path))
    await nursery.start(engine.serve)
    await engine.command("create_room", room=room, title="Fuzzed", anchor="anchor-1")
    token = engine.mint_token("host", "ops", role="admin")
    args = [
        SCHEMATHESIS, "run", address(engine).http_url + "/api/openapi.json",
        "--checks", "all", "--exclude-checks", ",".join(CHECKS_SKIPPED),
        "--header", f"Authorization: Bearer {token}",
        "--max-examples", "12", "--seed", "6", "--workers", "1",
        "--phases", "examples,coverage,fuzzing",
        "--generation-database", "none", "--no-color", "--request-timeout", "20",
        "--report-dir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    with trio.fail_after(240):
        result = await trio.run_process(
            args, capture_stdout=True, capture_stderr=True, check=False, env=env, cwd=tmp_path
        )
    output = result.stdout.decode() + result.stderr.decode()
    report = "\n".join(line[:300] for line in output.splitlines())  # bodies can be huge
    assert result.returncode == 0, report[-8000:]
    assert "passed" in output


async def test_api_edges_answer_json_errors_with_4xx(start_engine: StartEngine, room: str) -> None:
    engine = await start_engine()
    base = address(engine).http_url
    admin = {"Authorization": f"Bearer {engine.mint_token('host', 'ops', role='admin')}"}
    pin = f"/api/v1/rooms/{room}/pin"
    async with httpx.AsyncClient(base_url=base) as http:
        document = (await http.get("/api/openapi.json")).json()
        assert (
            document["openapi"].startswith("3.1")
            and pin.replace(room, "{room}") in document["paths"]
        )
        cases = [
            (await http.post(pin, content=b"{not json", headers=admin), 400, "bad_frame"),
            (await http.post(pin, json=["a list"], headers=admin), 400, "bad_field"),
            (await http.post(pin, json={"text": "x", "extra": 1}, headers=admin), 400, "bad_field"),
            (await http.post(pin, json={"text": 5}, headers=admin), 400, "bad_field"),
            (await http.post(pin, content=b"{" + b" " * (1 << 20) + b"}", headers=admin), 413,
             "too_large"),
            (await http.post(pin, json={"text": "x"}), 401, "bad_token"),
            (await http.post("/api/v1/nothing/here", json={}, headers=admin), 404,
             "unknown_command"),
            (await http.get(f"/api/v1/rooms/{room}", headers=admin), 404, "room_not_found"),
        ]  # fmt: skip
        for response, status, code in cases:
            assert (response.status_code, response.json()["error"]["code"]) == (status, code)
        assert cases[5][0].headers["www-authenticate"] == "Bearer"
        wrong_method = await http.delete(pin, headers=admin)
        assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["allow"]
        ok = await http.post(pin, json={"text": "  Flash sale at 8!  "}, headers=admin)
        assert ok.status_code == 200 and ok.json()["text"] == "Flash sale at 8!"
        assert ok.json()["by"] == "host"
