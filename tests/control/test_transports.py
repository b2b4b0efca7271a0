"""The same command over the control WebSocket, the Unix socket, HTTP and `engine ctl` (over the
Unix socket and over HTTP) gives the same result and the same error codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from engine import Engine
from tests.conftest import StartEngine
from tests.control.support import (
    Answer,
    address,
    ctl_call,
    http_call,
    unix_call,
    ws_call,
)

pytestmark = pytest.mark.integration

Transport = Callable[..., Awaitable[Answer]]


def transports(engine: Engine, socket_path: str, token: str) -> dict[str, Transport]:
    url = address(engine).http_url

    def bind(fn: Callable[..., Awaitable[Answer]], *head: Any) -> Transport:
        return lambda name, room=None, **params: fn(*head, name, room, **params)

    return {
        "http": bind(http_call, engine, token),
        "control websocket": bind(ws_call, engine, token),
        "unix socket": bind(unix_call, socket_path),
        "engine ctl (unix)": bind(ctl_call, "unix", socket_path, None),
        "engine ctl (http)": bind(ctl_call, "http", url, token),
    }


async def same_everywhere(ways: dict[str, Transport], name: str, room: str | None,
                          **params: Any) -> Answer:  # fmt: skip
    answers = {via: await call(name, room, **params) for via, call in ways.items()}
    first = next(iter(answers.values()))
    for via, answer in answers.items():
        assert (answer.result, answer.code) == (first.result, first.code), (via, answers)
    return first


async def test_every_transport_gives_the_same_results_and_error_codes(
    start_engine: StartEngine, room: str, socket_path: str
) -> None:
    path = socket_path
    engine = await start_engine(control_socket=path)
    assert address(engine).control_socket == path
    ways = transports(engine, path, engine.mint_token("host", "ops", role="admin"))
    await engine.command("create_room", room=room, title="Spring tea", anchor="anchor-1",
                         starts_at=4_000_000_000_000, preview="Tea at 8")  # fmt: skip
    await engine.command("reserve", room=room, user="u1")
    await engine.command("share_recorded", room=room, share_id="s-1", user="u1")

    info = await same_everywhere(ways, "get_room", room)
    assert info.result["title"] == "Spring tea" and info.result["reservations"] == 1
    again = await same_everywhere(ways, "reserve", room, user="u1")  # idempotent
    assert again.result["new"] is False and again.result["reservations"] == 1
    share = await same_everywhere(ways, "share_recorded", room, share_id="s-1", user="u1")
    assert share.result["new"] is False
    phrases = await same_everywhere(ways, "set_phrases", room, phrases=["666", "Want it!"])
    assert phrases.result == {"phrases": [{"id": 0, "text": "666"}, {"id": 1, "text": "Want it!"}]}
    assert (await same_everywhere(ways, "unpin", room)).result == {"ok": True}

    refusals = [
        ("start_room", "never-created", {}, "room_not_found"),
        ("create_room", room, {"title": "again", "anchor": "a"}, "room_exists"),
        ("pin", room, {"text": "   "}, "bad_field"),
        ("push_popup", room, {"kind": "Not A Kind"}, "bad_field"),
        ("reserve", room, {"user": "has space"}, "bad_field"),
        ("get_room", "bad room id!", {}, "bad_field"),
    ]
    for name, target, params, code in refusals:
        assert (await same_everywhere(ways, name, target, **params)).code == code, name

    await engine.command("end_room", room=room)
    ended = await same_everywhere(ways, "start_room", room)
    assert ended.code == "bad_state"
    assert (await same_everywhere(ways, "reserve", room, user="u2")).code == "bad_state"
