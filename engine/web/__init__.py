"""The browser side, served by the node's HTTP server (docs/client.md):

* `/demo/`: the JS client (`live-client.js`, `live-control.js`, `msgpack.js`), the demo viewer
  page and the anchor console (static files shipped in the wheel, `engine/web/static/`), when
  `demo_pages` is on;
* `/demo/token`: mints demo tokens (viewer or anchor) with the node's key, **only in dev mode**;
  without `--dev` the route does not exist (404), so production never hands out tokens.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from engine.identity import MAX_NAME_CHARS, Role, valid_id

if TYPE_CHECKING:
    from engine.node import Engine

log = structlog.get_logger("engine.web")

DEMO_PATH: Final = "/demo"
TOKEN_PATH: Final = "/demo/token"
DEMO_TOKEN_TTL_S: Final = 3600.0
DEMO_ROLES: Final = (Role.VIEWER, Role.ANCHOR)  # never admin: an anchor rules its room only

MintToken = Callable[..., str]
Urls = Callable[[], tuple[str, str]]  # the node's (viewer WebSocket URL, control WebSocket URL)


def engine_web_routes(engine: Engine) -> list[BaseRoute]:
    """`web_routes` for a node: its config, its signing key, its URLs once it listens."""

    def urls() -> tuple[str, str]:
        address = engine.address
        return (address.ws_url, address.control_url) if address is not None else ("", "")

    config = engine.config
    return web_routes(pages=config.demo_pages, dev=config.dev, mint=engine.mint_token, urls=urls)


def demo_banner(http_url: str, *, dev: bool, room: str = "demo") -> str:
    """The lines `engine run` prints about the pages (`make run`: open these two)."""
    if not dev:
        return f"  JS client:        {http_url}{DEMO_PATH}/live-client.js  (docs/client.md)\n"
    return (
        f"  demo viewer:      {http_url}{DEMO_PATH}/viewer.html?room={room}\n"
        f"  anchor console:   {http_url}{DEMO_PATH}/console.html?room={room}\n"
    )


def web_routes(*, pages: bool, dev: bool, mint: MintToken, urls: Urls) -> list[BaseRoute]:
    """The demo pages (`pages`) and, in dev mode only, the demo token endpoint."""
    routes: list[BaseRoute] = []
    if dev:
        routes.append(Route(TOKEN_PATH, _token_endpoint(mint, urls), methods=["GET"]))
    if pages:
        static = StaticFiles(packages=[("engine.web", "static")], html=True)
        routes += [
            Route(DEMO_PATH, _to_index),
            Mount(DEMO_PATH, app=static, name="demo"),
        ]
    return routes


async def _to_index(request: Request) -> Response:
    return RedirectResponse(DEMO_PATH + "/")


def _refuse(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _token_endpoint(mint: MintToken, urls: Urls) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        query = request.query_params
        room = query.get("room") or "demo"
        user = query.get("user") or f"guest-{secrets.token_hex(2)}"
        role = query.get("role") or Role.VIEWER.value
        name = (query.get("name") or "").strip()[:MAX_NAME_CHARS] or None
        device = query.get("device") or None
        for field, value in (("room", room), ("user", user), ("device", device)):
            if value is not None and not valid_id(value):
                return _refuse(400, "bad_field", f"{field}: must be 1..64 of [A-Za-z0-9_.:@-]")
        if role not in DEMO_ROLES:
            return _refuse(403, "forbidden", "demo tokens are viewer or anchor tokens")
        expires_at = time.time() + DEMO_TOKEN_TTL_S
        token = mint(user=user, room=room, role=role, ttl_s=DEMO_TOKEN_TTL_S, name=name,
                     device=device)  # fmt: skip
        ws_url, control_url = urls()
        log.info("demo token minted", user=user, room=room, role=role)
        body = {"token": token, "user": user, "room": room, "role": role, "name": name or user,
                "expires_at": int(expires_at * 1000), "ws_url": ws_url,
                "control_url": control_url}  # fmt: skip
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return endpoint
