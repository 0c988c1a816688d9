"""Deployment records: every deploy, rollback and scaling of an environment, whoever made it.

The bot writes its own as it makes them; :mod:`bot.observe` adds the ones other actors made (CI/CD,
the console, the autoscaler), read from ECS, and links the bot's own to their ECS deployment ids.
They answer the questions the guardrails and on-call ask: what was live before the current
revision (rollback's default target), where and since when an image ran (the soak), what changed
lately (history), and what the last deployment was (status).
"""

from bot.store.deploys.log import DeployLog
from bot.store.deploys.record import (
    BOT,
    COMPLETED,
    DEPLOYMENT_KINDS,
    EXTERNAL,
    FAILED,
    IN_PROGRESS,
    REPLACED,
    ROLLED_BACK,
    TIMED_OUT,
    UNKNOWN,
    DeployView,
)

__all__ = [
    "BOT",
    "COMPLETED",
    "DEPLOYMENT_KINDS",
    "EXTERNAL",
    "FAILED",
    "IN_PROGRESS",
    "REPLACED",
    "ROLLED_BACK",
    "TIMED_OUT",
    "UNKNOWN",
    "DeployLog",
    "DeployView",
]
