"""Every feature's control commands, one module per feature. Each module has `commands()`, the
list of its `Command`s; a feature that lands later adds its module to MODULES (and nothing else:
transports, OpenAPI, `engine ctl` and docs/control.md pick the commands up from the registry)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Final

from engine.control.registry import Command, Registry

MODULES: Final = (
    "engine.control.commands.rooms",
    "engine.control.commands.chat",
    "engine.control.commands.popups",
    "engine.control.commands.reservations",
    "engine.control.commands.shares",
    "engine.control.commands.numbers",
    "engine.control.commands.seckill",
    "engine.control.commands.antifraud",
    "engine.control.commands.coupons",
    "engine.control.commands.lottery",
)


def build_registry(modules: Iterable[str] = MODULES) -> Registry:
    registry = Registry()
    for name in modules:
        commands: Callable[[], list[Command]] = import_module(name).commands
        registry.extend(commands())
    return registry
