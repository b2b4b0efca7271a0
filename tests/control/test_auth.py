"""Who may call what, on every transport: a viewer token no command, an anchor token only its own
room's staff commands, an admin token everything; expired and wrong-key tokens refused (HTTP 401,
the control WebSocket closes 4001/4002, `engine ctl` exits 1 with the code); the Unix socket is
trusted local access guarded by its file mode 0600."""

from __future__ import annotations

import os
import stat
import time

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from engine import Engine
from engine.identity import mint_token
from tests.conftest import StartEngine
from tests.control.support import (
    address,
    control_socket,
    ctl_call,
    http_call,
    unix_call,
)

pytestmark = pytest.mark.integration


def tokens(engine: Engine, room: str) -> dict[str, str]:
    keys = engine.keys
    return {
        "viewer": engine.mint_token("v1", room),
        "anchor": engine.mint_token("anchor-1", room, role="anchor"),
        "other anchor": engine.mint_token("anchor-2", "other-room", role="anchor"),
        "admin": engine.mint_token("host", "ops", role="admin"),
        "expired": mint_token(keys, user="host", room="ops", role="admin",
                              now=time.time() - 7200, ttl_s=60),
        "wrong key": mint_token({"test-a": b"z" * 40}, user="host", room="ops", role="admin"),
        "garbage": "not.a.token",
    }  # fmt: skip


# (token, command, params, expected code or None for success) on `room`
MATRIX = [
    ("viewer", "pin", {"text": "hi"}, "forbidden"),
    ("viewer", "live_numbers", {}, "forbidden"),
    ("viewer", "get_room", {}, "forbidden"),
    ("other anchor", "pin", {"text": "hi"}, "wrong_room"),
    ("other anchor", "end_room", {}, "wrong_room"),
    ("anchor", "pin", {"text": "hi"}, None),
    ("anchor", "get_room", {}, None),
    ("anchor", "create_room", {"title": "mine", "anchor": "anchor-1"}, "forbidden"),
    ("anchor", "reserve", {"user": "u1"}, "forbidden"),
    ("anchor", "share_recorded", {"share_id": "s1", "user": "u1"}, "forbidden"),
    ("admin", "pin", {"text": "hi"}, None),
    ("admin", "reserve", {"user": "u1"}, None),
    ("expired", "pin", {"text": "hi"}, "token_expired"),
    ("wrong key", "pin", {"text": "hi"}, "bad_token"),
    ("garbage", "pin", {"text": "hi"}, "bad_token"),
]


async def test_http_and_ctl_over_http_refuse_what_a_token_may_not_do(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(control_socket="none")
    await engine.command("create_room", room=room, title="Auth", anchor="anchor-1")
    given = tokens(engine, room)
    url = address(engine).http_url
    for who, name, params, code in MATRIX:
        answer = await http_call(engine, given[who], name, room, **params)
        assert answer.code == code, (who, name, answer)
        expected_status = {None: 200, "forbidden": 403, "wrong_room": 403,
                           "token_expired": 401, "bad_token": 401}[code]  # fmt: skip
        assert answer.status == expected_status, (who, name, answer)
        by_ctl = await ctl_call("http", url, given[who], name, room, **params)
        assert by_ctl.code == code, (who, name, "ctl", by_ctl)
    assert (await http_call(engine, None, "pin", room, text="hi")).code == "bad_token"
    # an admin token's room claim does not limit it
    assert (await http_call(engine, given["admin"], "get_room", room)).result["room"] == room


async def refused_with(url: str) -> tuple[int, str]:
    async with open_websocket_url(url) as ws:
        with trio.fail_after(5):
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                return exc.reason.code, exc.reason.reason or ""
    raise AssertionError("not closed")


async def test_control_websocket_refuses_bad_tokens_and_other_rooms(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(control_socket="none")
    await engine.command("create_room", room=room, title="Auth", anchor="anchor-1")
    given = tokens(engine, room)
    base = address(engine).control_url
    refusals = {
        f"{base}?token={given['viewer']}": (4012, "forbidden"),
        f"{base}?token={given['expired']}": (4002, "token_expired"),
        f"{base}?token={given['wrong key']}": (4001, "bad_token"),
        f"{base}?token={given['garbage']}": (4001, "bad_token"),
        base: (4001, "bad_token"),
        f"{base}?token={given['anchor']}&room=other-room": (4003, "wrong_room"),
    }
    for url, (close_code, code) in refusals.items():
        got_code, reason = await refused_with(url)
        assert (got_code, reason.split(":")[0]) == (close_code, code), url
    # the calls themselves are authorized per command and room as over HTTP
    async with control_socket(engine, given["anchor"]) as anchor:
        for who, name, params, code in MATRIX:
            if who == "anchor":
                assert (await anchor.call(name, **params)).code == code, name
        assert (await anchor.call("pin", room="other-room", text="x")).code == "wrong_room"
    async with control_socket(engine, given["admin"], room=room) as admin:
        assert (await admin.call("pin", text="as admin")).result["by"] == "host"
        assert (await admin.call("get_room", room="any-room-at-all")).code == "room_not_found"


async def test_control_websocket_closes_when_the_token_expires(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(control_socket="none", token_leeway_s=0.0)
    short = engine.mint_token("anchor-1", room, role="anchor", ttl_s=3)
    async with control_socket(engine, short) as anchor:
        with trio.fail_after(15):
            try:
                assert (await anchor.call("live_numbers")).result["room"] == room
                while True:  # the pushes go on until the token expires
                    await anchor.ws.get_message()
            except ConnectionClosed as exc:
                assert exc.reason.code == 4002


async def test_unix_socket_is_owner_only_and_trusted(
    start_engine: StartEngine, room: str, socket_path: str
) -> None:
    path = socket_path
    first = await start_engine(control_socket=path)
    assert address(first).control_socket == path
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert stat.S_ISSOCK(os.stat(path).st_mode) and mode == 0o600
    # no token: every command, every room (admin-only ones included)
    created = await unix_call(path, "create_room", room, title="Local", anchor="a1")
    assert created.result["status"] == "scheduled"
    assert (await unix_call(path, "reserve", room, user="u1")).result["new"] is True
    assert (await ctl_call("unix", path, None, "get_room", room)).result["reservations"] == 1
    # a second node with the same path leaves the socket to the first
    second = await start_engine(control_socket=path)
    assert address(second).control_socket is None
    assert (await unix_call(path, "get_room", room)).result["title"] == "Local"
