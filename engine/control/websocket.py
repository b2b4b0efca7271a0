"""The control WebSocket for anchors and their operators: `ws://HOST:HTTP_PORT/v1/control?token=
<JWT>[&room=<room>]` on the node's HTTP server.

* Anchor or admin tokens only (a viewer token is closed with 4012 `forbidden`; bad and expired
  tokens with 4001 / 4002, as on the viewer socket); an anchor controls only its own room (4003).
* Messages are JSON-RPC 2.0 (`jsonrpc.py`): the methods are the registry's commands; room
  commands default to the connection's room (`room` in the URL, else the token's).
* About once a second (`numbers_interval_s`) the engine pushes the notification
  `{"jsonrpc": "2.0", "method": "live_numbers", "params": {...}}`: the `live_numbers` result
  (online, peak, likes, danmaku rate, running sales) of the connection's room.
* The connection is closed with 4002 when its token expires.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

import orjson
import structlog
import trio
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from engine.control import jsonrpc
from engine.control.registry import Caller
from engine.errors import CLOSE_CODE_FOR, AuthError, EngineError, ErrorCode
from engine.identity import Identity, Role, valid_id

if TYPE_CHECKING:
    from engine.control.plane import ControlPlane

log = structlog.get_logger("engine.control.ws")

CONTROL_PATH: Final = "/v1/control"
MAX_MESSAGE_BYTES: Final = 1 << 20
SUBPROTOCOLS: Final = ("jsonrpc", "json")
POLICY_VIOLATION: Final = 1008  # the close code for a refusal without a code of its own


def control_route(plane: ControlPlane) -> WebSocketRoute:
    async def endpoint(websocket: WebSocket) -> None:
        await ControlSession(plane, websocket).run()

    return WebSocketRoute(CONTROL_PATH, endpoint)


def _token(websocket: WebSocket) -> str | None:
    token = websocket.query_params.get("token")
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    if not token and scheme.lower() == "bearer":
        token = value.strip()
    return token or None


class ControlSession:
    def __init__(self, plane: ControlPlane, websocket: WebSocket) -> None:
        self.plane = plane
        self.ws = websocket
        self._send_lock = trio.Lock()
        self._closed = False

    async def run(self) -> None:
        ws = self.ws
        proposed = ws.scope.get("subprotocols") or []
        await ws.accept(subprotocol=next((p for p in SUBPROTOCOLS if p in proposed), None))
        try:
            identity, room = self._admit()
        except EngineError as exc:
            log.info("control socket refused", code=exc.code.value, reason=exc.message)
            await self._close(exc.code, exc.message)
            return
        caller = Caller.of(identity)
        log.info("control socket opened", user=identity.user, role=identity.role.value, room=room)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._push_numbers, caller, room)
            nursery.start_soon(self._expire, identity, nursery.cancel_scope)
            try:
                await self._read_loop(caller, room)
            finally:
                nursery.cancel_scope.cancel()
        log.info("control socket closed", user=identity.user, room=room)

    def _admit(self) -> tuple[Identity, str]:
        verifier = self.plane.engine.verifier
        identity = verifier.verify(_token(self.ws))
        if not identity.role.is_staff:
            raise AuthError("viewer tokens cannot use the control socket", code=ErrorCode.FORBIDDEN)
        room = self.ws.query_params.get("room") or identity.room
        if not valid_id(room):
            raise AuthError("room is not a room id", code=ErrorCode.BAD_FIELD)
        if identity.role is Role.ANCHOR and room != identity.room:
            raise AuthError("an anchor token controls only its own room", code=ErrorCode.WRONG_ROOM)
        return identity, room

    async def _read_loop(self, caller: Caller, room: str) -> None:
        async def call(method: str, params: Any) -> Any:
            return await self.plane.call(caller, method, params, transport="ws", default_room=room)

        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            size = len(data.encode()) if isinstance(data, str) else len(data)
            if size > MAX_MESSAGE_BYTES:
                error = jsonrpc.error_object(ErrorCode.TOO_LARGE, f"over {MAX_MESSAGE_BYTES} bytes")
                await self._send(jsonrpc.response(None, error=error))
                continue
            answer = await jsonrpc.handle(data, call)
            if answer is not None:
                await self._send(answer)

    async def _push_numbers(self, caller: Caller, room: str) -> None:
        plane, interval = self.plane, self.plane.engine.config.numbers_interval_s
        while True:
            try:
                numbers = await plane.registry.call(
                    plane.engine, caller, "live_numbers", {}, room=room
                )
            except EngineError as exc:
                log.warning("live numbers unavailable", room=room, error=exc.message)
            else:
                await self._send(jsonrpc.notification("live_numbers", numbers))
            await trio.sleep(interval)

    async def _expire(self, identity: Identity, session: trio.CancelScope) -> None:
        leeway = self.plane.engine.config.token_leeway_s
        await trio.sleep(max(0.0, identity.expires_at + leeway - time.time()))
        await self._close(ErrorCode.TOKEN_EXPIRED, "token expired")
        session.cancel()

    async def _send(self, payload: bytes | dict[str, Any]) -> None:
        if isinstance(payload, dict):
            payload = orjson.dumps(payload)
        async with self._send_lock:
            if self._closed:
                return
            try:
                await self.ws.send_text(payload.decode())
            except Exception:  # the peer is gone: the reader sees the disconnect
                self._closed = True

    async def _close(self, code: ErrorCode, reason: str) -> None:
        async with self._send_lock:
            if self._closed:
                return
            self._closed = True
            close = CLOSE_CODE_FOR.get(code, POLICY_VIOLATION)
            text = f"{code.value}: {reason}".encode()[:120].decode("utf-8", "ignore")
            try:
                await self.ws.close(code=int(close), reason=text)
            except Exception:  # already gone
                pass
