"""The event an SNS message is read into, whatever AWS service sent it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

KINDS = ("alarm", "ecs_deployment", "ecs_service_action", "ecs_task", "rds", "guardduty", "health", "generic")
ALARM_STATES = ("ALARM", "OK", "INSUFFICIENT_DATA")
TEXT_LIMIT = 3000


@dataclass(frozen=True)
class Metric:
    """What a CloudWatch alarm watches. For a metric-math alarm ``expression`` is set and ``name``
    is the expression's label (or id); the metrics it reads are in ``Event.metrics``."""

    namespace: str | None
    name: str | None
    statistic: str | None
    period: int | None
    threshold: float | None
    comparison: str | None
    dimensions: tuple[tuple[str, str], ...] = ()
    unit: str | None = None
    evaluation_periods: int | None = None
    expression: str | None = None


@dataclass(frozen=True)
class Event:
    kind: str
    key: str  # the Slack thread key
    title: str
    state: str | None = None
    previous_state: str | None = None
    reason: str | None = None
    at: datetime | None = None  # aware, UTC
    region: str | None = None
    account: str | None = None
    resource: str | None = None  # alarm name, "cluster/service", DB identifier, finding type, ...
    metric: Metric | None = None
    children: tuple[str, ...] = ()  # composite alarm: triggering children (alarm names)
    severity: str | None = None  # "low" | "medium" | "high" | "critical"
    console_url: str | None = None
    raw: Any = None
    text: str | None = None  # generic: the message as AWS sent it (truncated)
    alarm_type: str | None = None  # "metric" | "metric_math" | "composite"
    metrics: tuple[Metric, ...] = ()  # metric-math: the metrics the expression reads
    rule: str | None = None  # composite: AlarmRule
    description: str | None = None
    cluster: str | None = None
    service: str | None = None
    names: tuple[str, ...] = ()  # resource names routing may match (clusters, dims, ...)
