"""docs/control.md: the prose below plus a reference generated from the registry
(`engine ctl --markdown > docs/control.md`; tests/control/test_docs.py keeps the file current)."""

from __future__ import annotations

from typing import Any, Final

import orjson

from engine.control.registry import Command, Registry, http_status, jsonrpc_code
from engine.errors import ErrorCode

INTRO: Final = """\
# Control plane

Anchors and their operators trigger promos and run the room; the host platform drives rooms and
reads numbers. Every command is described once, in the command registry
(`engine/control/registry.py`, commands in `engine/control/commands/`), and served over four
transports that give the same results and the same error codes:

| transport | who | auth | where |
|---|---|---|---|
| HTTP API | the host platform | `Authorization: Bearer <JWT>` (admin or anchor) | `http://HOST:HTTP_PORT/api/v1/...`, OpenAPI 3.1 at `/api/openapi.json` |
| control WebSocket | anchors' consoles | `?token=<JWT>` (admin or anchor) | `ws://HOST:HTTP_PORT/v1/control[?room=R]`: JSON-RPC 2.0 + live numbers |
| Unix socket | operators on the machine | none: file mode 0600 | `<data_dir>/control.sock` (`control_socket`): JSON-RPC 2.0, one per line |
| `engine ctl` | operators, scripts | as the transport it uses | the Unix socket, or `--url` + `--token` for HTTP |

An embedding host can also call `await engine.command("create_room", room="r1", title=...,
anchor=...)` in its own process (operator rights), or the `Engine` methods the commands call.

This file is generated from the registry by `engine ctl --markdown > docs/control.md`: the
command reference below cannot drift from the code. Every call is logged (`control call`, with
command, room, caller role, transport, code and duration) and counted in the Prometheus counter
`engine_control_calls_total{command, code, transport}` on `/metrics`.

## Tokens and who may do what

The control plane takes the same HS256 tokens as the viewer socket (see docs/integration.md):

* **admin** tokens (the host platform's servers) may call every command on every room; the
  token's `room` claim does not limit them;
* **anchor** tokens may call the staff commands (marked `anchor` below) on **their own room
  only**: another room answers `wrong_room`;
* **viewer** tokens may call no command (`forbidden`); viewers act through the viewer socket;
* the **Unix socket** is trusted local operator access: no token, every command, every room.
  Whoever can open the file can control the engine, so it is created with mode 0600 (owner
  only) before it listens, and peers of another uid are refused. Keep `data_dir` private.

A missing, malformed or wrongly signed token answers `bad_token`, an expired one
`token_expired` (HTTP 401 with `WWW-Authenticate: Bearer`; the control WebSocket closes with
4001 / 4002, a viewer token with 4012, an anchor of another room with 4003, and a connection
whose token expires while open is closed with 4002).

## HTTP API

```sh
T=$(engine token --dev --user host --room ops --role admin)
curl -s -X POST localhost:8901/api/v1/rooms/r1 -H "Authorization: Bearer $T" \\
     -d '{"title": "Spring tea", "anchor": "anchor-1", "starts_at": 1767261600000}'
curl -s localhost:8901/api/v1/rooms/r1/numbers -H "Authorization: Bearer $T"
```

Room commands live under `/api/v1/rooms/{room}/...` (the room in the path), take their
parameters as a JSON object in the body (POST; unknown fields are refused) and answer the
result as JSON, `201` for `create_room`, `200` otherwise. Errors answer
`{"error": {"code": "<code>", "message": "..."}}` with the status in the table below: 4xx for
anything the client sent, `503` only when Redis is unreachable (try again). Bodies over 1 MiB
answer `413 too_large`.

## JSON-RPC (control WebSocket, Unix socket)

```json
{"jsonrpc": "2.0", "id": 1, "method": "pin", "params": {"room": "r1", "text": "20:00 flash sale!"}}
{"jsonrpc": "2.0", "id": 1, "result": {"id": "n1.7", "text": "20:00 flash sale!", "by": "anchor-1", "ts": 1767261000000}}
{"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "text: String should have at least 1 character", "data": {"code": "bad_field"}}}
```

The method is the command's name, `params` an object (`room` included for room commands; on
the control WebSocket it defaults to the connection's room). `error.data.code` is the engine's
error code, the same string the HTTP API answers; `error.code` is JSON-RPC's number (-32700
unparseable, -32600 not a request, -32601 unknown command, -32602 bad params, -32000 any other
refusal). Batches and notifications (no `id`) work as the spec says. The Unix socket takes one
request per line and answers one line each:

```sh
echo '{"jsonrpc":"2.0","id":1,"method":"get_room","params":{"room":"r1"}}' | nc -U var/control.sock
```

### Live numbers

The control WebSocket pushes, about once a second (`numbers_interval_s`), the notification

```json
{"jsonrpc": "2.0", "method": "live_numbers", "params": {"room": "r1", "online": 1520, "peak": 1804,
 "likes": 90211, "danmaku_per_s": 37.4, "danmaku_total": 5120, "sales": [], "ts": 1767261000000}}
```

`online` is summed over every node, `peak` is the highest online count of the session (sampled
every second, reset by `start_room`), `danmaku_per_s` the rate over the last five whole seconds,
`sales` the running flash sales (stock left and grabs). Each node counts its danmaku in memory
and adds them to Redis once a second per room, so the numbers cost nothing per message.

## `engine ctl`

```sh
engine ctl --help                                  # the commands
engine ctl create-room --help                      # one command's flags
engine ctl create-room --room r1 --title "Spring tea" --anchor anchor-1 --starts-at 1767261600000
engine ctl --json live-numbers --room r1           # the JSON result
engine ctl --url http://127.0.0.1:8901 --token $T start-room --room r1   # over HTTP
```

Exit status: 0 done, 1 refused (prints `error: <code>: <message>`; with `--json` the error
object), 2 bad usage, 3 the engine could not be reached.

## Room lifecycle

`scheduled` (created) -> `live` (`start_room`) -> `ended` (`end_room`; a scheduled room can be
ended too, which cancels it). Rooms that were never created still work for viewers, chat and
popups; only the lifecycle and reservation commands need `create_room`. Viewers learn of a start
or end from a popup of kind `room` (`{status}`), of stream trouble from a popup of kind `stream`
(`{state: interrupted|resumed, text?}`).

**Rehearsal** (`set_rehearsal --on`): a test live visible to staff tokens only. Viewer tokens are
refused at the handshake (close code 4011 `rehearsal`) and viewers already in the room are
closed with the same code within about a second (each node checks its rooms once a second).

## Reservations and reminders

Viewers reserve a scheduled room over the viewer socket (`{"type": "reserve"}`,
`{"type": "unreserve"}`, see docs/protocol.md); the host reserves for a user with
`reserve`. `reminder_lead_s` (default 900 s = 15 min) before `starts_at`, one
`reminder.due` event per reservation goes to the room's event stream for the host to notify
(a reservation made after that moment gets its reminder at once).

The reminders are a job of the **durable scheduler** (`engine/scheduler.py`): jobs live in Redis
(a sorted set of due jobs, one of leased jobs, a hash of specs, all in the hash slot `{jobs}`);
a node claims due jobs with a Lua script that leases them (`scheduler_lease_s`), so two nodes
never run one job at once and a job whose node died is run again after its lease. The reminder
pass itself runs in batches inside Lua, skipping users already reminded, so however often it is
interrupted and resumed each reservation gets exactly one `reminder.due` per start time (its
event id is derived from room, user and start time: the same id even if it were written twice).
Moving `starts_at` (`update_room`) reschedules the job and the reminders start over; starting or
ending the room cancels them. Features register further job kinds (timed coupon drops, lottery
draws) with `scheduler.register(kind, handler)`.

## Events this plane writes

| type | data |
|---|---|
| `room.created` | `title`, `anchor`, `anchor_name?`, `cover?`, `preview?`, `starts_at` |
| `room.updated` | the changed fields |
| `room.started` / `room.ended` | `status`, `started_at` / `ended_at`, `was` (ended) |
| `room.rehearsal` | `rehearsal` (bool), `status` |
| `reservation.created` / `reservation.cancelled` | `user`, `source` (`viewer` or `host`), `starts_at` |
| `reminder.due` | `user`, `starts_at`, `title`, `reserved_at` |
| `share.recorded` | `share_id`, `user`, `channel?` |

## Mute and ban

Not in this registry yet: the anti-fraud feature builds bans and mutes and adds its commands
here (a module in `engine/control/commands/`, listed in `MODULES`).
"""  # noqa: E501 (Markdown tables and JSON examples)

