"""locust scenarios for a live room: viewers on the viewer WebSocket, one anchor on the control API.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8901          # web UI on :8089
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8901 --headless -u 200 -r 50 -t 60s

User classes (pick some by name on the command line, or `--class-picker` in the web UI):

* `Anchor` (exactly one: `fixed_count = 1`): creates and starts the room through the HTTP control
  API, then runs the same cycle until the test stops (`--cycle-s`): a product card and a flash
  sale with a countdown (`--countdown-s`), a coupon drop, a lottery, its draw, a live-numbers
  read. Its calls show in locust's statistics under their command names (`POST start_seckill`).
* `Viewer`: joins the room, chats (every danmaku carries its send time) and likes; grabs at a
  sale's t0, claims a dropped coupon and enters a lottery after a person's reaction delay.
* `Lurker`: joins, likes now and then, grabs, claims and enters like a viewer but never chats
  (most of a real room).

Everything a viewer receives is reported as locust requests of type "WS": `join` (connect to
welcome), `danmaku` / `like` (send to answer), `deliver` (a danmaku's send to its delivery to a
watching viewer), `grab:<code>`, `claim:<code>`, `enter:<code>`, `keyword` (send to answer),
`popup:<kind>` (the engine's popup time to delivery), `closed:<code>`, `error:<code>`. Codes
that are a lost race (`grab:sold_out`, `claim:all_claimed`, ...) are successes; a failure always
means something went wrong. See loadtest/README.md. The pure part is loadtest/locustproto.py.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
import websocket
from locust import HttpUser, User, between, constant, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `loadtest` from any cwd
from loadtest import locustproto as lp
from loadtest.control import OPENAPI_PATH, operations

_TAGS: dict[int, str] = {}
_numbers = itertools.count()
_DEFAULT_ROOM = f"locust-{int(time.time()):x}"


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument("--room", default=_DEFAULT_ROOM, help="room id (default: a new one)")
    parser.add_argument(
        "--ws-url",
        default="",
        env_var="LOCUST_WS_URL",
        help="viewer WebSocket URL (default: --host's, port 8901 -> 8900)",
    )
    parser.add_argument(
        "--engine-secret",
        default="",
        env_var="LOCUST_ENGINE_SECRET",
        is_secret=True,
        help="token key 'kid:secret' (default: ENGINE_TOKEN_KEYS, else the dev "
        "key in --engine-data-dir/dev-keys.json)",
    )
    parser.add_argument(
        "--engine-data-dir", default="var", help="data dir of `engine run --dev` (its dev key)"
    )
    parser.add_argument("--codec", default="json", choices=["json", "msgpack"])
    parser.add_argument("--cycle-s", type=float, default=30.0, help="the anchor's cycle")
    parser.add_argument("--countdown-s", type=float, default=3.0, help="a sale's countdown")
    parser.add_argument("--sale-stock", type=int, default=0, help="0: a quarter of the users")
    parser.add_argument("--coupons", type=int, default=0, help="per drop; 0: half the users")
    parser.add_argument(
        "--watch-share",
        type=float,
        default=0.2,
        help="share of viewers that time every danmaku's delivery",
    )
    parser.add_argument(
        "--real-ip",
        action="store_true",
        help="send no X-Forwarded-For (default: a 10.x address per viewer, "
        "used only if the engine trusts this machine as a proxy)",
    )
    parser.add_argument(
        "--lift-ip-limits",
        action="store_true",
        help="the anchor switches the room's per-IP rate limits off (set_limit) first",
    )
    parser.add_argument("--end-room", action="store_true", help="end the room when stopping")


def _option(env: Any, name: str, default: Any) -> Any:
    value = getattr(env.parsed_options, name, None) if env.parsed_options else None
    return default if value is None else value


def _keys(env: Any) -> dict[str, bytes]:
    secret = _option(env, "engine_secret", "") or os.environ.get("ENGINE_TOKEN_KEYS", "")
    secret = secret or lp.dev_keys(_option(env, "engine_data_dir", "var"))
    return lp.parse_keys(secret)


def _fire(env: Any, m: lp.Metric, request_type: str = "WS") -> None:
    env.events.request.fire(
        request_type=request_type,
        name=m.name,
        response_time=m.ms,
        response_length=m.length,
        context={},
        exception=EngineAnswer(m.error) if m.error else None,
    )


class EngineAnswer(Exception):
    """A failure: the engine's code (`rate_limited`, `no_answer`, close code, ...)."""


