"""Prometheus metrics, in a registry of their own per process (created by the app, not at import)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "menotime_commands",
            "Slash commands handled, by verb and outcome",
            ("verb", "outcome"),
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "menotime_command_seconds",
            "Time to produce a command's answer (after the ack)",
            ("verb",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "menotime_slack_ack_seconds",
            "Time from receiving a Slack request to answering it",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.slack_requests = Counter(
            "menotime_slack_requests",
            "Inbound Slack requests by HTTP status",
            ("status",),
            registry=self.registry,
        )

        self.alarm_latency = Histogram(
            "menotime_alarm_latency_seconds",
            "From the SNS Timestamp of an alarm to its Slack post",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "menotime_outbox_depth",
            "Slack messages queued and not yet sent",
            registry=self.registry,
        )
        self.sns_refusals = Counter(
            "menotime_sns_refusals",
            "SNS messages refused, by reason",
            ("reason",),
            registry=self.registry,
        )

        self.job_seconds = Histogram(
            "menotime_job_seconds",
            "Duration of scheduled job runs, by job and outcome",
            ("job", "outcome"),
            buckets=(1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0),
            registry=self.registry,
        )
        self.job_runs = Counter(
            "menotime_job_runs",
            "Job runs by job, trigger and outcome",
            ("job", "trigger", "outcome"),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
