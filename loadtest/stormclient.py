"""Viewer processes that can also time a resume storm (`python -m loadtest.bench_cluster`).

`StormLoop` is `clientproc.ViewerLoop` (the same epoll loop, counting and probes) plus, per
socket, when it was opened, when its welcome came and what it said (`recovery`), and when it
had received `target` chat messages: a viewer resuming `since` a position has *caught up*
once it got every chat item the room published after that position (the benchmark counts them
in the room's history, and nothing is published during the storm). The storm itself is a
`connect` command whose sockets are opened evenly over `spread_s` seconds
(`clientproc.ConnectBatch`).

Commands besides ViewerLoop's:
  ("storm_target", n)   from now on, note when each socket has counted n messages (0: stop)
  ("storm_stats", tag)  {"t", "ready", "recovery": {kind: count}, "opened", "welcomed",
                        "caught"}: the last three are float64 arrays (bytes), one entry per
                        socket of `tag`, 0.0 for what has not happened
"""

from __future__ import annotations

import re
import socket
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from loadtest.clientproc import ViewerLoop
from loadtest.clientproc import worker_main as _worker_main
from loadtest.wsclient import Conn

_RECOVERY = re.compile(rb'"recovery":"([a-z_]+)"')


class StormConn(Conn):
    __slots__ = ("caught", "opened", "recovery", "welcomed")

    def __init__(self, sock: socket.socket, request: bytes, accept: bytes, probe: bool) -> None:
        super().__init__(sock, request, accept, probe)
        self.opened = time.time()
        self.welcomed = 0.0
        self.caught = 0.0
        self.recovery = ""


class StormLoop(ViewerLoop):
    def __init__(self, ctl: Connection) -> None:
        super().__init__(ctl)
        self.target = 0

    def new_conn(
        self, sock: socket.socket, request: bytes, accept: bytes, path: str, probe: bool
    ) -> Conn:
        return StormConn(sock, request, accept, probe)

    def welcomed(self, conn: Conn, payload: bytes) -> None:
        m = _RECOVERY.search(payload)
        if isinstance(conn, StormConn):
            conn.welcomed = time.time()
            conn.recovery = m.group(1).decode() if m else "?"

    def on_readable(self, fd: int, conn: Conn) -> None:
        super().on_readable(fd, conn)
        if (
            self.target
            and conn.ready
            and conn.msgs >= self.target
            and isinstance(conn, StormConn)
            and not conn.caught
        ):
            conn.caught = time.time()

    def extra_command(self, cmd: tuple[Any, ...]) -> None:
        name = cmd[0]
        if name == "storm_target":
            self.target = int(cmd[1])
            self.ctl.send(("ok",))
        elif name == "storm_stats":
            conns = [c for c in self.groups.get(cmd[1], []) if isinstance(c, StormConn)]
            self.ctl.send(
                {
                    "t": time.time(),
                    "ready": sum(1 for c in conns if c.ready and not c.closed),
                    "recovery": dict(Counter(c.recovery for c in conns)),
                    "opened": array("d", (c.opened for c in conns)).tobytes(),
                    "welcomed": array("d", (c.welcomed for c in conns)).tobytes(),
                    "caught": array("d", (c.caught for c in conns)).tobytes(),
                    "msgs_min": min((c.msgs for c in conns), default=0),
                }
            )
        else:
            super().extra_command(cmd)


def worker_main(ctl: Connection, role: str) -> None:
    """Entry point of a client process: the publisher, or storm-capable viewers."""
    _worker_main(ctl, role, StormLoop)
