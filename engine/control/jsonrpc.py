"""JSON-RPC 2.0, as the control WebSocket and the Unix socket speak it. Pure framing, no I/O.

A request is `{"jsonrpc": "2.0", "id": 1, "method": "<command>", "params": {...}}` (named params
only; `room` is one of them for room commands); the answer is `{"jsonrpc": "2.0", "id": 1,
"result": {...}}` or `{"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "...",
"data": {"code": "bad_field"}}}`: `error.data.code` is the engine's error code, the same string
the HTTP API answers. Batches (arrays) and notifications (no `id`: no answer) work as the spec
says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson

from engine.control.registry import (
    JSONRPC_INVALID_REQUEST,
    JSONRPC_PARSE_ERROR,
    jsonrpc_code,
)
from engine.errors import EngineError, ErrorCode

MAX_BATCH: Final = 50
_NO_ID: Final = object()

CallFn = Callable[[str, Any], Awaitable[Any]]  # (method, params) -> result; raises EngineError


def error_object(code: str, message: str) -> dict[str, Any]:
    return {"code": jsonrpc_code(code), "message": message, "data": {"code": code}}


def response(
    request_id: Any, *, result: Any = None, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        out["error"] = error
    else:
        out["result"] = result
    return out


def notification(method: str, params: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params})


def _invalid(request_id: Any, why: str) -> dict[str, Any]:
    return response(
        request_id,
        error={"code": JSONRPC_INVALID_REQUEST, "message": why,
               "data": {"code": ErrorCode.BAD_FRAME.value}},
    )  # fmt: skip


async def handle(raw: str | bytes, call: CallFn) -> bytes | None:
    """One incoming message -> the bytes to answer (None: nothing to answer)."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        error = {"code": JSONRPC_PARSE_ERROR, "message": f"not JSON: {exc}"[:200],
                 "data": {"code": ErrorCode.BAD_FRAME.value}}  # fmt: skip
        return orjson.dumps(response(None, error=error))
    if isinstance(payload, list):
        if not payload:
            return orjson.dumps(_invalid(None, "empty batch"))
        if len(payload) > MAX_BATCH:
            return orjson.dumps(_invalid(None, f"a batch holds at most {MAX_BATCH} requests"))
        answers = [a for a in [await _one(item, call) for item in payload] if a is not None]
        return orjson.dumps(answers) if answers else None
    answer = await _one(payload, call)
    return None if answer is None else orjson.dumps(answer)


async def _one(request: Any, call: CallFn) -> dict[str, Any] | None:
    if not isinstance(request, dict):
        return _invalid(None, "a request must be an object")
    request_id = request.get("id", _NO_ID)
    if request_id is not _NO_ID and (
        isinstance(request_id, bool) or not isinstance(request_id, str | int | None)
    ):
        return _invalid(None, "id must be a string, a number or null")
    answer_id = None if request_id is _NO_ID else request_id
    method = request.get("method")
    if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
        return _invalid(answer_id, 'a request needs "jsonrpc": "2.0" and a string "method"')
    params = request.get("params", {})
    try:
        result = await call(method, params)
    except EngineError as exc:
        if request_id is _NO_ID:
            return None
        return response(answer_id, error=error_object(exc.code.value, exc.message))
    if request_id is _NO_ID:
        return None
    return response(answer_id, result=result)
