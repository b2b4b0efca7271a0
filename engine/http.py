"""The node's HTTP side, served by hypercorn on Trio: `/metrics` (Prometheus), `/healthz`, and
the control plane's HTTP API (/api) and control WebSocket (/v1/control), see engine/control/."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from engine.metrics import Metrics

HealthCheck = Callable[[], Awaitable[dict[str, object]]]


def build_app(metrics: Metrics, health: HealthCheck, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """/healthz, /metrics, and `routes` (the control plane's API and WebSocket)."""

    async def healthz(request: Request) -> JSONResponse:
        report = await health()
        return JSONResponse(report, status_code=200 if report.get("ok") else 503)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", prometheus), *routes])


async def serve_http(
    app: Starlette,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; `started(port)` with the bound port."""
    config = HypercornConfig()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        # our cancellation is the shutdown, not hypercorn's own signal handling
        await serve(app, config, shutdown_trigger=trio.sleep_forever, task_status=task_status)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        task_status.started(int(binds[0].rsplit(":", 1)[1]))
