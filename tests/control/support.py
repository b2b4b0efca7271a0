"""Clients for every control transport, for the tests: HTTP, the control WebSocket, the Unix
socket and `engine ctl` (run in a worker thread: it is a blocking program)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from engine import Engine
from engine.cli import main
from engine.control.registry import jsonrpc_code


@dataclass
class Answer:
    """One call's outcome, the same shape for every transport."""

    result: Any = None
    code: str | None = None  # the engine's error code, when refused
    status: int | None = None  # HTTP status / JSON-RPC numeric code / ctl exit code


def address(engine: Engine) -> Any:
    assert engine.address is not None
    return engine.address


async def http_call(
    engine: Engine, token: str | None, name: str, room: str | None = None, **params: Any
) -> Answer:
    command = engine.control.registry.get(name)
    path = command.http_path.replace("{room}", room or "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=address(engine).http_url, timeout=10) as http:
        if command.read_only:
            response = await http.get(path, headers=headers)
        else:
            response = await http.post(path, headers=headers, json=params)
    body = response.json()
    if response.is_error:
        return Answer(code=body["error"]["code"], status=response.status_code)
    return Answer(result=body, status=response.status_code)


def _answer(message: dict[str, Any]) -> Answer:
    if "error" in message:
        error = message["error"]
        assert error["code"] == jsonrpc_code(error["data"]["code"])
        return Answer(code=error["data"]["code"], status=error["code"])
    return Answer(result=message["result"])


class ControlSocket:
    """A control WebSocket client: calls, and the live-number notifications it receives."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.ids = 0
        self.numbers: list[dict[str, Any]] = []

    async def call(self, name: str, **params: Any) -> Answer:
        self.ids += 1
        request = {"jsonrpc": "2.0", "id": self.ids, "method": name, "params": params}
        await self.ws.send_message(orjson.dumps(request).decode())
        with trio.fail_after(10):
            while True:
                message = orjson.loads(await self.ws.get_message())
                if message.get("method") == "live_numbers":
                    self.numbers.append(message["params"])
                elif message.get("id") == self.ids:
                    return _answer(message)

    async def next_numbers(self, timeout: float = 10) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                message = orjson.loads(await self.ws.get_message())
                if message.get("method") == "live_numbers":
                    self.numbers.append(message["params"])
                    return message["params"]  # type: ignore[no-any-return]


@asynccontextmanager
async def control_socket(
    engine: Engine, token: str, room: str | None = None
) -> AsyncIterator[ControlSocket]:
    url = address(engine).control_url + f"?token={token}" + (f"&room={room}" if room else "")
    async with open_websocket_url(url, subprotocols=["jsonrpc"]) as ws:
        yield ControlSocket(ws)


async def ws_call(
    engine: Engine, token: str, name: str, room: str | None = None, **params: Any
) -> Answer:
    """One call on a fresh control WebSocket (room given as a param, like any client may)."""
    async with control_socket(engine, token) as ctl:
        if room is not None:
            params["room"] = room
        return await ctl.call(name, **params)


async def unix_call(path: str, name: str, room: str | None = None, **params: Any) -> Answer:
    if room is not None:
        params["room"] = room
    request = {"jsonrpc": "2.0", "id": 7, "method": name, "params": params}
    stream = await trio.open_unix_socket(path)
    async with stream:
        await stream.send_all(orjson.dumps(request) + b"\n")
        buffer = b""
        with trio.fail_after(10):
            while not buffer.endswith(b"\n"):
                buffer += await stream.receive_some(65536)
    return _answer(orjson.loads(buffer))


async def ctl(*argv: str) -> tuple[int, str, str]:
    """`engine ctl ARGV...` in a worker thread: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        import contextlib

        with contextlib.redirect_stderr(err):
            return main(["ctl", *argv], out=out)

    status = await trio.to_thread.run_sync(run)
    return status, out.getvalue(), err.getvalue()


def cli_flags(params: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for name, value in params.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            flags += [flag, *map(str, value)]
        elif isinstance(value, dict):
            flags += [flag, orjson.dumps(value).decode()]
        else:
            flags += [flag, str(value)]
    return flags


async def ctl_call(
    via: str, target: str, token: str | None, name: str, room: str | None = None, **params: Any
) -> Answer:
    """`engine ctl --json` over the Unix socket (via="unix", target=path) or HTTP (target=url)."""
    head = ["--socket", target] if via == "unix" else ["--url", target, "--token", token or ""]
    argv = [*head, "--json", name.replace("_", "-")]
    if room is not None:
        argv += ["--room", room]
    status, out, err = await ctl(*argv, *cli_flags(params))
    body = orjson.loads(out) if out.strip() else {}
    if status != 0:
        assert "error" in body, (status, out, err)
        return Answer(code=body["error"]["code"], status=status)
    return Answer(result=body, status=status)
