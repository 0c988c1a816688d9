"""Reading the raw values in ECS and ECR answers: a task definition's family and revision from its
ARN (and the ``family:revision`` people write), timestamps as UTC, and names quoted back in a
sentence, shortened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _family_revision(arn: str) -> tuple[str | None, int | None]:
    """``arn:…:task-definition/menotime-backend-prod:3`` (or ``menotime-backend-prod:3``) →
    (``menotime-backend-prod``, 3)."""
    name = arn.rsplit("/", 1)[-1]
    if not name:
        return None, None
    family, _, revision = name.partition(":")
    return family, int(revision) if revision.isdigit() else None


def _label(arn: str) -> str:
    family, revision = _family_revision(arn)
    if family is None:
        return "unknown task definition"
    return f"{family}:{revision}" if revision is not None else family


def _utc_or_none(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
