"""Prometheus metrics of one node, in a registry of its own (two engines in one process, as in the
tests, do not collide). Hot-path counters live in `NodeStats` as plain ints and are read here at
scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.stats import NodeStats


class _StatsCollector(Collector):
    def __init__(self, stats: NodeStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self._stats
        yield GaugeMetricFamily(
            "engine_connections", "Open viewer connections", value=s.connections
        )
        yield CounterMetricFamily(
            "engine_frames_sent", "Frames handed to viewer sockets", value=s.frames_sent
        )
        yield CounterMetricFamily(
            "engine_bytes_sent", "Bytes handed to viewer sockets", value=s.bytes_sent
        )
        yield CounterMetricFamily(
            "engine_frames_dropped",
            "Chat frames dropped for viewers that were behind",
            value=s.frames_dropped,
        )
        yield CounterMetricFamily(
            "engine_history_reads",
            "Room history ranges read from Redis (gap fills and resumes the node's memory "
            "did not cover)",
            value=s.history_reads,
        )
        yield CounterMetricFamily(
            "engine_slow_consumer_closes",
            "Viewers closed for staying behind",
            value=s.slow_consumer_closes,
        )


class Metrics:
    def __init__(self, stats: NodeStats) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_StatsCollector(stats))
        r = self.registry
        self.rooms = Gauge("engine_rooms", "Rooms with a bus subscription on this node", registry=r)
        self.reads_waiting = Gauge(
            "engine_reads_waiting",
            "Readable viewer connections waiting for their turn (read_wakeups_per_pass)",
            registry=r,
        )
        self.joins_waiting = Gauge(
            "engine_joins_waiting",
            "New connections waiting for a join slot (max_concurrent_joins)",
            registry=r,
        )
        self.tick_duration = Histogram(
            "engine_tick_duration_seconds",
            "Time one broadcaster tick over all rooms of the node takes",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=r,
        )
        self.connections_refused = Counter(
            "engine_connections_refused",
            "Connections refused at the handshake",
            ["code"],
            registry=r,
        )
        self.client_errors = Counter(
            "engine_client_errors", "Error frames sent to clients", ["code"], registry=r
        )
        self.closes = Counter(
            "engine_closes", "Connections closed by the server", ["code"], registry=r
        )
        self.messages_in = Counter(
            "engine_messages_received", "Client messages accepted", ["type"], registry=r
        )
