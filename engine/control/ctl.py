"""`engine ctl`: the registry's commands from the shell, over the Unix socket (default, trusted
local access) or the HTTP API (`--url` and `--token`). One subcommand per command, generated
from the registry, with `--help` each; `--room` for room commands, one flag per parameter.
Output is human-readable, or the JSON result with `--json`.

Exit status: 0 done, 1 the engine refused (the error code is printed), 2 bad usage,
3 the engine could not be reached.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import types
import typing
import urllib.error
import urllib.parse
import urllib.request
from typing import Annotated, Any, Final, Literal, TextIO, get_args, get_origin

import orjson
from pydantic.fields import FieldInfo

from engine.config import Config
from engine.control.commands import build_registry
from engine.control.registry import Command, Registry

EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
_PARAM: Final = "param_"


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Unreachable(Exception):
    pass


# --- the parser ------------------------------------------------------------------------------


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the base type, is it optional) through Annotated, Optional and unions with None."""
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(get_args(annotation))
            annotation = args[0]
        else:
            return annotation, optional


def _add_param(parser: argparse.ArgumentParser, name: str, field: FieldInfo) -> None:
    base, _optional = _unwrap(field.annotation)
    flag = "--" + name.replace("_", "-")
    help_text = field.description or ""
    required = field.is_required()
    kw: dict[str, Any] = {"dest": _PARAM + name, "default": None, "required": required}
    origin = get_origin(base)
    if base is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif origin is Literal:
        kw["choices"] = list(get_args(base))
        kw["metavar"] = "|".join(str(c) for c in get_args(base))
    elif origin is list:
        kw["nargs"] = "*"
        kw["metavar"] = name.upper().rstrip("S") or "ITEM"
    elif base is dict or origin is dict:
        kw["type"] = _json_object
        kw["metavar"] = "JSON"
        help_text += " (a JSON object)"
    elif base in (int, float):
        kw["type"] = base
        kw["metavar"] = "N"
    else:
        kw["metavar"] = name.upper()
    if not required and field.default not in (None, ...) and not field.default_factory:
        help_text += f" (default {field.default!r})"
    parser.add_argument(flag, help=help_text or None, **kw)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _describe(command: Command) -> str:
    roles = ", ".join(sorted(r.value for r in command.roles))
    parts = [command.summary]
    if command.doc:
        parts.append(command.doc)
    parts.append(f"Token roles: {roles} (the Unix socket may call everything). "
                 f"HTTP: {command.http_method} {command.http_path}")  # fmt: skip
    return "\n\n".join(parts)


