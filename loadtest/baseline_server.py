"""The baseline for the fan-out benchmark: a plain `websockets` (asyncio) broadcast server.

It speaks just enough of the engine's viewer protocol for the same load client: path
`/v1/ws?token=<JWT>`, subprotocol `json`, a `welcome` frame first, `danmaku` in, `chat` frames
out with the same item fields (id, user, name, text, ts). No Redis, no outboxes, no limits: each
danmaku goes straight to every connection with `websockets.broadcast`, in connection order.

* `--batch-ms 0`: every danmaku is broadcast at once in a frame of its own;
* `--batch-ms 100`: items are collected and broadcast as one frame every 100 ms (early when the
  batch reaches 200 items or ~32 KiB, the engine's defaults).

For the flash-sale spike (`bench_seckill --spike-baseline`) it also answers `grab` from a stock
held in memory (`--stock`; limit one per user; no Redis, no holds, no events): a `result` frame
to the grabber at once, one `stock` frame to every viewer when the first unit goes and a
`sold_out` popup to every viewer when the last does, the frames the engine sends in a spike.
That is the least any Python server does for a spike: the floor under the engine's figures.

    python -m loadtest.baseline_server --port 9100 --batch-ms 0 --token-key 'bench:<secret>'
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import orjson
import websockets
from websockets.asyncio.server import ServerConnection, serve

MAX_BATCH_ITEMS = 200
MAX_BATCH_BYTES = 32768


class Room:
    def __init__(self, batch_s: float) -> None:
        self.members: dict[ServerConnection, None] = {}  # insertion order = connection order
        self.batch_s = batch_s
        self.batch: list[dict[str, Any]] = []
        self.batch_bytes = 0
        self.ids = itertools.count(1)
        self.node = f"baseline-{os.getpid()}"
        self.stock = 0  # flash sale (grab), in memory
        self.buyers: set[str] = set()
        self.stock_sent = False

    def publish(self, item: dict[str, Any], size: int) -> None:
        if self.batch_s <= 0:
            self.broadcast([item])
            return
        self.batch.append(item)
        self.batch_bytes += size
        if len(self.batch) >= MAX_BATCH_ITEMS or self.batch_bytes >= MAX_BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            batch, self.batch, self.batch_bytes = self.batch, [], 0
            self.broadcast(batch)

    def broadcast(self, items: list[dict[str, Any]]) -> None:
        frame = orjson.dumps({"type": "chat", "msgs": items})
        websockets.broadcast(self.members, frame, text=True)

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(self.batch_s)
            self.flush()


def make_handler(room: Room, keys: dict[str, bytes]) -> Any:
    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        target = urlsplit(ws.request.path)
        token = (parse_qs(target.query).get("token") or [""])[0]
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            claims = jwt.decode(token, keys[kid], algorithms=["HS256"])
        except (jwt.PyJWTError, KeyError):
            await ws.close(4001, "bad_token")
            return
        user = str(claims["sub"])
        welcome = {"type": "welcome", "room": claims.get("room"), "user": user, "role": "viewer",
                   "conn": f"{room.node}.{id(ws):x}", "node": room.node}  # fmt: skip
        await ws.send(orjson.dumps(welcome).decode())
        room.members[ws] = None
        try:
            async for message in ws:
                answer = on_message(room, user, message)
                if answer is not None:
                    await ws.send(answer)
        except websockets.ConnectionClosed:
            pass
        finally:
            room.members.pop(ws, None)

    return handler


def on_message(room: Room, user: str, message: str | bytes) -> str | None:
    """The answer to send back to the sender, if any."""
    try:
        obj = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict) and obj.get("type") == "grab":
        return on_grab(room, user, obj.get("rid"))
    text = obj.get("text") if isinstance(obj, dict) else None
    if obj.get("type") != "danmaku" or not isinstance(text, str) or not 0 < len(text) <= 200:
        return None
    item = {"id": f"{room.node}.{next(room.ids):x}", "user": user, "name": user,
            "text": text, "ts": int(time.time() * 1000)}  # fmt: skip
    room.publish(item, len(message))
    return None


def on_grab(room: Room, user: str, rid: Any) -> str:
    answer: dict[str, Any] = {"type": "result", "rid": rid, "ok": False}
    if user in room.buyers:
        answer["code"] = "limit_reached"
    elif room.stock <= 0:
        answer["code"] = "sold_out"
    else:
        room.stock -= 1
        room.buyers.add(user)
        answer["ok"] = True
    if answer["ok"] and not room.stock_sent:
        room.stock_sent = True
        frame = orjson.dumps({"type": "stock", "sale": "spike", "left": room.stock})
        websockets.broadcast(room.members, frame, text=True)
    if answer["ok"] and room.stock == 0:
        frame = orjson.dumps({"type": "popup", "kind": "sold_out", "sale": "spike", "left": 0})
        websockets.broadcast(room.members, frame, text=True)
    return orjson.dumps(answer).decode()


async def main(args: argparse.Namespace) -> None:
    keys = {}
    for entry in args.token_key:
        kid, _, secret = entry.partition(":")
        keys[kid] = secret.encode()
    room = Room(args.batch_ms / 1000)
    room.stock = args.stock

    def only_viewer_path(conn: ServerConnection, request: Any) -> Any:
        if urlsplit(request.path).path not in ("/v1/ws", "/ws"):
            return conn.respond(404, "not found\n")
        return None

    async with serve(
        make_handler(room, keys),
        args.host,
        args.port,
        subprotocols=["json"],  # type: ignore[list-item]
        process_request=only_viewer_path,
        compression=None,
        ping_interval=None,
        backlog=4096,
    ) as server:
        ticker = asyncio.create_task(room.ticker()) if room.batch_s > 0 else None
        try:
            await server.serve_forever()
        finally:
            if ticker is not None:
                ticker.cancel()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--batch-ms", type=int, default=0, help="0 = one frame per message")
    parser.add_argument("--token-key", action="append", required=True, help="kid:secret")
    parser.add_argument("--stock", type=int, default=0, help="units a spike's grabs can win")
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        pass
