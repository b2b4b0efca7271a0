"""Node counters kept as plain integers on the hot path and exported by `metrics` at scrape time
(a Prometheus counter call per delivered frame would cost more than the delivery)."""

from __future__ import annotations


class NodeStats:
    __slots__ = (
        "bytes_sent",
        "connections",
        "frames_dropped",
        "frames_sent",
        "history_reads",
        "slow_consumer_closes",
    )

    def __init__(self) -> None:
        self.connections = 0
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_dropped = 0
        self.slow_consumer_closes = 0
        self.history_reads = 0  # reads of a room's history from Redis (gap fills, resumes)
