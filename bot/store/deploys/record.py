"""A deployment record as the store hands it out (:class:`DeployView`), and its vocabulary: outcomes,
who made it (the bot or an external actor) and which kinds are deployments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.store.db import stored_utc
from bot.store.models import DeployRecord

IN_PROGRESS, COMPLETED, FAILED, ROLLED_BACK, TIMED_OUT = (
    "in_progress",
    "completed",
    "failed",
    "rolled_back",
    "timed_out",
)
UNKNOWN = "unknown"  # the bot could not see how it ended (AWS did not answer, the bot stopped)
REPLACED = "replaced"  # another deployment took over before ECS said this one completed
BOT, EXTERNAL = "bot", "external"
DEPLOYMENT_KINDS = ("deploy", "rollback")


@dataclass(frozen=True)
class DeployView:
    id: int
    env: str
    kind: str
    requested_by: str
    image_tag: str | None
    image_digest: str | None
    from_revision: int | None
    to_revision: int | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    detail: str | None
    approval_id: str | None
    emergency_reason: str | None
    channel: str | None
    message_ts: str | None
    source: str = BOT
    ecs_deployment_id: str | None = None
    image_commit: str | None = None
    from_count: int | None = None
    to_count: int | None = None
    watch_until: datetime | None = None
    watch_state: str | None = None

    @property
    def external(self) -> bool:
        return self.source == EXTERNAL

    @property
    def ran_from(self) -> datetime:
        """When the change was in place: its end for a completed one, else its start."""
        return self.finished_at or self.started_at


def _aware(value: datetime | None) -> datetime | None:
    return stored_utc(value) if value is not None else None


def _view(row: DeployRecord) -> DeployView:
    return DeployView(
        id=row.id,
        env=row.env,
        kind=row.kind,
        requested_by=row.requested_by,
        image_tag=row.image_tag,
        image_digest=row.image_digest,
        from_revision=row.from_revision,
        to_revision=row.to_revision,
        started_at=stored_utc(row.started_at),
        finished_at=_aware(row.finished_at),
        outcome=row.outcome,
        detail=row.detail,
        approval_id=row.approval_id,
        emergency_reason=row.emergency_reason,
        channel=row.channel,
        message_ts=row.message_ts,
        source=row.source or BOT,
        ecs_deployment_id=row.ecs_deployment_id,
        image_commit=row.image_commit,
        from_count=row.from_count,
        to_count=row.to_count,
        watch_until=_aware(row.watch_until),
        watch_state=row.watch_state,
    )
