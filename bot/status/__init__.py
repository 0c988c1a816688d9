"""The ``status`` operation: what each environment is running and how healthy it looks, read-only.

Every part is read as AWS reports it. A missing cluster, service or database becomes a sentence in
the result (the rest of the environment is still worth showing); AWS not answering at all
(:class:`bot.errors.AwsUnavailable`) propagates, and the whole command says so.
"""

from bot.status.aws_reads import MAX_EVENTS, describe_alarms, env_status, image_tag, status
from bot.status.model import (
    AlarmSummary,
    DatabaseStatus,
    DeploySummary,
    EnvStatus,
    Health,
    ScalingStatus,
    ServiceEvent,
    ServiceStatus,
    StatusResult,
)

__all__ = [
    "MAX_EVENTS",
    "AlarmSummary",
    "DatabaseStatus",
    "DeploySummary",
    "EnvStatus",
    "Health",
    "ScalingStatus",
    "ServiceEvent",
    "ServiceStatus",
    "StatusResult",
    "describe_alarms",
    "env_status",
    "image_tag",
    "status",
]
