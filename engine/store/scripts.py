"""Lua scripts: one `.lua` file each in `scripts/lua/` (shipped in the package as `engine.lua`),
each opening with a header comment that states KEYS, ARGV, the return value and the invariant.

They are loaded once per client (SCRIPT LOAD) and called by SHA; a NOSCRIPT reply (Redis restarted
or flushed its script cache) makes coredis load the script again and retry.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

LUA_PACKAGE: Final = "engine.lua"


@cache
def script_sources() -> dict[str, str]:
    """{name: source} for every script in the package."""
    folder = resources.files(LUA_PACKAGE)
    return {
        entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".lua")
    }


def header_of(source: str) -> list[str]:
    """The leading comment lines of a script (its contract)."""
    lines = []
    for line in source.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return lines
