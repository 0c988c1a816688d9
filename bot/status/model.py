"""What ``status`` answers for each environment (its service, scaling, database, alarms and last
deployment) and how healthy it judges the environment from that."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from bot.render import Audience

Health = Literal["ok", "degraded", "failing"]

_DB_FAILING = {
    "failed",
    "storage-full",
    "inaccessible-encryption-credentials",
    "incompatible-parameters",
    "incompatible-restore",
    "incompatible-network",
    "stopped",
}


@dataclass(frozen=True)
class ServiceEvent:
    at: datetime
    message: str


@dataclass(frozen=True)
class ServiceStatus:
    running: int
    desired: int
    pending: int
    task_family: str | None
    revision: int | None
    image: str | None  # of the application container
    image_tag: str | None  # None when the image is pinned by digest or has no tag
    rollout_state: str | None  # of the PRIMARY deployment: IN_PROGRESS, COMPLETED or FAILED
    rollout_reason: str | None
    deployments: int
    events: tuple[ServiceEvent, ...]  # newest first, at most MAX_EVENTS

    @property
    def task_definition(self) -> str:
        if self.task_family is None:
            return "unknown task definition"
        return f"{self.task_family}:{self.revision}" if self.revision is not None else self.task_family

    @property
    def image_ref(self) -> str:
        """What to show for the image: the tag, else the (short) digest, else "unknown"."""
        if self.image_tag:
            return self.image_tag
        if self.image and "@sha256:" in self.image:
            return "sha256:" + self.image.split("@sha256:", 1)[1][:12]
        return "unknown"


@dataclass(frozen=True)
class ScalingStatus:
    autoscaled: bool
    min: int
    max: int
    problem: str | None = None  # e.g. the configuration expects a scalable target that is missing

    @property
    def label(self) -> str:
        return f"{'autoscaling' if self.autoscaled else 'manual'} {self.min}–{self.max}"


@dataclass(frozen=True)
class DatabaseStatus:
    status: str
    instance_class: str
    storage_gb: int
    engine: str
    engine_version: str
    multi_az: bool


@dataclass(frozen=True)
class AlarmSummary:
    name: str
    reason: str
    since: datetime


@dataclass(frozen=True)
class DeploySummary:
    """The environment's last deployment, whoever made it (filled from the deployment records)."""

    who: str | None  # the Slack user id, when the bot made it
    image_tag: str
    revision: int | None
    finished_at: datetime | None
    outcome: str  # e.g. "completed", "failed", "rolled_back"
    actor: str | None = None  # who else made it ("CI/CD or console")
    kind: str = "deploy"


@dataclass(frozen=True)
class EnvStatus:
    env: str
    service: ServiceStatus | None
    service_problem: str | None
    scaling: ScalingStatus
    database: DatabaseStatus | None
    database_problem: str | None
    alarms: tuple[AlarmSummary, ...]  # in ALARM, newest first
    last_deploy: DeploySummary | None
    alarms_problem: str | None = None
    notes: tuple[str, ...] = ()  # locks and changes in flight, from the bot's own records

    @property
    def attention(self) -> tuple[str, ...]:
        """Why this environment is not all good, most serious first; empty when it is."""
        failing, degraded = self._findings()
        return (*failing, *degraded)

    @property
    def health(self) -> Health:
        failing, degraded = self._findings()
        return "failing" if failing else "degraded" if degraded else "ok"

    def _findings(self) -> tuple[list[str], list[str]]:
        failing: list[str] = []
        degraded: list[str] = []
        if self.alarms:
            failing.append(f"{len(self.alarms)} alarm{'s' if len(self.alarms) != 1 else ''} in ALARM")
        if self.service_problem:
            failing.append(self.service_problem)
        if self.database_problem:
            failing.append(self.database_problem)
        if self.service is not None:
            if self.service.rollout_state == "FAILED":
                failing.append("rollout FAILED")
            elif self.service.rollout_state == "IN_PROGRESS":
                degraded.append("rollout in progress")
            if self.service.running < self.service.desired:
                degraded.append(f"{self.service.running} of {self.service.desired} tasks running")
        if self.database is not None and self.database.status != "available":
            (failing if self.database.status in _DB_FAILING else degraded).append(
                f"database {self.database.status}"
            )
        if self.scaling.problem:
            degraded.append(self.scaling.problem)
        if self.alarms_problem:
            degraded.append(self.alarms_problem)
        return failing, degraded


@dataclass(frozen=True)
class StatusResult:
    template: ClassVar[str] = "status"
    audience: ClassVar[Audience] = "in_channel"

    envs: tuple[EnvStatus, ...]
    asked_by: str  # Slack user id
    at: datetime