class RoomViewer(User):
    """A viewer socket: one greenlet reads frames, tasks and timers send."""

    abstract = True
    chats = False

    def on_start(self) -> None:
        env = self.environment
        self.n = next(_numbers)
        self.user = f"v{_process_tag()}-{self.n}"
        share = float(_option(env, "watch_share", 0.2))
        watcher = share > 0 and self.n % max(1, round(1 / share)) == 0
        self.brain = lp.ViewerBrain(self.user, watcher=watcher)
        self.room = _option(env, "room", _DEFAULT_ROOM)
        self.codec = _option(env, "codec", "json")
        self.ws_url = _option(env, "ws_url", "") or lp.default_ws_url(env.host or "")
        self.keys = _keys(env)
        self.headers = (
            []
            if _option(env, "real_ip", False)
            else [f"X-Forwarded-For: {lp.fake_ip(zlib.crc32(self.user.encode()))}"]
        )
        self.ws: websocket.WebSocket | None = None
        self.greenlets = gevent.pool.Group()
        self.closing = False

    def on_stop(self) -> None:
        self.closing = True
        if self.ws is not None:
            self.ws.close(timeout=1)
        self.greenlets.kill(block=False)

    # -- connection -------------------------------------------------------------------------

    def connected(self) -> bool:
        """Connect (again) if not connected; False if that failed."""
        if self.ws is not None:
            return True
        b = self.brain
        token = lp.mint(
            self.keys, user=self.user, room=self.room, device=f"d-{self.user}", name=f"fan {self.n}"
        )
        url = lp.viewer_url(self.ws_url, token, self.room, b.seq, b.epoch)
        name = "rejoin" if b.epoch else "join"
        t0 = time.perf_counter()
        try:
            ws = websocket.create_connection(
                url,
                timeout=15,
                subprotocols=[self.codec],
                header=self.headers,
                enable_multithread=True,
                skip_utf8_validation=True,
            )
            opcode, frame = ws.recv_data_frame(True)
        except Exception as exc:  # refused, reset, timeout: a failed join
            _fire(self.environment, lp.Metric(name, _ms(t0), type(exc).__name__))
            return False
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            _fire(self.environment, lp.Metric(name, _ms(t0), f"close {_close_code(frame.data)}"))
            return False
        welcome = lp.decode(frame.data, opcode == websocket.ABNF.OPCODE_BINARY)
        if not welcome or welcome.get("type") != "welcome":
            ws.close()
            _fire(self.environment, lp.Metric(name, _ms(t0), "no welcome"))
            return False
        if b.epoch:
            name = f"rejoin:{welcome.get('recovery')}"
        _fire(self.environment, lp.Metric(name, _ms(t0), length=len(frame.data)))
        self.ws = ws
        self.handle(welcome)
        self.greenlets.spawn(self.read, ws)
        return True

    def read(self, ws: websocket.WebSocket) -> None:
        binary = websocket.ABNF.OPCODE_BINARY
        while True:
            try:
                opcode, frame = ws.recv_data_frame(True)
            except Exception as exc:  # the socket broke
                self.lost(ws, type(exc).__name__)
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.lost(ws, str(_close_code(frame.data)))
                return
            if opcode in (binary, websocket.ABNF.OPCODE_TEXT):
                msg = lp.decode(frame.data, opcode == binary)
                if msg is None:
                    _fire(self.environment, lp.Metric("error:undecodable", 0.0, "undecodable"))
                else:
                    self.handle(msg)

    def lost(self, ws: websocket.WebSocket, why: str) -> None:
        if self.ws is ws:
            self.ws = None
        if not self.closing:
            _fire(self.environment, lp.Metric(f"closed:{why}", 0.0, why))

    # -- messages ---------------------------------------------------------------------------

    def handle(self, msg: dict[str, Any]) -> None:
        metrics, later = self.brain.on_message(msg, time.monotonic(), time.time() * 1000)
        for m in metrics:
            _fire(self.environment, m)
        for item in later:
            self.greenlets.add(gevent.spawn_later(item.delay, self.act, item))

    def act(self, item: lp.Later) -> None:
        if item.kind == "retry":
            msg = self.brain.retry_message(item.target)
        elif self.brain.wants(item):
            msg = self.brain.request(item.kind, item.target, time.monotonic())
        else:
            msg = None
        if msg is not None:
            self.send(msg)

    def send(self, msg: dict[str, Any]) -> None:
        ws = self.ws
        if ws is None:
            return  # its answer never comes: reported as no_answer
        try:
            ws.send(
                lp.encode(msg, self.codec),
                websocket.ABNF.OPCODE_BINARY
                if self.codec == "msgpack"
                else websocket.ABNF.OPCODE_TEXT,
            )
        except Exception as exc:  # the socket broke: the reader reports it
            self.lost(ws, type(exc).__name__)

    def tick(self) -> bool:
        """Every task starts here: report overdue answers, be connected."""
        for m in self.brain.overdue(time.monotonic()):
            _fire(self.environment, m)
        return self.connected()

    # -- tasks ------------------------------------------------------------------------------

    @task(2)
    def like(self) -> None:
        if self.tick():
            self.send(self.brain.like(time.monotonic()))

    @task(1)
    def chat(self) -> None:
        if self.tick() and self.chats:
            self.send(self.brain.danmaku(time.monotonic(), int(time.time() * 1_000_000)))


