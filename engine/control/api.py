"""The HTTP API: one route per command (generated from the registry), mounted under /api on the
node's HTTP server (hypercorn on Trio), with its OpenAPI document at /api/openapi.json.

* `Authorization: Bearer <token>`: the same HS256 tokens as viewers; admin tokens may call every
  command on every room, anchor tokens the staff commands on their own room.
* Room commands take the room in the path (`/api/v1/rooms/{room}/...`), parameters as a JSON
  object in the body (POST) and answer JSON: the result, or `{"error": {"code", "message"}}`
  with a 4xx status for anything the client sent (see `registry.http_status`); 503 only when
  Redis is unreachable.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from engine.control.openapi import OPENAPI_PATH, openapi_document
from engine.control.registry import Caller, Command, http_status
from engine.errors import AuthError, EngineError, ErrorCode
from engine.identity import TokenVerifier

if TYPE_CHECKING:
    from engine.control.plane import ControlPlane

MAX_BODY_BYTES: Final = 1 << 20  # a full product list (500 products) fits
API_PREFIX: Final = "/api"


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: EngineError) -> JSON:
    status = http_status(exc.code.value)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": {"code": exc.code.value, "message": exc.message}}
    return JSON(body, status_code=status, headers=headers)


OVERSIZE_DRAIN_BYTES: Final = 16 << 20


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def authenticate(verifier: TokenVerifier, token: str | None) -> Caller:
    if not token:
        raise AuthError("send Authorization: Bearer <token>", code=ErrorCode.BAD_TOKEN)
    return Caller.of(verifier.verify(token))


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The body's JSON object (an empty body is `{}`); too_large, bad_frame, bad_field."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > OVERSIZE_DRAIN_BYTES:
        raise EngineError(f"body over {limit} bytes", code=ErrorCode.TOO_LARGE)
    body = b""
    too_large = False
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if too_large or seen > limit:
            # Read a moderate oversize body to its end before answering: a server that answers
            # 413 and closes while the client is still sending leaves the client with a reset
            # connection instead of the clear error.
            too_large = True
            if seen > OVERSIZE_DRAIN_BYTES:
                break
            continue
        body += chunk
    if too_large:
        raise EngineError(f"body over {limit} bytes", code=ErrorCode.TOO_LARGE)
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EngineError(f"body is not JSON: {exc}"[:200], code=ErrorCode.BAD_FRAME) from None
    if not isinstance(value, dict):
        raise EngineError("the body must be a JSON object", code=ErrorCode.BAD_FIELD)
    return value


Endpoint = Callable[[Request], Awaitable[Response]]


def _endpoint(plane: ControlPlane, by_method: dict[str, Command]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        command = by_method[request.method if request.method != "HEAD" else "GET"]
        try:
            caller = authenticate(plane.engine.verifier, bearer_token(request))
            params = {} if command.read_only else await read_json(request)
            result = await plane.call(caller, command.name, params, transport="http",
                                      room=request.path_params.get("room"))  # fmt: skip
        except EngineError as exc:
            return error_response(exc)
        return JSON(result, status_code=201 if command.creates else 200)

    return endpoint


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    error = EngineError(f"no API path {scope.get('path', '')[:80]}", code=ErrorCode.UNKNOWN_COMMAND)
    await error_response(error)(scope, receive, send)


def api_routes(plane: ControlPlane) -> list[BaseRoute]:
    by_path: dict[str, dict[str, Command]] = {}
    for command in plane.registry:
        by_path.setdefault(command.http_path, {})[command.http_method] = command
    document = orjson.dumps(openapi_document(plane.registry))

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    routes: list[BaseRoute] = [Route(OPENAPI_PATH.removeprefix(API_PREFIX), openapi)]
    for path, by_method in by_path.items():
        routes.append(Route(path.removeprefix(API_PREFIX), _endpoint(plane, by_method),
                            methods=list(by_method)))  # fmt: skip
    mount = Mount(API_PREFIX, app=Router(routes=routes, default=_not_found))
    # a room id in the path may hold any character, newlines too: they must reach the route (and
    # be refused there, 400), not miss the mount (a plain-text 404)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return [mount]
