"""`ControlPlane`: the registry of one node and the one door every transport goes through
(`call`), which adds the metric and the log line of each call. `routes()` are the HTTP API, its
OpenAPI document and the control WebSocket (mounted on the node's HTTP server); `serve_unix` is
the operators' Unix socket."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog
import trio
from prometheus_client import Counter
from starlette.routing import BaseRoute

from engine.control.commands import build_registry
from engine.control.registry import Caller, Registry
from engine.errors import EngineError, ErrorCode

if TYPE_CHECKING:
    from engine.node import Engine

log = structlog.get_logger("engine.control")


class ControlPlane:
    def __init__(self, engine: Engine, registry: Registry | None = None) -> None:
        self.engine = engine
        self.registry = registry if registry is not None else build_registry()
        self._calls = Counter(
            "engine_control_calls",
            "Control commands called, by command, answer code and transport",
            ["command", "code", "transport"],
            registry=engine.metrics.registry,
        )

    async def call(
        self,
        caller: Caller,
        name: str,
        params: Mapping[str, Any] | None,
        *,
        transport: str,
        room: str | None = None,
        default_room: str | None = None,
    ) -> dict[str, Any]:
        """Run a command for `caller`; its result, or EngineError with the code to answer."""
        started = trio.current_time()
        code, target = "ok", room or default_room
        try:
            call = self.registry.prepare(caller, name, params, room=room, default_room=default_room)
            target = call.room or None
            return await self.registry.invoke(self.engine, call)
        except EngineError as exc:
            code = exc.code.value
            raise
        except Exception:
            code = ErrorCode.INTERNAL.value
            log.exception("control command failed", command=name, transport=transport)
            raise EngineError("internal error", code=ErrorCode.INTERNAL) from None
        finally:
            command = name if isinstance(name, str) and name in self.registry else "?"
            self._calls.labels(command, code, transport).inc()
            log.info("control call", command=command, room=target, code=code,
                     caller=caller.label, user=caller.user, transport=transport,
                     ms=round((trio.current_time() - started) * 1000, 1))  # fmt: skip

    def routes(self) -> list[BaseRoute]:
        from engine.control.api import api_routes
        from engine.control.websocket import control_route

        return [*api_routes(self), control_route(self)]

    async def serve_unix(
        self, path: str, *, task_status: trio.TaskStatus[str | None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        from engine.control.unix import serve_unix

        await serve_unix(self, path, task_status=task_status)
