"""The registry and JSON-RPC framing, pure (no I/O): who may call what, how calls are validated,
and that no input can make the framing raise."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.control import jsonrpc
from engine.control.commands import build_registry
from engine.control.registry import (
    ADMIN,
    OPERATOR,
    Caller,
    Params,
    authorize,
    http_status,
)
from engine.errors import EngineError
from engine.identity import Role

REGISTRY = build_registry()
VIEWER = Caller(Role.VIEWER, "v1", "room-a")
ANCHOR = Caller(Role.ANCHOR, "a1", "room-a")
ADMIN_CALLER = Caller(Role.ADMIN, "host", "ops")


def code_of(fn: Any, *args: Any, **kw: Any) -> str | None:
    try:
        fn(*args, **kw)
    except EngineError as exc:
        return exc.code.value
    return None


@pytest.mark.parametrize("command", list(REGISTRY), ids=lambda c: c.name)
def test_authorization_matrix_for_every_command(command: Any) -> None:
    assert code_of(authorize, command, VIEWER, "room-a") == "forbidden"
    assert code_of(authorize, command, OPERATOR, "room-b") is None
    assert code_of(authorize, command, ADMIN_CALLER, "room-b") is None
    if command.roles == ADMIN:
        assert code_of(authorize, command, ANCHOR, "room-a") == "forbidden"
    else:
        assert code_of(authorize, command, ANCHOR, "room-a") is None
        assert code_of(authorize, command, ANCHOR, "room-b") == "wrong_room"


@pytest.mark.parametrize("command", list(REGISTRY), ids=lambda c: c.name)
def test_every_command_is_fully_described(command: Any) -> None:
    assert command.summary and command.summary.endswith(".")
    assert issubclass(command.params, Params)
    schema = command.params.model_json_schema()
    assert schema.get("additionalProperties") is False  # unknown fields are refused
    for name, field in command.params.model_fields.items():
        assert field.description or name == "id", f"{command.name}.{name} has no description"
    assert command.http_path.startswith("/api/v1/")


def test_prepare_checks_role_then_room_then_params() -> None:
    prepare = REGISTRY.prepare
    assert code_of(prepare, ADMIN_CALLER, "no_such_command", {}) == "unknown_command"
    assert code_of(prepare, VIEWER, "pin", {"room": "bad room!", "junk": 1}) == "forbidden"
    assert code_of(prepare, ADMIN_CALLER, "pin", {"text": "x"}) == "bad_field"  # no room
    assert code_of(prepare, ADMIN_CALLER, "pin", {"room": "bad room!", "text": "x"}) == "bad_field"
    assert code_of(prepare, ANCHOR, "pin", {"room": "room-b", "text": "x"}) == "wrong_room"
    assert code_of(prepare, ANCHOR, "pin", {"room": "room-a", "text": 5}) == "bad_field"
    assert code_of(prepare, ANCHOR, "pin", {"room": "room-a", "text": "x", "x": 1}) == "bad_field"
    assert code_of(prepare, ANCHOR, "pin", ["not", "an", "object"]) == "bad_field"
    call = prepare(ANCHOR, "pin", {"text": "  hello  "}, default_room="room-a")
    assert (call.room, call.params.text) == ("room-a", "hello")
    # the transport's room (an HTTP path) wins; a room in the body is then an unknown field
    assert (
        code_of(prepare, ADMIN_CALLER, "pin", {"room": "r", "text": "x"}, room="r") == "bad_field"
    )


def test_error_codes_map_to_http_statuses() -> None:
    expected = {"bad_field": 400, "bad_token": 401, "token_expired": 401, "forbidden": 403,
                "wrong_room": 403, "room_not_found": 404, "unknown_sale": 404,
                "room_exists": 409, "sold_out": 409, "too_large": 413, "unavailable": 503}  # fmt: skip
    assert {code: http_status(code) for code in expected} == expected


async def _call(method: str, params: Any) -> Any:
    call = REGISTRY.prepare(OPERATOR, method, params)
    return {"prepared": call.command.name}


async def test_jsonrpc_requests_batches_notifications_and_errors() -> None:
    async def answer(raw: Any) -> Any:
        out = await jsonrpc.handle(orjson.dumps(raw) if not isinstance(raw, bytes) else raw, _call)
        return None if out is None else orjson.loads(out)

    ok = await answer({"jsonrpc": "2.0", "id": 1, "method": "unpin", "params": {"room": "r"}})
    assert ok == {"jsonrpc": "2.0", "id": 1, "result": {"prepared": "unpin"}}
    missing = await answer({"jsonrpc": "2.0", "id": "x", "method": "nope"})
    assert (
        missing["error"]["code"] == -32601 and missing["error"]["data"]["code"] == "unknown_command"
    )
    bad = await answer({"jsonrpc": "2.0", "id": 2, "method": "pin", "params": {"room": "r"}})
    assert bad["error"]["code"] == -32602 and bad["error"]["data"]["code"] == "bad_field"
    assert (await answer(b"{oops"))["error"]["code"] == -32700
    assert (await answer({"id": 3, "method": "unpin"}))["error"]["code"] == -32600
    assert (await answer([]))["error"]["code"] == -32600
    assert await answer({"jsonrpc": "2.0", "method": "unpin", "params": {"room": "r"}}) is None
    batch = await answer([
        {"jsonrpc": "2.0", "id": 1, "method": "unpin", "params": {"room": "r"}},
        {"jsonrpc": "2.0", "method": "unpin", "params": {"room": "r"}},  # a notification
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
    ])  # fmt: skip
    assert [a["id"] for a in batch] == [1, 2] and "error" in batch[1]


KEYS = st.sampled_from(["jsonrpc", "id", "method", "params", "room", "text"]) | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)


def _nested(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=5))


JSON = st.recursive(SCALARS, _nested, max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(message=JSON | st.builds(lambda m, p: {"jsonrpc": "2.0", "id": 1, "method": m, "params": p},
                                st.sampled_from([c.name for c in REGISTRY]), JSON))  # fmt: skip
async def test_jsonrpc_answers_any_input_without_raising(message: Any) -> None:
    out = await jsonrpc.handle(orjson.dumps(message), _call)
    if out is not None:
        answers = orjson.loads(out)
        for answer in answers if isinstance(answers, list) else [answers]:
            assert answer["jsonrpc"] == "2.0" and ("result" in answer) != ("error" in answer)
            if "error" in answer:
                assert isinstance(answer["error"]["data"]["code"], str)
