"""The OpenAPI 3.1 document of the HTTP API, generated from the registry (pydantic's JSON Schema
2020-12 is OpenAPI 3.1's dialect). Served at /api/openapi.json; `engine ctl --openapi` prints it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from engine.control.registry import (
    Command,
    ErrorResponse,
    Registry,
    http_status,
)
from engine.errors import ErrorCode
from engine.identity import ID_PATTERN

OPENAPI_PATH: Final = "/api/openapi.json"
_REF: Final = "#/components/schemas/{model}"
_BASE_ERRORS: Final = (
    ErrorCode.BAD_FIELD,
    ErrorCode.BAD_TOKEN,
    ErrorCode.FORBIDDEN,
    ErrorCode.UNAVAILABLE,
)
_STATUS_TEXT: Final = {
    400: "bad input (bad_field, bad_frame, ...)",
    401: "no valid token (bad_token, token_expired)",
    403: "the token may not do this (forbidden, wrong_room)",
    404: "not found (room_not_found, unknown_*)",
    409: "refused in the current state (room_exists, bad_state, ...)",
    413: "request body too large (too_large)",
    429: "rate limited",
    503: "Redis unreachable: try again (unavailable)",
}


def engine_version() -> str:
    try:
        return version("live-engine")
    except PackageNotFoundError:
        return "0"


def _schemas(registry: Registry) -> tuple[dict[Any, Any], dict[str, Any]]:
    models: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ErrorResponse, "serialization"): None
    }
    for command in registry:
        models[(command.params, "validation")] = None
        models[(command.result, "serialization")] = None
    refs, top = models_json_schema(list(models), ref_template=_REF)
    return refs, top.get("$defs", {})


def _has_fields(model: type[BaseModel]) -> bool:
    return bool(model.model_fields)


def _error_statuses(command: Command) -> list[int]:
    codes: list[str] = [*_BASE_ERRORS, *command.errors]
    if not command.read_only:
        codes.append(ErrorCode.TOO_LARGE)
    return sorted({http_status(code) for code in codes})


def _operation(command: Command, refs: dict[Any, Any]) -> dict[str, Any]:
    roles = ", ".join(sorted(r.value for r in command.roles))
    description = (command.doc + "\n\n" if command.doc else "") + f"Token roles: {roles}."
    error_ref = refs[(ErrorResponse, "serialization")]
    responses: dict[str, Any] = {
        str(201 if command.creates else 200): {
            "description": command.summary,
            "content": {"application/json": {"schema": refs[(command.result, "serialization")]}},
        }
    }
    for status in _error_statuses(command):
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "refused"),
            "content": {"application/json": {"schema": error_ref}},
        }
    operation: dict[str, Any] = {
        "operationId": command.name,
        "summary": command.summary,
        "description": description,
        "tags": [command.handler.__module__.rsplit(".", 1)[-1]],
        "responses": responses,
        "security": [{"bearer": []}],
    }
    if command.room_scoped:
        operation["parameters"] = [{
            "name": "room", "in": "path", "required": True, "description": "the room id",
            "schema": {"type": "string", "pattern": ID_PATTERN.pattern},
        }]  # fmt: skip
    if not command.read_only and _has_fields(command.params):
        required = any(f.is_required() for f in command.params.model_fields.values())
        operation["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": refs[(command.params, "validation")]}},
        }
    return operation


def openapi_document(registry: Registry) -> dict[str, Any]:
    refs, schemas = _schemas(registry)
    paths: dict[str, dict[str, Any]] = {}
    for command in registry:
        paths.setdefault(command.http_path, {})[command.http_method.lower()] = _operation(
            command, refs
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "live-engine control API",
            "version": engine_version(),
            "description": "Generated from the engine's command registry; see docs/control.md.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
    }
