"""The command registry: every control command is described once, here, as a `Command`: its name,
a pydantic model of its parameters, a pydantic model of its result, the roles whose tokens may
call it, and the handler that calls the feature code.

Everything else is generated from it: the JSON-RPC methods of the control WebSocket and the Unix
socket, the HTTP routes and their OpenAPI document, the `engine ctl` subcommands and
`docs/control.md`. Every transport calls `Registry.call`, so a command answers the same result
and the same error codes wherever it is called from.

Authorization (`authorize`) is pure: operators (the Unix socket, in-process calls) may call
everything; a token may call a command if its role is in the command's roles; an anchor token
controls only its own room; admin tokens control any room; viewer tokens no command at all.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from engine.errors import EngineError, ErrorCode
from engine.identity import ID_PATTERN, Identity, Role, valid_id

if TYPE_CHECKING:
    from engine.node import Engine

STAFF: Final = frozenset({Role.ANCHOR, Role.ADMIN})
ADMIN: Final = frozenset({Role.ADMIN})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# --- schema building blocks ----------------------------------------------------------------


def _clean(value: str) -> str:
    if _CONTROL_CHARS.search(value):
        raise ValueError("contains control characters")
    return value.strip()


# Texts of 1..N characters, not blank, no control characters (trimmed once valid).
ShortText = Annotated[
    str, Field(min_length=1, max_length=32, pattern=r"\S"), AfterValidator(_clean)
]
Title = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S"), AfterValidator(_clean)]
Message = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S"), AfterValidator(_clean)]
LongText = Annotated[
    str, Field(min_length=1, max_length=500, pattern=r"\S"), AfterValidator(_clean)
]
RoomId = Annotated[str, Field(pattern=ID_PATTERN.pattern, description="a room id")]
UserId = Annotated[str, Field(pattern=ID_PATTERN.pattern, description="a user id")]
Millis = Annotated[int, Field(ge=0, le=2**53, description="ms since the Unix epoch")]


class Params(BaseModel):
    """Base of every command's parameters: strict JSON types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Result(BaseModel):
    """Base of every command's result."""

    model_config = ConfigDict(extra="ignore")


class NoParams(Params):
    pass


class Ok(Result):
    ok: bool = True


class ErrorBody(BaseModel):
    """What every transport answers on failure (`code` is one of docs/control.md's codes)."""

    code: str = Field(description="stable error code, e.g. bad_field, forbidden, room_not_found")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


# --- commands --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls. `role` None is an operator: trusted local access (the Unix socket, whose file
    mode is 0600, or code in the engine's own process)."""

    role: Role | None = None
    user: str | None = None
    room: str | None = None
    name: str | None = None

    @classmethod
    def of(cls, identity: Identity) -> Caller:
        return cls(identity.role, identity.user, identity.room, identity.name)

    @property
    def label(self) -> str:
        return "operator" if self.role is None else self.role.value


OPERATOR: Final = Caller()


@dataclass(frozen=True, slots=True)
class Call:
    """One validated, authorized call, as a handler sees it."""

    command: Command
    caller: Caller
    room: str  # "" for a command that is not about a room
    params: Any  # an instance of command.params


Handler = Callable[["Engine", Call], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # snake_case; the JSON-RPC method; `engine ctl` spells it with dashes
    summary: str  # one line
    params: type[Params]
    result: type[BaseModel]
    handler: Handler
    roles: frozenset[Role] = STAFF  # token roles allowed (operators always are)
    room_scoped: bool = True  # takes a `room` (HTTP: in the path)
    read_only: bool = False  # HTTP GET (no body) instead of POST
    creates: bool = False  # HTTP 201 instead of 200
    path: str | None = None  # HTTP path under /api/v1; default /rooms/{room}/<name>
    errors: tuple[ErrorCode, ...] = ()  # the command's own error codes (docs, OpenAPI)
    doc: str = ""  # more prose for docs/control.md and --help

    @property
    def http_method(self) -> str:
        return "GET" if self.read_only else "POST"

    @property
    def http_path(self) -> str:
        if self.path is not None:
            return "/api/v1" + self.path
        return f"/api/v1/rooms/{{room}}/{self.name}" if self.room_scoped else f"/api/v1/{self.name}"

    @property
    def cli_name(self) -> str:
        return self.name.replace("_", "-")


def authorize(command: Command, caller: Caller, room: str | None = None) -> None:
    """Raise EngineError (forbidden, wrong_room) unless `caller` may call `command` on `room`
    (room None: only the role is checked)."""
    role = caller.role
    if role is None:
        return
    if role not in command.roles:
        raise EngineError(f"a {role.value} token may not call {command.name}",
                          code=ErrorCode.FORBIDDEN)  # fmt: skip
    if room is not None and command.room_scoped and role is Role.ANCHOR and room != caller.room:
        raise EngineError("an anchor token controls only its own room", code=ErrorCode.WRONG_ROOM)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "params"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)[:500]


