"""docs/control.md and `engine ctl` come from the registry: the document is current, every command
has its subcommand with --help, output is readable or JSON, and failures have exit codes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from engine.cli import main
from engine.control.commands import build_registry
from engine.control.docs import control_markdown
from engine.control.openapi import openapi_document
from tests.conftest import StartEngine
from tests.control.support import address, ctl

ROOT = Path(__file__).parent.parent.parent


def test_control_doc_is_generated_from_the_registry() -> None:
    doc = ROOT / "docs" / "control.md"
    assert doc.read_text() == control_markdown(build_registry()), (
        "run: engine ctl --markdown > docs/control.md"
    )


def test_every_command_is_described_once_and_served_everywhere() -> None:
    registry = build_registry()
    document = openapi_document(registry)
    operations = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    assert operations == {command.name for command in registry}
    doc = control_markdown(registry)
    for command in registry:
        assert f"### `{command.name}`" in doc
        out = io.StringIO()
        with pytest.raises(SystemExit) as exit_:
            main(["ctl", command.cli_name, "--help"], out=out)
        assert exit_.value.code == 0


def test_ctl_help_lists_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "engine.cli", "ctl", "--help"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0
    for command in build_registry():
        assert command.cli_name in result.stdout


@pytest.mark.integration
async def test_ctl_prints_readable_text_or_json_and_exits_with_a_status(
    start_engine: StartEngine, room: str, socket_path: str
) -> None:
    path = socket_path
    engine = await start_engine(control_socket=path)
    status, out, _ = await ctl("--socket", path, "create-room", "--room", room, "--title",
                               "Spring tea", "--anchor", "a1", "--preview", "Tea at 8")  # fmt: skip
    assert status == 0 and "title: Spring tea\n" in out and "status: scheduled\n" in out
    status, out, _ = await ctl("--socket", path, "--json", "get-room", "--room", room)
    assert status == 0 and orjson.loads(out)["preview"] == "Tea at 8"
    status, out, _ = await ctl("--socket", path, "push-popup", "--room", room, "--kind",
                               "notice", "--data", '{"text": "hi"}', "--ttl-s", "5")  # fmt: skip
    assert status == 0 and "kind: notice" in out and "text: hi" in out
    status, out, _ = await ctl("--socket", path, "set-phrases", "--room", room, "--phrases",
                               "666", "Want it!")  # fmt: skip
    assert status == 0 and "- id: 0" in out
    status, out, err = await ctl("--socket", path, "start-room", "--room", "nowhere")
    assert status == 1 and err.startswith("error: room_not_found:")
    status, out, _ = await ctl("--socket", path, "--json", "start-room", "--room", "nowhere")
    assert status == 1 and orjson.loads(out)["error"]["code"] == "room_not_found"
    status, _, err = await ctl("--socket", "/tmp/no-such-engine.sock", "get-room", "--room", room)
    assert status == 3 and "cannot reach" in err
    http = ["--url", address(engine).http_url, "--token", engine.mint_token("v", room)]
    status, _, err = await ctl(*http, "get-room", "--room", room)
    assert status == 1 and err.startswith("error: forbidden:")
