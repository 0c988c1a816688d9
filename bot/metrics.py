"""Prometheus metrics, in a registry of their own per process (created by the app, not at import)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "menotime_commands", "Slash commands handled, by verb and outcome", ("verb", "outcome"),
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "menotime_command_seconds", "Time to produce a command's answer (after the ack)", ("verb",),
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "menotime_slack_ack_seconds", "Time from receiving a Slack request to answering it",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.slack_requests = Counter(
            "menotime_slack_requests", "Inbound Slack requests by HTTP status", ("status",), registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
