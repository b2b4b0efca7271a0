"""The built wheel carries every package, every Lua script and the web client's files, and works
outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.integration
def test_wheel_contains_every_package_and_lua_script(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "engine").rglob("__init__.py")}
    for package in packages:
        assert f"{package}/__init__.py" in names, f"{package} is missing from the wheel"
    lua = ROOT / "scripts" / "lua"
    for script in [*lua.glob("*.lua"), *lua.glob("lib/*.lua")]:
        inside = f"engine/lua/{script.relative_to(lua)}"
        assert inside in names, f"{inside} is missing from the wheel"
    static = ROOT / "engine" / "web" / "static"  # the JS client and the demo pages
    for asset in (p for p in static.rglob("*") if p.is_file()):
        inside = f"engine/web/static/{asset.relative_to(static)}"
        assert inside in names, f"{inside} is missing from the wheel"