ERROR_MEANINGS: Final[dict[str, str]] = {
    ErrorCode.BAD_FRAME: "the body / message is not JSON (JSON-RPC: or not a request, -32600)",
    ErrorCode.BAD_FIELD: "a parameter is missing, of the wrong type, out of range, or unknown",
    ErrorCode.TOO_LARGE: "the request is too large (HTTP body or message over 1 MiB)",
    ErrorCode.BAD_TOKEN: "no token, or a malformed, wrongly signed or unknown-key token",
    ErrorCode.TOKEN_EXPIRED: "the token's `exp` has passed",
    ErrorCode.FORBIDDEN: "the token's role may not call this command",
    ErrorCode.WRONG_ROOM: "an anchor token for another room",
    ErrorCode.UNKNOWN_COMMAND: "no such command (or API path)",
    ErrorCode.ROOM_NOT_FOUND: "the room was never created",
    ErrorCode.ROOM_EXISTS: "`create_room` for a room that exists",
    ErrorCode.BAD_STATE: "not in the room's current status (e.g. starting an ended room)",
    ErrorCode.UNKNOWN_PHRASE: "no quick phrase with that id",
    ErrorCode.RATE_LIMITED: "over a rate limit",
    ErrorCode.UNAVAILABLE: "Redis is unreachable: try again",
    ErrorCode.INTERNAL: "a bug: reported in the log",
}


