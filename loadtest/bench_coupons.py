"""Coupon stampede benchmark: --viewers viewers over WebSockets claim a batch of --quantity
coupons, every claim sent within --spread seconds (default: 10,000 claims within one second for
500 coupons).

    python -m loadtest.bench_coupons                          # the full stampede
    python -m loadtest.bench_coupons --viewers 60 --quantity 7 --client-procs 1   # smoke size

Against one engine node (`engine run`, its own redis-server) on this machine: the viewers
connect (spread over --client-procs load-client processes: a process may hold 20,000 open
files), the batch is dropped, and from t0 each viewer sends one `claim` at its own moment, evenly
over --spread seconds. Printed: claim latency p50/p99/max (send to answer; an answer that never
came counts as infinitely late), the answers by code, and the checks in Redis: exactly
min(quantity, viewers) granted, quantity = left + granted, one `coupon.granted` event per coupon,
no user with two coupons.
The load clients are loadtest/grabclient.py's epoll loops (sending claims instead of grabs); the
rest (client processes, engine start, percentiles) is loadtest/bench_seckill.py's.
The table goes to stdout, every figure to loadtest/results/coupons-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import trio

from engine.features.coupons import batch_spec
from engine.identity import mint_token
from engine.store import keys
from engine.store.coupons import CouponStore
from engine.store.store import open_redis
from loadtest.bench_seckill import (
    RESULTS,
    Bench,
    Clients,
    _stream_back,
    fmt,
    latency_summary,
    log,
    redis_version,
    wait_quiet,
)
from loadtest.grabclient import GrabLoop, worker_main
from loadtest.servers import machine_info, start_engine

KID, SECRET, ROOM = "bench", "coupon-benchmark-secret-" + "0123456789abcdef" * 2, "bench-coupons"
BATCH = "stampede"


def claim_frame(batch: str, rid: int) -> bytes:
    """A whole masked client frame `{"type":"claim","batch":...,"rid":...}` (zero mask key)."""
    payload = b'{"type":"claim","batch":"%s","rid":%d}' % (batch.encode(), rid)
    n = len(payload)
    head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0xFE)) + n.to_bytes(2, "big")
    return head + b"\x00\x00\x00\x00" + payload


class ClaimLoop(GrabLoop):
    """The grab client's loop, sending claims (its `spike` mode: one each, spread from t0)."""

    frame = staticmethod(claim_frame)


def claim_worker(ctl: Connection) -> None:
    """Entry point of a claim client process (multiprocessing, spawn)."""
    worker_main(ctl, ClaimLoop)


class CouponBench(Bench):
    def __init__(self, opts: argparse.Namespace) -> None:
        super().__init__(opts)
        self.keys = {KID: SECRET.encode()}

    def paths(self, prefix: str, n: int) -> list[str]:
        return [
            f"/v1/ws?token={mint_token(self.keys, user=f'{prefix}{i}', room=ROOM, ttl_s=4 * 3600)}"
            for i in range(n)
        ]

    def run(self) -> dict[str, Any]:
        opts = self.opts
        out: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": command_line(),
            "machine": machine_info() | {"trio": trio.__version__, "redis": redis_version()},
            "settings": dict(vars(opts)),
        }
        started = time.monotonic()
        sut = start_engine(100, f"{KID}:{SECRET}", self.logdir)
        redis_url = sut.argv[sut.argv.index("--redis-url") + 1]
        out["engine"] = {"pid": sut.proc.pid, "argv": sut.argv, "redis_url": redis_url}
        clients = Clients(opts.client_procs, claim_worker)
        try:
            out["stampede"] = self.stampede(sut, clients, redis_url)
        finally:
            clients.shutdown()
            sut.stop()
        out["wall_s"] = round(time.monotonic() - started, 1)
        out["verdicts"] = verdicts(out)
        return out

    def stampede(self, sut: Any, clients: Clients, redis_url: str) -> dict[str, Any]:
        opts = self.opts
        n, quantity = opts.viewers, opts.quantity
        started = time.monotonic()
        ok, failed, errors = clients.connect([sut.ws_port], self.paths("v", n), 128, 900)
        connect_s = time.monotonic() - started
        log(
            f"   stampede: {ok} viewers connected in {connect_s:.1f} s"
            + (f", {failed} failed: {errors}" if failed else "")
        )
        settle_s = wait_quiet([sut])  # joining viewers keep the node busy (online counts)
        ours = [sut.proc, *([sut.redis] if sut.redis else [])]
        other = self.wait_quiet(ours, clients)
        trio.run(self._drop, redis_url, quantity)
        t0 = time.time() + 1.0  # the popup has reached everyone well before
        profiler = self.profiler
        (engine_cpu,), client_cpu = clients.fire_spike(
            BATCH, t0, opts.spread, ok, opts.drain, lambda: [sut.proc.cpu_s()],
            (lambda: profiler.start(sut, "engine-stampede", opts.spread + 3)) if profiler
            else None,
        )  # fmt: skip
        lat, codes, missing, lost = clients.spike_results()
        check = trio.run(self._check, redis_url, quantity)
        res = {
            "viewers": ok,
            "connect_failed": failed,
            "connect_s": round(connect_s, 1),
            "settle_s": round(settle_s, 1),
            "other_cpu_before": other,
            "quantity": quantity,
            "claims_sent": len(lat) + missing,
            "spread_s": opts.spread,
            **latency_summary(lat, missing),
            "codes": codes,
            "engine_cpu": engine_cpu,
            "client_cpu": client_cpu,
            "connections_lost": lost,
            "redis": check,
        }
        want = min(quantity, ok)
        res["exact"] = check["granted"] == want == codes.get("ok", 0) and check["consistent"]
        log(
            f"   stampede: p50 {fmt(res['p50_ms'], ',.1f')} ms, p99 {fmt(res['p99_ms'], ',.1f')} "
            f"ms, granted {check['granted']} of {quantity}, answers {codes}, missing {missing}"
        )
        clients.same(("close_all",))
        return res

    async def _drop(self, redis_url: str, quantity: int) -> None:
        async with open_redis(redis_url) as redis:
            store = CouponStore(redis, event_maxlen=1_000_000)
            spec = batch_spec(batch=BATCH, kind="no_threshold", value=1000, quantity=quantity,
                              valid_s=3600, title="10 off", now=store.now_ms())  # fmt: skip
            code, _ = await store.create(ROOM, spec, state="live")
            if code != "ok":
                raise RuntimeError(f"drop: {code}")

    async def _check(self, redis_url: str, quantity: int) -> dict[str, Any]:
        async with open_redis(redis_url) as redis:
            raw = await redis.hgetall(keys.coupon_batch(ROOM, BATCH))
            info = {k.decode(): v.decode() for k, v in raw.items()}
            holders = await redis.hlen(keys.coupon_users(ROOM, BATCH))
            coupons: set[bytes] = set()
            users: set[bytes] = set()
            events = 0
            async for entry in _stream_back(redis, keys.events(ROOM)):
                if entry[b"type"] == b"coupon.granted":
                    data = json.loads(entry[b"data"])
                    events += 1
                    coupons.add(data["coupon"].encode())
                    users.add(data["user"].encode())
        granted, left = int(info["granted"]), int(info["left"])
        return {
            "quantity": int(info["quantity"]),
            "left": left,
            "granted": granted,
            "holders": holders,
            "granted_events": events,
            "consistent": quantity == left + granted
            and granted == holders == events == len(coupons) == len(users),
        }


