"""The JS client without a browser: its JSDoc types checked by TypeScript (strict), its logic
against a scripted WebSocket (client.test.mjs, `node --test`), and its msgpack codec against
Python's msgpack (the engine's)."""

from __future__ import annotations

import json
import random
from typing import Any

import msgpack
import pytest

from tests.browser import support


async def test_client_types_check_strictly() -> None:
    support.require(chromium=False, package="typescript")
    await support.node("node_modules/typescript/bin/tsc", "-p", "tsconfig.json", timeout_s=180)


async def test_client_logic() -> None:
    """Resume position, resync, answers by rid, grab retry with the same rid after a drop, like
    coalescing, popups once, stock versions, pings and the server clock, dead connections,
    final close codes, token refresh, the control client."""
    support.require(chromium=False)
    out = await support.node("--test", "client.test.mjs", timeout_s=180)
    assert "# fail 0" in out, out


EDGE_INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, -1, -32, -33,
             -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**53) + 1]  # fmt: skip
EDGE_STRINGS = ["", "a" * 31, "a" * 32, "é" * 200, "b" * 256, "c" * 65536, "emoji 👋🔥", "中文弹幕"]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice(EDGE_INTS)
    if kind == 1:
        return rng.randint(-(2**53) + 1, 2**53 - 1)
    if kind == 2:
        return rng.choice([0.5, -1.25, 1e300, -2.5e-10, 3.141592653589793])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.choice(EDGE_STRINGS)
    if kind == 5:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 300])))
    if kind == 6:
        return [_value(rng, depth + 1) for _ in range(rng.choice([0, 2, 15, 16, 20]))]
    size = rng.choice([0, 1, 15, 16, 40])
    return {f"k{i}": _value(rng, depth + 1) for i in range(size)}


async def test_msgpack_codec_round_trips_what_python_encodes() -> None:
    """msgpack.js decodes what the engine's msgpack encodes (every type and size class the
    engine can send) and encodes it back to the same value."""
    support.require(chromium=False)
    rng = random.Random(9)
    values = [*EDGE_INTS, *EDGE_STRINGS, {"type": "chat", "msgs": [{"id": "n.1", "seq": 2**40}]}]
    values += [_value(rng) for _ in range(300)]
    packed = [msgpack.packb(v).hex() for v in values]
    out = await support.node("msgpack_roundtrip.mjs", stdin=json.dumps(packed).encode())
    for value, hex_ in zip(values, json.loads(out), strict=True):
        again = msgpack.unpackb(bytes.fromhex(hex_))
        assert again == value
        if isinstance(value, float) and not value.is_integer():
            assert isinstance(again, float)


@pytest.mark.parametrize("value", [2**64 - 1, -(2**63)])
async def test_msgpack_codec_keeps_64_bit_integers(value: int) -> None:
    support.require(chromium=False)
    out = await support.node(
        "msgpack_roundtrip.mjs", stdin=json.dumps([msgpack.packb(value).hex()]).encode()
    )
    assert msgpack.unpackb(bytes.fromhex(json.loads(out)[0])) == value
