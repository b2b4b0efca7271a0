"""The control plane's HTTP API for load scenarios: commands called by name.

Paths come from the engine's own OpenAPI document (`/api/openapi.json`, one operation per
command, its `operationId` the command's name), so the load scenarios follow the engine's routes
(`create_room` is `POST /api/v1/rooms/{room}`, `start_seckill` is
`POST /api/v1/rooms/{room}/start_seckill`, ...) without a copy of them. `Control` is the async
client (the swarm, on Trio); the locust scenario calls `operations()` and sends the requests
with locust's own HTTP client, so they show in its statistics.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import httpx

OPENAPI_PATH: Final = "/api/openapi.json"


class ControlError(Exception):
    """A refused command: the engine's error code (`sale_exists`, `bad_state`, ...)."""

    def __init__(self, command: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{command}: {status} {code}: {message}")
        self.command, self.status, self.code = command, status, code


def operations(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Command name -> (HTTP method, path template with `{room}`), from the OpenAPI document."""
    out: dict[str, tuple[str, str]] = {}
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            if isinstance(operation, dict) and "operationId" in operation:
                out[operation["operationId"]] = (method.upper(), path)
    return out


def error_of(command: str, status: int, body: Any) -> ControlError:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return ControlError(command, status, str(error.get("code")), str(error.get("message")))
    return ControlError(command, status, "http_error", str(body)[:200])


class Control:
    """Control commands over HTTP with a bearer token (admin or the room's anchor)."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, token: str) -> None:
        self.http, self.base, self.token = http, base_url.rstrip("/"), token
        self.ops: dict[str, tuple[str, str]] = {}
        self.calls: list[dict[str, Any]] = []  # every call: command, status, seconds, code

    async def load(self) -> None:
        response = await self.http.get(self.base + OPENAPI_PATH)
        response.raise_for_status()
        self.ops = operations(response.json())

    def with_token(self, token: str) -> Control:
        other = Control(self.http, self.base, token)
        other.ops, other.calls = self.ops, self.calls
        return other

    async def call(self, command: str, room: str, **params: Any) -> dict[str, Any]:
        method, path = self.ops[command]
        url = self.base + path.replace("{room}", room)
        headers = {"Authorization": f"Bearer {self.token}"}
        started = time.monotonic()
        if method == "GET":
            response = await self.http.get(url, headers=headers)
        else:
            response = await self.http.request(method, url, headers=headers, json=params)
        body = response.json()
        code = "ok" if response.status_code < 400 else str((body.get("error") or {}).get("code"))
        self.calls.append({"command": command, "status": response.status_code, "code": code,
                           "s": round(time.monotonic() - started, 4)})  # fmt: skip
        if response.status_code >= 400:
            raise error_of(command, response.status_code, body)
        result: dict[str, Any] = body
        return result