def verdicts(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    s = out["stampede"]
    want = min(s["quantity"], s["viewers"])
    return {
        "exactly_quantity": {
            "value": s["redis"]["granted"],
            "target": f"granted == {want}, quantity = left + granted, one event per coupon",
            "pass": bool(s["exact"]),
        },
        "every_claim_answered": {
            "value": s["missing"],
            "target": "0 missing answers",
            "pass": s["missing"] == 0,
        },
    }


def render(out: dict[str, Any]) -> str:
    m, s = out["machine"], out["stampede"]
    lines = [
        f"coupon stampede benchmark, {out['date']}",
        f"machine: {m.get('cpu_model')}, {m.get('nproc')} cores, {m.get('ram_gib')} GiB, "
        f"Python {m.get('python')}, redis {m.get('redis')}",
        "",
        f"{'figure':<58} {'value':>14}",
        "-" * 73,
    ]

    def row(name: str, value: str) -> None:
        lines.append(f"{name:<58} {value:>14}")

    row(f"claims sent (one per viewer, within {s['spread_s']:g} s)", f"{s['claims_sent']:,}")
    row(f"claim latency p50 ms ({s['viewers']:,} viewers)", fmt(s["p50_ms"], ",.1f"))
    row("claim latency p99 ms", fmt(s["p99_ms"], ",.1f"))
    row("claim latency max ms", fmt(s["max_ms"], ",.1f"))
    row(f"granted of quantity {s['quantity']}", f"{s['redis']['granted']}")
    row("coupon.granted events / holders", f"{s['redis']['granted_events']} / "
        f"{s['redis']['holders']}")  # fmt: skip
    row(f"answers {s['codes']}", "")
    row("missing answers", str(s["missing"]))
    row("engine CPU % / load client CPU % (claim window)",
        f"{s['engine_cpu']:.0f} / {s['client_cpu']:.0f}")  # fmt: skip
    lines.append("")
    for name, verdict in out["verdicts"].items():
        lines.append(f"{'PASS' if verdict['pass'] else 'MISS'}  {name}: {verdict['value']} "
                     f"(target {verdict['target']})")  # fmt: skip
    lines += ["", f"command: {out['command']}"]
    return "\n".join(lines)


def command_line() -> str:
    return shlex.join([Path(sys.executable).name, "-m", "loadtest.bench_coupons", *sys.argv[1:]])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench_coupons", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--viewers", type=int, default=10_000, help="viewers, one claim each")
    p.add_argument("--quantity", type=int, default=500, help="coupons in the batch")
    p.add_argument("--spread", type=float, default=1.0, help="claims spread over, s")
    p.add_argument("--drain", type=float, default=30.0, help="max wait for answers, s")
    p.add_argument(
        "--client-procs", type=int, default=2,
        help="load client processes (an open-files limit of 20,000 each)",
    )  # fmt: skip
    p.add_argument("--quiet-wait", type=float, default=60.0,
                   help="wait at most this long for other processes to go quiet, s")  # fmt: skip
    p.add_argument("--quiet-max", type=float, default=15.0,
                   help="quiet: other processes use at most this %% of a core")  # fmt: skip
    p.add_argument("--profile", metavar="DIR", help="py-spy the engine in the claim window")
    p.add_argument("--json", metavar="FILE", help="results file (default loadtest/results/...)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    results = CouponBench(opts).run()
    print(render(results))
    path = (
        Path(opts.json) if opts.json else RESULTS / f"coupons-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str, allow_nan=True))
    print(f"results: {path}")
    return 0 if all(v["pass"] for v in results["verdicts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