class Viewer(RoomViewer):
    """Says hello on joining, then chats and likes every few seconds (a danmaku about every
    9 s), acts on every popup."""

    weight = 1
    chats = True
    wait_time = between(2, 4)

    def on_start(self) -> None:
        super().on_start()
        self.chat()


class Lurker(RoomViewer):
    """Watches, likes now and then, acts on every popup, never chats."""

    weight = 1
    wait_time = between(5, 15)


def _process_tag() -> str:
    """Distinct in every locust process: `--processes` forks after importing this file, so
    anything computed at import is the same in all of them."""
    pid = os.getpid()
    if pid not in _TAGS:
        _TAGS[pid] = f"{pid:x}{random.randrange(16**3):03x}"
    return _TAGS[pid]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _close_code(data: bytes) -> int:
    return int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005


class Anchor(HttpUser):
    """Runs the live through the control API (HTTP), on the plan of `locustproto.anchor_plan`."""

    fixed_count = 1
    wait_time = constant(0)

    def on_start(self) -> None:
        env = self.environment
        self.room = _option(env, "room", _DEFAULT_ROOM)
        self.keys = _keys(env)
        self.ops: dict[str, tuple[str, str]] = {}
        with self.client.get(OPENAPI_PATH, name="openapi", catch_response=True) as response:
            if response.status_code == 200:
                self.ops = operations(response.json())
            else:
                response.failure(f"HTTP {response.status_code}")
        runner = env.runner
        users = getattr(runner, "target_user_count", None) or _option(env, "num_users", 10)
        run = format(int(time.time() * 1000), "x")[-7:]
        self.plan = lp.anchor_plan(
            run=run,
            viewers=max(1, int(users) - 1),
            cycle_s=_option(env, "cycle_s", 30.0),
            countdown_s=_option(env, "countdown_s", 3.0),
            stock=_option(env, "sale_stock", 0),
            coupons=_option(env, "coupons", 0),
            lift_ip_limits=_option(env, "lift_ip_limits", False),
        )
        self.t0 = time.monotonic()

    def on_stop(self) -> None:
        if _option(self.environment, "end_room", False) and self.ops:
            self.call("end_room", {})

    def token(self, role: str) -> str:
        return lp.mint(
            self.keys,
            user=lp.ANCHOR if role == "anchor" else "locust-host",
            room=self.room,
            role=role,
            ttl_s=3600,
        )

    def call(self, command: str, params: dict[str, Any]) -> None:
        if command not in self.ops:
            _fire(self.environment, lp.Metric(command, 0.0, "not in the OpenAPI document"), "POST")
            return
        method, path = self.ops[command]
        role = "admin" if command == "create_room" else "anchor"
        headers = {"Authorization": f"Bearer {self.token(role)}"}
        body = None if method == "GET" else params
        with self.client.request(
            method,
            path.replace("{room}", self.room),
            json=body,
            headers=headers,
            name=command,
            catch_response=True,
        ) as response:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            code = lp.control_code(response.status_code, answer)
            if code == "ok" or (command, code) in lp.TOLERATED:
                response.success()
            else:
                response.failure(code)

    @task
    def live(self) -> None:
        step = next(self.plan)
        delay = self.t0 + step.at - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        self.call(step.command, lp.resolve(step, int(time.time() * 1000)))
