"""The anti-fraud layer's Prometheus metrics, in the node's registry (engine/metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class AntiFraudMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refused = Counter(
            "engine_antifraud_refused",
            "Viewer actions the anti-fraud layer refused or kept from others, by action and reason",
            ["action", "reason"],
            registry=registry,
        )
        self.decisions = Counter(
            "engine_antifraud_decisions",
            "Bot rules that fired for a user (once per user, rule and cooldown), by mode",
            ["rule", "mode", "enforced"],
            registry=registry,
        )
        self.sanctions = Counter(
            "engine_antifraud_sanctions",
            "Bans, mutes and grab refusals imposed, by kind and source (operator or rule)",
            ["kind", "source"],
            registry=registry,
        )
        self.words = Counter(
            "engine_antifraud_keyword_hits",
            "Danmaku that matched the keyword filter, by action (block, mask, flag)",
            ["action"],
            registry=registry,
        )
