"""Lua scripts: one `.lua` file each in `scripts/lua/` (shipped in the package as `engine.lua`),
each opening with a header comment that states KEYS, ARGV, the return value and the invariant.

A script may share a function from `scripts/lua/lib/` with a line `--!include lib/<name>.lua`,
replaced by that file's text when the script is loaded (Redis scripts cannot call each other, and
the publish-with-sequence step must be the same code in every script that publishes).

Scripts are loaded once per client (SCRIPT LOAD) and called by SHA; a NOSCRIPT reply (Redis
restarted or flushed its script cache) makes coredis load the script again and retry.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

LUA_PACKAGE: Final = "engine.lua"
_INCLUDE: Final = re.compile(r"^--!include (\S+)$", re.MULTILINE)


def _read(folder: Traversable, relative: str) -> str:
    entry = folder
    for part in relative.split("/"):
        entry = entry / part
    return entry.read_text(encoding="utf-8")


@cache
def script_sources() -> dict[str, str]:
    """{name: source with includes expanded} for every top-level script in the package."""
    folder = resources.files(LUA_PACKAGE)
    sources = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".lua"):
            text = entry.read_text(encoding="utf-8")
            sources[entry.name.removesuffix(".lua")] = _INCLUDE.sub(
                lambda m: _read(folder, m.group(1)), text
            )
    return sources


def header_of(source: str) -> list[str]:
    """The leading comment lines of a script (its contract)."""
    lines = []
    for line in source.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return lines