def add_ctl_parser(sub: Any, registry: Registry | None = None) -> argparse.ArgumentParser:
    """Add `ctl` with one subcommand per registry command to `sub` (argparse subparsers)."""
    registry = registry if registry is not None else build_registry()
    ctl: argparse.ArgumentParser = sub.add_parser(
        "ctl",
        help="call a control command (over the Unix socket, or HTTP with --url)",
        description="Call a control command. Default: the Unix socket (trusted local operator "
        "access); with --url and --token: the HTTP API. `engine ctl COMMAND --help` for one.",
    )
    ctl.add_argument("--socket", help="the Unix socket (default: ENGINE_CONTROL_SOCKET, else "
                     "<data_dir>/control.sock)")  # fmt: skip
    ctl.add_argument(
        "--url",
        default=os.environ.get("ENGINE_CTL_URL"),
        help="the node's HTTP base URL, e.g. http://127.0.0.1:8901 (ENGINE_CTL_URL)",
    )
    ctl.add_argument(
        "--token",
        default=os.environ.get("ENGINE_CTL_TOKEN"),
        help="bearer token for --url (ENGINE_CTL_TOKEN)",
    )
    ctl.add_argument("--json", action="store_true", help="print the JSON result")
    ctl.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    ctl.add_argument("--markdown", action="store_true", help="print docs/control.md and exit")
    ctl.add_argument("--openapi", action="store_true", help="print the OpenAPI document and exit")
    commands = ctl.add_subparsers(dest="ctl_command", metavar="COMMAND")
    for command in registry:
        parser = commands.add_parser(
            command.cli_name,
            help=command.summary,
            description=_describe(command),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if command.room_scoped:
            parser.add_argument("--room", required=True, help="the room")
        for name, field in command.params.model_fields.items():
            _add_param(parser, name, field)
    return ctl  # fmt: skip


# --- calling ---------------------------------------------------------------------------------


def call_unix(path: str, method: str, params: dict[str, Any], timeout: float) -> Any:
    request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(orjson.dumps(request) + b"\n")
            buffer = b""
            while not buffer.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
    except OSError as exc:
        raise Unreachable(f"cannot reach the engine at {path}: {exc}") from None
    try:
        answer = orjson.loads(buffer)
    except orjson.JSONDecodeError:
        raise Unreachable(f"no answer from {path}") from None
    if "error" in answer:
        error = answer["error"]
        raise Refused(str((error.get("data") or {}).get("code", "internal")), error["message"])
    return answer["result"]


def call_http(
    url: str, token: str | None, command: Command, room: str | None, params: dict[str, Any],
    timeout: float,
) -> Any:  # fmt: skip
    """The command over the HTTP API (stdlib only: ctl needs no HTTP client package)."""
    path = command.http_path.replace("{room}", urllib.parse.quote(room or "", safe=""))
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if command.read_only else orjson.dumps(params)
    request = urllib.request.Request(url.rstrip("/") + path, data=data, headers=headers,
                                     method=command.http_method)  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            error = orjson.loads(raw)["error"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise Unreachable(f"{url}: HTTP {exc.code} without an error body") from None
        raise Refused(str(error.get("code", "internal")), str(error.get("message", ""))) from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"cannot reach the engine at {url}: {exc}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Unreachable(f"{url}: an answer that is not JSON") from None


# --- output ----------------------------------------------------------------------------------


def human(value: Any, indent: str = "") -> list[str]:
    """A result as readable lines: `key: value`, nested objects indented, lists as items."""
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{indent}{key}:")
                lines += human(item, indent + "  ")
            else:
                lines.append(f"{indent}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            sub = human(item, indent + "  ")
            first = sub[0].lstrip() if sub else ""
            lines += [f"{indent}- {first}", *sub[1:]]
        return lines
    return [f"{indent}{_scalar(value)}"]


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def run_ctl(args: argparse.Namespace, out: TextIO, err: TextIO | None = None) -> int:
    err = err if err is not None else sys.stderr
    registry = build_registry()
    if args.markdown:
        from engine.control.docs import control_markdown

        out.write(control_markdown(registry))
        return 0
    if args.openapi:
        from engine.control.openapi import openapi_document

        out.write(orjson.dumps(openapi_document(registry), option=orjson.OPT_INDENT_2).decode())
        out.write("\n")
        return 0
    if not args.ctl_command:
        err.write("engine ctl: name a command (engine ctl --help lists them)\n")
        return EXIT_USAGE
    command = registry.get(args.ctl_command.replace("-", "_"))
    params = {
        name: getattr(args, _PARAM + name)
        for name in command.params.model_fields
        if getattr(args, _PARAM + name) is not None
    }
    room = getattr(args, "room", None)
    try:
        if args.url:
            result = call_http(args.url, args.token, command, room, params, args.timeout)
        else:
            path = args.socket or Config.from_env().control_socket_path()
            if path is None:
                err.write("engine ctl: no control socket configured: pass --socket or --url\n")
                return EXIT_USAGE
            rpc_params = {"room": room, **params} if command.room_scoped else params
            result = call_unix(path, command.name, rpc_params, args.timeout)
    except Refused as exc:
        if args.json:
            body = {"error": {"code": exc.code, "message": exc.message}}
            out.write(orjson.dumps(body).decode() + "\n")
        else:
            err.write(f"error: {exc.code}: {exc.message}\n")
        return EXIT_REFUSED
    except Unreachable as exc:
        err.write(f"engine ctl: {exc}\n")
        return EXIT_UNREACHABLE
    if args.json:
        out.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write("\n".join(human(result)) + "\n")
    return 0
