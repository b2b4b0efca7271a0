"""The floor under fan-out: CPU one non-blocking `send()` costs on this machine's loopback TCP.

A plain Python loop (no engine, no WebSocket) writes one buffer to each of N connected sockets
every `--interval` seconds, the way a broadcaster tick does, while a child process drains them
with epoll. It prints the sender's system and user CPU per send for each size: the kernel cost
is what any server pays per frame per viewer, so `viewers x frames per second x cost` bounds
fan-out CPU from below (docs/benchmarks.md, "hot room").

    python -m loadtest.bench_sendcost                 # sizes 200, 1500, 7500 bytes; 1000 sockets
    python -m loadtest.bench_sendcost --sizes 64,8192 --sockets 2000 --seconds 5
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import socket
import sys
import time

DRAIN_SLACK_S = 2.0


def drain(port: int, sockets: int, seconds: float) -> None:
    """The child: connect `sockets` times and read everything until the time is up."""
    poller = select.epoll()
    conns = {}
    for _ in range(sockets):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.setblocking(False)
        poller.register(conn.fileno(), select.EPOLLIN)
        conns[conn.fileno()] = conn
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for fd, _ in poller.poll(0.1):
            try:
                while conns[fd].recv(1 << 18):
                    pass
            except BlockingIOError:
                pass
    os._exit(0)


def measure(size: int, sockets: int, seconds: float, interval: float) -> dict[str, float]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(sockets)
    port = listener.getsockname()[1]
    child = os.fork()
    if child == 0:
        listener.close()
        drain(port, sockets, seconds + DRAIN_SLACK_S + 1)
    peers = [listener.accept()[0] for _ in range(sockets)]
    for peer in peers:
        peer.setblocking(False)
    data = b"x" * size
    before, started, sends, full = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), 0, 0
    while time.monotonic() - started < seconds:
        for peer in peers:
            try:
                peer.send(data)
                sends += 1
            except BlockingIOError:
                full += 1
        time.sleep(interval)
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.waitpid(child, 0)
    for peer in peers:
        peer.close()
    listener.close()
    return {
        "size": size,
        "sends": sends,
        "full": full,
        "sys_us": (after.ru_stime - before.ru_stime) / max(sends, 1) * 1e6,
        "user_us": (after.ru_utime - before.ru_utime) / max(sends, 1) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench_sendcost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--sizes", default="200,1500,7500", help="buffer sizes, bytes (comma list)")
    p.add_argument("--sockets", type=int, default=1000, help="connected sockets")
    p.add_argument("--seconds", type=float, default=3.0, help="measured time per size")
    p.add_argument("--interval", type=float, default=0.05, help="pause between rounds, s")
    opts = p.parse_args(argv)
    print(f"command: python -m loadtest.bench_sendcost {' '.join(sys.argv[1:])}".rstrip())
    print(f"{'bytes':>8} | {'sends':>8} | {'socket full':>11} | {'sys us/send':>11} | "
          f"{'user us/send':>12}")  # fmt: skip
    for size in (int(s) for s in opts.sizes.split(",")):
        r = measure(size, opts.sockets, opts.seconds, opts.interval)
        print(f"{size:>8} | {r['sends']:>8,} | {r['full']:>11,} | {r['sys_us']:>11.2f} | "
              f"{r['user_us']:>12.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