class Registry:
    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: dict[str, Command] = {}
        self.extend(commands)

    def add(self, command: Command) -> None:
        if not _NAME.match(command.name):
            raise ValueError(f"command name {command.name!r} is not snake_case")
        if command.name in self._commands:
            raise ValueError(f"command {command.name!r} is registered twice")
        self._commands[command.name] = command

    def extend(self, commands: Iterable[Command]) -> None:
        for command in commands:
            self.add(command)

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def __len__(self) -> int:
        return len(self._commands)

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def get(self, name: str) -> Command:
        command = self._commands.get(name) if isinstance(name, str) else None
        if command is None:
            raise EngineError(f"no command {str(name)[:48]!r}", code=ErrorCode.UNKNOWN_COMMAND)
        return command

    def prepare(
        self,
        caller: Caller,
        name: str,
        params: Mapping[str, Any] | None,
        *,
        room: str | None = None,
        default_room: str | None = None,
    ) -> Call:
        """Find, authorize and validate a call (pure). `room` comes from the transport (the HTTP
        path) or else from `params["room"]`, or else `default_room` (the control WebSocket's)."""
        command = self.get(name)
        authorize(command, caller)  # the role first: a viewer learns nothing about its input
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise EngineError("params must be an object", code=ErrorCode.BAD_FIELD)
        args = dict(params)
        # `room` is a parameter of room commands unless the transport gives it (the HTTP path)
        given = args.pop("room", None) if command.room_scoped and room is None else None
        if command.room_scoped:
            room = room if room is not None else given if given is not None else default_room
            if room is None:
                raise EngineError("room: required", code=ErrorCode.BAD_FIELD)
            if not valid_id(room):
                raise EngineError(f"room: not a room id ({ID_PATTERN.pattern})",
                                  code=ErrorCode.BAD_FIELD)  # fmt: skip
        if room is not None:
            authorize(command, caller, room)
        try:
            parsed = command.params.model_validate(args)
        except ValidationError as exc:
            raise EngineError(_validation_message(exc), code=ErrorCode.BAD_FIELD) from None
        return Call(command, caller, room or "", parsed)

    async def invoke(self, engine: Engine, call: Call) -> dict[str, Any]:
        """Run a prepared call; its result as JSON-ready data. Feature errors keep their codes;
        a ValueError from a feature is bad input (`bad_field`)."""
        try:
            value = await call.command.handler(engine, call)
        except EngineError:
            raise
        except ValueError as exc:
            raise EngineError(str(exc)[:500], code=ErrorCode.BAD_FIELD) from None
        result = (
            value if isinstance(value, BaseModel) else call.command.result.model_validate(value)
        )
        dumped: dict[str, Any] = result.model_dump(mode="json")
        return dumped

    async def call(
        self,
        engine: Engine,
        caller: Caller,
        name: str,
        params: Mapping[str, Any] | None,
        *,
        room: str | None = None,
        default_room: str | None = None,
    ) -> dict[str, Any]:
        call = self.prepare(caller, name, params, room=room, default_room=default_room)
        return await self.invoke(engine, call)


# --- how errors look on each transport -------------------------------------------------------

HTTP_STATUS: Final[dict[str, int]] = {
    ErrorCode.BAD_FRAME: 400,
    ErrorCode.BAD_FIELD: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.UNKNOWN_PHRASE: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.BAD_TOKEN: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.WRONG_ROOM: 403,
    ErrorCode.UNKNOWN_COMMAND: 404,
    ErrorCode.ROOM_NOT_FOUND: 404,
    ErrorCode.ROOM_EXISTS: 409,
    ErrorCode.BAD_STATE: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
    "banned": 403,
    "muted": 403,
}


def http_status(code: str) -> int:
    """The HTTP status of an error code: the table above; a feature's other codes are 404 when
    they name something unknown (`unknown_*`) and 409 otherwise (the state refuses it)."""
    status = HTTP_STATUS.get(code)
    if status is not None:
        return status
    return 404 if code.startswith("unknown_") else 409


JSONRPC_PARSE_ERROR: Final = -32700
JSONRPC_INVALID_REQUEST: Final = -32600
JSONRPC_METHOD_NOT_FOUND: Final = -32601
JSONRPC_INVALID_PARAMS: Final = -32602
JSONRPC_INTERNAL_ERROR: Final = -32603
JSONRPC_APPLICATION_ERROR: Final = -32000


_JSONRPC_CODES: Final[dict[str, int]] = {
    ErrorCode.BAD_FRAME: JSONRPC_PARSE_ERROR,
    ErrorCode.UNKNOWN_COMMAND: JSONRPC_METHOD_NOT_FOUND,
    ErrorCode.BAD_FIELD: JSONRPC_INVALID_PARAMS,
    ErrorCode.INTERNAL: JSONRPC_INTERNAL_ERROR,
}


def jsonrpc_code(code: str) -> int:
    """JSON-RPC's numeric code for an engine error code (`error.data.code` carries ours)."""
    return _JSONRPC_CODES.get(code, JSONRPC_APPLICATION_ERROR)
