"""One `Config` for a node: documented defaults, overridable from `ENGINE_*` env and CLI flags.

Every field carries its help text in its metadata; the CLI flags, the env names and the table in
`docs/configuration.md` are generated from the dataclass, so a setting is described once.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "ENGINE_"


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True, slots=True)
class Config:
    # --- network -------------------------------------------------------------------------
    host: str = _opt("127.0.0.1", "interface the viewer gateway and HTTP server bind to")
    ws_port: int = _opt(8900, "viewer WebSocket port (0 picks a free one)")
    reuse_port: bool = _opt(False, "share the viewer port with other nodes (SO_REUSEPORT)")
    workers: int = _opt(
        0, "`engine run`: node processes sharing the viewer port; 0 = one per core (os.cpu_count)"
    )
    http_port: int = _opt(8901, "HTTP port for /metrics and /healthz (0 picks a free one)")
    public_ws_url: str = _opt(
        "", "viewer URL to print and hand out (default ws://host:ws_port/v1/ws)"
    )
    # --- redis ---------------------------------------------------------------------------
    redis_url: str = _opt(
        "", "Redis to use, e.g. redis://10.0.0.5:6379/0; empty = launch a private redis-server"
    )
    data_dir: str = _opt("./var", "where the private redis-server keeps its data and logs")
    node_id: str = _opt("", "this node's id in presence and logs (default host-pid-random)")
    # --- identity ------------------------------------------------------------------------
    token_keys: str = _opt(
        "",
        "HS256 key set as 'kid:secret,kid2:secret2' (secrets >= 32 bytes); "
        "the token's kid header picks the key",
    )
    token_leeway_s: float = _opt(5.0, "clock skew allowed when checking exp/iat")
    dev: bool = _opt(
        False,
        "development mode: generates a key set under data_dir if none given, and serves "
        "/demo/token (demo viewer and anchor tokens; never without --dev)",
    )
    demo_pages: bool = _opt(
        True, "serve the JS client, demo viewer page and anchor console under /demo/ (HTTP port)"
    )
    # --- protocol limits -----------------------------------------------------------------
    max_message_bytes: int = _opt(4096, "largest client message accepted; larger -> too_large")
    hard_message_bytes: int = _opt(65536, "a client message this large closes the socket (1009)")
    max_danmaku_chars: int = _opt(200, "longest danmaku text, in characters")
    max_likes_per_message: int = _opt(100, "most likes one `like` message may carry")
    abuse_strikes: int = _opt(20, "protocol errors within abuse_window_s that close the socket")
    abuse_window_s: float = _opt(10.0, "window for counting protocol errors")
    handshake_timeout_s: float = _opt(10.0, "time a new socket has to finish the upgrade")
    max_concurrent_joins: int = _opt(
        64,
        "viewers upgrading and joining at once on this node; more wait their turn (no deadline "
        "while waiting), so a reconnect storm does not starve the joins' own Redis calls. "
        "0: no limit",
    )
    # --- fan-out -------------------------------------------------------------------------
    chat_tick_ms: int = _opt(
        100, "chat coalescing tick; 0 sends every chat message in a frame of its own at once"
    )
    chat_publish_window_ms: float = _opt(
        20.0,
        "danmaku a node takes in for a room within this window go to Redis as one message "
        "(one seq); 0 = only those that queue behind a publish under way; with chat_tick_ms 0 "
        "every danmaku is a message of its own",
    )
    chat_frame_max_messages: int = _opt(200, "a chat frame goes out early at this many messages")
    chat_frame_max_bytes: int = _opt(32768, "a chat frame goes out early near this many bytes")
    outbox_max_bytes: int = _opt(
        262144, "bytes a slow viewer may have queued; chat is dropped first, then it is closed"
    )
    slow_consumer_timeout_s: float = _opt(
        10.0, "a viewer continuously behind for this long is closed with slow_consumer"
    )
    socket_send_buffer: int = _opt(
        0, "SO_SNDBUF of viewer sockets in bytes; 0 leaves it to the kernel's autotuning"
    )
    fanout_members_per_pass: int = _opt(
        0,
        "write each frame of a room with more viewers on this node to this many of them per "
        "scheduler pass, so reads and Redis replies go on during a 10,000-viewer fan-out (the "
        "frame still reaches exactly the viewers the room had when it was sent, in order). "
        "0 (default): every frame to all at once; pacing measured 30-60 ms worse at p99 in a "
        "hot room and no clear gain in a flash-sale spike (docs/benchmarks.md)",
    )
    read_wakeups_per_pass: int = _opt(
        32,
        "viewer connections woken per scheduler pass when many are readable at once (a "
        "stampede); the rest wait their turn in arrival order, so Redis replies are not starved "
        "behind thousands of reads. 0: each connection waits on trio's wait_readable instead",
    )
    heartbeat_interval_s: float = _opt(15.0, "server ping interval")
    heartbeat_timeout_s: float = _opt(
        45.0, "a viewer silent (no frame, no pong) this long is closed"
    )
    room_linger_s: float = _opt(
        5.0, "keep a room's bus subscription this long after its last viewer"
    )
    # --- presence ------------------------------------------------------------------------
    presence_refresh_s: float = _opt(2.0, "how often a node tells Redis its viewers are there")
    presence_grace_s: float = _opt(
        8.0,
        "a person not refreshed this long is gone (one viewer.left); reconnects within "
        "it are not leaves, and a dead node's viewers drop out of the count after it",
    )
    # --- history and recovery ------------------------------------------------------------
    history_size: int = _opt(5000, "room messages kept for resume (approximate cap)")
    history_ttl_s: float = _opt(300.0, "a room's history expires this long after its last message")
    replay_cache_size: int = _opt(
        2000, "recent messages each node keeps in memory per room to serve resumes"
    )
    # --- host events ---------------------------------------------------------------------
    event_stream_maxlen: int = _opt(100_000, "approximate cap of each room's host event stream")
    # --- flash sales (seckill) -----------------------------------------------------------
    seckill_hold_s: float = _opt(
        900.0, "a granted grab's hold: unconfirmed for this long, its stock goes back"
    )
    seckill_batch_window_ms: float = _opt(
        1.0, "grabs of one sale arriving within this window go to Redis in one script call"
    )
    seckill_batch_max: int = _opt(256, "most grabs in one script call")
    seckill_batch_in_flight: int = _opt(4, "script calls in flight per sale and node")
    seckill_max_pending: int = _opt(
        50_000, "grabs a node queues at most; beyond, a grab is answered unavailable"
    )
    seckill_max_inflight_per_viewer: int = _opt(
        16, "grabs one viewer may have unanswered; beyond, rate_limited"
    )
    seckill_soldout_recheck_s: float = _opt(
        0.25, "a node answers a sold-out sale by itself, rechecking Redis this often"
    )
    seckill_stock_interval_s: float = _opt(
        0.5,
        "a sale's stock goes to viewers at most this often (and at most once per chat tick): "
        "each update is a frame to every viewer of the room",
    )
    seckill_sweep_interval_s: float = _opt(1.0, "how often expired holds are released")
    seckill_retention_s: float = _opt(
        3 * 86400.0, "a finished sale's records (holds, requests) are kept this long"
    )
    # --- coupons and lotteries (docs/coupons.md, docs/lottery.md) ----------------------
    promo_counter_interval_s: float = _opt(
        0.5,
        "coupons left and lottery entrants go to viewers at most this often (and at most once "
        "per chat tick); claims are batched like grabs (seckill_batch_*)",
    )
    lottery_claim_s: float = _opt(
        86400.0, "a lottery winner's claim window; unclaimed prizes expire after it"
    )
    # --- control plane (docs/control.md) ------------------------------------------------
    control_socket: str = _opt(
        "",
        "operators' Unix socket (JSON-RPC, mode 0600, no token: trusted local access); "
        "empty = <data_dir>/control.sock, 'none' = no socket",
    )
    numbers_interval_s: float = _opt(1.0, "live numbers push interval on the control WebSocket")
    reminder_lead_s: float = _opt(
        900.0, "reminder.due events are written this long before a reserved room's start"
    )
    scheduler_poll_s: float = _opt(1.0, "how often a node looks for due jobs (reminders, ...)")
    scheduler_lease_s: float = _opt(
        30.0, "a job a node claimed is claimed again by another node after this long"
    )
    # --- anti-fraud (docs/antifraud.md) -------------------------------------------------
    antifraud: bool = _opt(
        True, "rate limits, bans and mutes, keyword filter and bot rules in front of viewers"
    )
    trusted_proxies: str = _opt(
        "", "IPs or networks (comma-separated) of proxies whose X-Forwarded-For names the client"
    )
    limit_join: str = _opt(
        "user=10/1m burst 5, ip=1200/1m burst 600, device=10/1m burst 5",
        "joins per user, IP and device ('dimension=RATE/PERIOD burst N, ...'; 'off': none)",
    )
    limit_danmaku: str = _opt(
        "user=20/1m burst 5, ip=1200/1m burst 300, device=20/1m burst 5",
        "danmaku per user, IP and device",
    )
    limit_like: str = _opt(
        "user=10/1s burst 100, ip=2000/1s burst 20000, device=10/1s burst 100",
        "likes (counted one by one, not per message) per user, IP and device",
    )
    limit_grab: str = _opt(
        "user=2/1s burst 5, ip=1000/1s burst 5000, device=2/1s burst 5",
        "flash-sale grabs per user, IP and device",
    )
    limit_coupon: str = _opt(
        "user=5/1m burst 3, ip=600/1m burst 300, device=5/1m burst 3",
        "coupon claims per user, IP and device",
    )
    limit_lottery: str = _opt(
        "user=5/1m burst 3, ip=1200/1m burst 600, device=5/1m burst 3",
        "lottery entries per user, IP and device",
    )
    antifraud_bot_rules: str = _opt(
        "",
        "bot rule modes and thresholds, 'rule=mode[@threshold], ...' (modes: off, shadow, mute, "
        "refuse_grabs, ban); rules not named run in shadow mode (log only)",
    )
    antifraud_rule_sanction_s: float = _opt(
        3600.0, "how long a mute, grab refusal or ban imposed by a bot rule lasts"
    )
    antifraud_window_s: float = _opt(
        600.0, "accounts per IP and per device are counted over this window"
    )
    # --- logging -------------------------------------------------------------------------
    log_level: str = _opt("info", "debug, info, warning or error")

    # -- derived ------------------------------------------------------------------------------

    def resolved_node_id(self) -> str:
        return self.node_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"

    def key_set(self) -> dict[str, bytes]:
        """Parse `token_keys` into {kid: secret}; raises ValueError with the reason."""
        keys: dict[str, bytes] = {}
        for item in filter(None, (p.strip() for p in self.token_keys.split(","))):
            kid, sep, secret = item.partition(":")
            if not sep or not kid or not secret:
                raise ValueError(f"token_keys entry {item!r} is not 'kid:secret'")
            if len(secret.encode()) < 32:
                raise ValueError(f"token key {kid!r} is shorter than 32 bytes")
            keys[kid] = secret.encode()
        return keys

    def control_socket_path(self) -> str | None:
        """Where the operators' Unix socket is (None: switched off)."""
        if self.control_socket.strip().lower() == "none":
            return None
        return self.control_socket or os.path.join(self.data_dir, "control.sock")

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Defaults, then `ENGINE_<FIELD>` variables, then explicit overrides (e.g. CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = parse_value(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def parse_value(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = (
        f.type
        if isinstance(f.type, type)
        else {"int": int, "float": float, "bool": bool}.get(str(f.type), str)
    )
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return lowered in {"1", "true", "yes", "on"}
        return kind(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid {kind.__name__}"
        ) from None


def markdown_table() -> str:
    """docs/configuration.md, generated (a test keeps the file in step)."""
    lines = [
        "# Configuration",
        "",
        "Every setting has a default, an environment variable and a flag of `engine run`.",
        "Precedence: flag > environment > default. `engine config` prints the same list.",
        "This file is generated from `engine/config.py` by `engine config --markdown`.",
        "",
        "| flag | env | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, env, default, help_text in fields_doc():
        flag = "--" + name.replace("_", "-")
        lines.append(f"| `{flag}` | `{env}` | `{default!r}` | {help_text} |")
    return "\n".join(lines) + "\n"


def fields_doc() -> list[tuple[str, str, Any, str]]:
    """(field, env name, default, help) for every setting, for the CLI and the docs."""
    return [
        (f.name, ENV_PREFIX + f.name.upper(), f.default, f.metadata["help"])
        for f in dataclasses.fields(Config)
    ]
