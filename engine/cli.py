"""`engine`: run a node, mint a dev token, watch host events, show the settings.

engine run [--dev] [--ws-port N] ...      every Config field is a flag (and ENGINE_* env)
engine token --user U --room R [--role anchor]
engine events tail --room R [--group G --consumer C]
engine config                              the settings, their env names and defaults
engine ctl COMMAND --room R ...            a control command (docs/control.md)
engine lottery verify --status F --entrants F   check a lottery draw (docs/lottery.md)
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import orjson
import structlog
import trio

from engine.config import Config, fields_doc, markdown_table
from engine.control.ctl import add_ctl_parser, run_ctl
from engine.devkeys import resolve_keys
from engine.features.lottery_verify import add_parser as add_lottery_parser
from engine.features.lottery_verify import run as run_lottery
from engine.identity import Role, mint_token
from engine.logs import configure

log = structlog.get_logger("engine.cli")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float, "bool": bool}.get(str(f.type), str)
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"]
            )
        else:
            parser.add_argument(
                flag,
                type=kind,
                default=None,
                metavar=f.name.upper(),
                help=f"{f.metadata['help']} (default {f.default!r})",
            )


def _config(args: argparse.Namespace) -> Config:
    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(Config)}
    return Config.from_env(**overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", description="live-room interaction engine")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run engine nodes: one per core (--workers N)")
    _add_config_flags(run)

    token = sub.add_parser("token", help="mint a token with the configured (or dev) key")
    _add_config_flags(token)
    token.add_argument("--user", required=True)
    token.add_argument("--room", required=True)
    token.add_argument("--role", default="viewer", choices=[r.value for r in Role])
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds")
    token.add_argument("--device")
    token.add_argument("--name")
    token.add_argument("--kid")

    events = sub.add_parser("events", help="host event stream tools")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    tail = events_sub.add_parser("tail", help="print events as JSON lines")
    _add_config_flags(tail)
    tail.add_argument("--room", action="append", help="room to follow (repeat); default all")
    tail.add_argument("--group", help="consume with this consumer group and ack what is printed")
    tail.add_argument("--consumer", default="engine-cli")
    tail.add_argument(
        "--from-start", action="store_true", help="without --group: from the oldest kept"
    )

    config = sub.add_parser("config", help="list settings with env names and defaults")
    config.add_argument("--markdown", action="store_true", help="as docs/configuration.md")

    add_ctl_parser(sub)
    add_lottery_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ctl":
        return run_ctl(args, out)
    if args.command == "lottery":
        return run_lottery(args, out)
    if args.command == "config" and args.markdown:
        out.write(markdown_table())
        return 0
    if args.command == "config":
        for name, env, default, help_text in fields_doc():
            out.write(f"{env:<34} {default!r:<12} {help_text}  [--{name.replace('_', '-')}]\n")
        return 0
    try:
        config = _config(args)
        if args.command == "token":
            return _token(config, args, out)
        configure(config.log_level)
        if args.command == "run":
            from engine.supervisor import Supervisor, worker_argv, worker_count

            if worker_count(config) > 1:
                trio.run(Supervisor(config, worker_argv(), out).run)
            else:
                trio.run(_run, config, out)
            return 0
        if args.command == "events":
            trio.run(_events_tail, config, args, out)
            return 0
    except ValueError as exc:
        sys.stderr.write(f"engine: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


def _token(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    keys = resolve_keys(config)
    if not keys:
        sys.stderr.write("engine: no token keys: set ENGINE_TOKEN_KEYS or pass --dev\n")
        return 2
    token = mint_token(keys, user=args.user, room=args.room, role=args.role, ttl_s=args.ttl,
                       kid=args.kid, device=args.device, name=args.name)  # fmt: skip
    out.write(token + "\n")
    return 0


async def _run(config: Config, out: TextIO) -> None:
    from engine.node import Engine

    engine = Engine(config)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(engine.serve)
        out.write(
            f"engine node {address.node_id} is up\n"
            f"  viewer WebSocket: {address.ws_url}?token=<JWT>\n"
            f"  metrics:          {address.http_url}/metrics\n"
            f"  control API:      {address.http_url}/api/openapi.json\n"
            f"  control socket:   {address.control_socket or '-'}  (engine ctl --help)\n"
            f"  redis:            {address.redis_url}\n"
        )
        if config.dev:
            mint = ".venv/bin/engine token --dev --user alice --room demo"
            out.write(
                f"  dev token:        {mint}\n"
                f"  try:              .venv/bin/python -m websockets "
                f'"{address.ws_url}?token=$({mint})"\n'
            )
        if config.demo_pages:
            from engine.web import demo_banner

            out.write(demo_banner(address.http_url, dev=config.dev))
        out.flush()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("draining", signal=signal.Signals(signum).name)
                await engine.drain()
                nursery.cancel_scope.cancel()
                break


async def _events_tail(config: Config, args: argparse.Namespace, out: TextIO) -> None:
    from engine.events.consumer import EventConsumer, HostEvent, tail
    from engine.store.store import open_redis

    if not config.redis_url:
        raise ValueError("set ENGINE_REDIS_URL (or --redis-url) to the engine's Redis")

    def emit(event: HostEvent) -> None:
        out.write(orjson.dumps(dataclasses.asdict(event)).decode() + "\n")
        out.flush()

    async with open_redis(config.redis_url) as redis:
        if args.group:
            consumer = EventConsumer(redis, args.group, args.consumer, rooms=args.room)
            async for event in consumer:
                emit(event)
                await consumer.ack(event)
        else:
            rooms: Any = args.room
            if not rooms:
                raise ValueError("without --group, name the rooms to follow with --room")
            async for event in tail(redis, rooms, from_start=args.from_start):
                emit(event)


if __name__ == "__main__":
    sys.exit(main())