def _type_of(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        kinds = [_type_of(s) for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(kinds)
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "$ref" in schema:
        return "object"
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    limits = []
    if "minLength" in schema or "maxLength" in schema:
        limits.append(f"{schema.get('minLength', 0)}..{schema.get('maxLength', '')} chars")
    if "minimum" in schema or "maximum" in schema:
        limits.append(f"{schema.get('minimum', '')}..{schema.get('maximum', '')}")
    if "exclusiveMinimum" in schema:
        limits.append(f"> {schema['exclusiveMinimum']}")
    if schema.get("pattern") and schema["pattern"] != "\\S":
        limits.append(f"`{schema['pattern']}`")
    return kind + (f" ({', '.join(limits)})" if limits else "")


def _description(schema: dict[str, Any]) -> str:
    text = schema.get("description")
    if text is None and "anyOf" in schema:
        text = next((s.get("description") for s in schema["anyOf"] if "description" in s), "")
    return (text or "").replace("|", "\\|")


def _fields_table(schema: dict[str, Any], *, inputs: bool) -> list[str]:
    properties = schema.get("properties", {})
    if not properties:
        return ["(none)"]
    required = set(schema.get("required", []))
    head = "| name | type | required | description |" if inputs else "| name | type | description |"
    lines = [head, "|---|---|---|---|" if inputs else "|---|---|---|"]
    for name, prop in properties.items():
        if inputs:
            need = "yes" if name in required else f"no (default `{_json(prop.get('default'))}`)"
            lines.append(f"| `{name}` | {_type_of(prop)} | {need} | {_description(prop)} |")
        else:
            lines.append(f"| `{name}` | {_type_of(prop)} | {_description(prop)} |")
    return lines


def _command_section(command: Command) -> list[str]:
    roles = ", ".join(sorted(r.value for r in command.roles))
    status = 201 if command.creates else 200
    room_flag = " --room R" if command.room_scoped else ""
    lines = [
        f"### `{command.name}`",
        "",
        command.summary + (" " + command.doc if command.doc else ""),
        "",
        f"- token roles: {roles}",
        f"- HTTP: `{command.http_method} {command.http_path}` -> {status}",
        f"- JSON-RPC: `{command.name}`" + (" (`params.room`)" if command.room_scoped else ""),
        f"- CLI: `engine ctl {command.cli_name}{room_flag} ...`",
    ]
    if command.errors:
        lines.append("- errors: " + ", ".join(f"`{code.value}`" for code in command.errors))
    lines += ["", "Parameters:", ""]
    lines += _fields_table(command.params.model_json_schema(mode="validation"), inputs=True)
    lines += ["", f"Result (`{command.result.__name__}`):", ""]
    lines += _fields_table(command.result.model_json_schema(mode="serialization"), inputs=False)
    return [*lines, ""]


def control_markdown(registry: Registry) -> str:
    lines = [INTRO.rstrip("\n"), "", "## Error codes", ""]
    lines += ["| code | HTTP | JSON-RPC | meaning |", "|---|---|---|---|"]
    for code, meaning in ERROR_MEANINGS.items():
        lines.append(f"| `{code}` | {http_status(code)} | {jsonrpc_code(code)} | {meaning} |")
    lines += [
        "",
        "Features add their own codes (e.g. `sold_out`, `unknown_sale`): HTTP 404 for `unknown_*`,",
        "409 for the others, JSON-RPC -32000.",
        "",
        "## Commands",
        "",
        "| command | summary | roles |",
        "|---|---|---|",
    ]
    for command in registry:
        roles = ", ".join(sorted(r.value for r in command.roles))
        lines.append(f"| [`{command.name}`](#{command.name}) | {command.summary} | {roles} |")
    lines.append("")
    for command in registry:
        lines += _command_section(command)
    return "\n".join(lines).rstrip("\n") + "\n"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
