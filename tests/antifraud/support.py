"""Helpers for the anti-fraud tests: viewers that come from a chosen IP (through the engine's
trusted-proxy header), refused joins, Redis reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from engine import Engine
from engine.store import keys
from engine.store.store import open_redis
from tests.support import Viewer

# what the anti-fraud tests run with: the test client is a trusted proxy, so X-Forwarded-For
# gives each viewer its own IP; limits are generous unless a test sets its own
AF = {"trusted_proxies": "127.0.0.1", "abuse_strikes": 1000}


class Refused(AssertionError):
    """A viewer that expected to join was closed before its welcome."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"refused: {code} {reason}")
        self.code, self.reason = code, reason


def url(engine: Engine) -> str:
    assert engine.address is not None
    return engine.address.ws_url


@asynccontextmanager
async def visitor(
    engine: Engine, user: str, room: str, *, ip: str = "198.51.100.1", device: str | None = None,
    codec: str = "json", role: str = "viewer",
) -> AsyncIterator[Viewer]:  # fmt: skip
    """A viewer joined from `ip` (asserts the welcome)."""
    token = engine.mint_token(user, room, role=role, device=device)
    headers = [(b"x-forwarded-for", ip.encode())]
    async with open_websocket_url(f"{url(engine)}?token={token}", subprotocols=[codec],
                                  extra_headers=headers) as ws:  # fmt: skip
        v = Viewer(ws, codec)
        try:
            first = await v.recv(timeout=30)
        except ConnectionClosed as exc:
            raise Refused(exc.reason.code, exc.reason.reason or "") from None
        assert first["type"] == "welcome", first
        v.welcome = first  # type: ignore[attr-defined]
        yield v


async def refused(
    engine: Engine, user: str, room: str, *, ip: str = "198.51.100.1", device: str | None = None
) -> tuple[int, str]:
    """Join and expect to be closed before the welcome: (close code, reason)."""
    token = engine.mint_token(user, room, device=device)
    headers = [(b"x-forwarded-for", ip.encode())]
    try:
        async with open_websocket_url(f"{url(engine)}?token={token}", subprotocols=["json"],
                                      extra_headers=headers) as ws:  # fmt: skip
            with trio.fail_after(30):
                message = await ws.get_message()
            raise AssertionError(f"{user} was let in: {message[:200]!r}")
    except ConnectionClosed as exc:
        return exc.reason.code, exc.reason.reason or ""
    except HandshakeError as exc:  # pragma: no cover - the engine always completes the upgrade
        raise AssertionError(f"handshake failed: {exc}") from exc


async def events(redis_url: str, room: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    async with open_redis(redis_url) as redis:
        entries = await redis.xrange(keys.events(room))
    out = []
    for entry in entries:
        fields = {k.decode(): v for k, v in entry.field_values.items()}
        kind = fields["type"].decode()
        if kind.startswith(prefix):
            out.append((kind, orjson.loads(fields["data"])))
    return out


async def until_closed(v: Viewer, timeout: float = 30) -> tuple[int, str]:
    return await v.closed(timeout=timeout)


async def drain(v: Viewer, seconds: float = 0.3) -> list[dict[str, Any]]:
    """Whatever arrives within `seconds`."""
    got = []
    with trio.move_on_after(seconds):
        while True:
            got.append(await v.recv(timeout=seconds + 1))
    return got
