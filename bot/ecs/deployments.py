"""The ECS service and its deployments: what the service runs now, pointing it at another revision,
and where a deployment stands as ECS reports it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from botocore.exceptions import ClientError

from bot.app_container import app_container_or_none
from bot.aws import AwsGateway, error_code
from bot.config import EnvironmentConfig
from bot.ecs.parse import _family_revision, _label, _utc_or_none
from bot.ecs.task_definitions import _describe_task_definition
from bot.errors import NotFound
from bot.render import inert, inert_or_none
from bot.status.aws_reads import image_tag
from bot.status.model import ServiceEvent

RolloutState = Literal["IN_PROGRESS", "COMPLETED", "FAILED", "TIMED_OUT"]

MAX_EVENTS = 5


@dataclass(frozen=True)
class Deployment:
    id: str
    status: str  # PRIMARY, ACTIVE, INACTIVE
    task_definition_arn: str
    rollout_state: str | None  # IN_PROGRESS, COMPLETED, FAILED; None when ECS does not report one
    rollout_reason: str | None
    desired: int
    running: int
    pending: int
    failed_tasks: int
    created_at: datetime | None
    updated_at: datetime | None = None

    @property
    def state(self) -> RolloutState:
        """Where this deployment stands (judged by its counts where ECS reports no rolloutState)."""
        return _state_of(self)

    @property
    def rolled_back(self) -> bool:
        return self.state == "FAILED" and _says_rolled_back(self.rollout_reason, {})


@dataclass(frozen=True)
class ServiceSnapshot:
    task_definition_arn: str
    family: str | None
    revision: int | None
    desired: int
    running: int
    pending: int
    image: str | None  # of the application container; None when it cannot be told
    image_tag: str | None  # None when the image is pinned by digest or untagged
    app_container: str | None
    deployments: tuple[Deployment, ...]  # PRIMARY first
    rollout_state: str | None  # of the PRIMARY deployment
    rollout_reason: str | None
    events: tuple[ServiceEvent, ...]  # newest first, at most MAX_EVENTS

    @property
    def task_definition(self) -> str:
        """``family:revision`` as people write it."""
        return _label(self.task_definition_arn)


def service_snapshot(*, aws: AwsGateway, env: EnvironmentConfig) -> ServiceSnapshot:
    svc = _describe_service(aws=aws, env=env)
    arn = str(svc.get("taskDefinition") or "")
    taskdef = _describe_task_definition(aws=aws, env=env, ref=arn)["taskDefinition"] if arn else {}
    family, revision = _family_revision(arn)
    container = app_container_or_none(taskdef, env)
    image = str(container["image"]) if container and container.get("image") else None
    deployments = _deployments(svc)
    primary = next((d for d in deployments if d.status == "PRIMARY"), None)
    return ServiceSnapshot(
        task_definition_arn=arn,
        family=taskdef.get("family", family),
        revision=taskdef.get("revision", revision),
        desired=int(svc.get("desiredCount", 0)),
        running=int(svc.get("runningCount", 0)),
        pending=int(svc.get("pendingCount", 0)),
        image=image,
        image_tag=image_tag(image) if image else None,
        app_container=str(container["name"]) if container else None,
        deployments=deployments,
        rollout_state=primary.rollout_state if primary else None,
        rollout_reason=primary.rollout_reason if primary else None,
        events=_events(svc),
    )


def update_service(*, aws: AwsGateway, env: EnvironmentConfig, task_definition_arn: str) -> str | None:
    """Point the service at ``task_definition_arn``; the id of the new PRIMARY deployment, when
    ECS's answer has one running that revision (moto's never does: it does not start deployments)."""
    answer = _update_service(aws=aws, env=env, taskDefinition=task_definition_arn)
    wanted = _label(task_definition_arn)
    for deployment in answer.get("service", {}).get("deployments") or []:
        if (
            deployment.get("status") == "PRIMARY"
            and _label(str(deployment.get("taskDefinition", ""))) == wanted
        ):
            return str(deployment["id"])
    return None


def _describe_service(*, aws: AwsGateway, env: EnvironmentConfig) -> dict[str, Any]:
    try:
        answer = aws.call("ecs", "describe_services", cluster=env.cluster, services=[env.service])
    except ClientError as exc:
        if error_code(exc) == "ClusterNotFoundException":
            raise NotFound(
                f"Cluster {env.cluster} of {env.name} does not exist; check the cluster named for "
                f"{env.name} in the configuration."
            ) from None
        raise
    services = answer.get("services") or []
    if not services:
        raise NotFound(
            f"Service {env.service} is not in cluster {env.cluster}; check the service named for "
            f"{env.name} in the configuration."
        )
    svc: dict[str, Any] = services[0]
    if svc.get("status") != "ACTIVE":
        raise NotFound(
            f"Service {env.service} in {env.cluster} is {str(svc.get('status', 'gone')).lower()} "
            f"(deleted or being deleted); recreate it before changing {env.name}."
        )
    return svc


def _update_service(*, aws: AwsGateway, env: EnvironmentConfig, **params: Any) -> dict[str, Any]:
    try:
        return aws.call("ecs", "update_service", cluster=env.cluster, service=env.service, **params)
    except ClientError as exc:
        code = error_code(exc)
        if code == "ClusterNotFoundException":
            raise NotFound(
                f"Cluster {env.cluster} of {env.name} does not exist; check the cluster named for "
                f"{env.name} in the configuration."
            ) from None
        if code in {"ServiceNotFoundException", "ServiceNotActiveException"}:
            raise NotFound(
                f"Service {env.service} is not active in cluster {env.cluster}; check the service "
                f"named for {env.name} in the configuration."
            ) from None
        raise


def _deployments(svc: Mapping[str, Any]) -> tuple[Deployment, ...]:
    found = [
        Deployment(
            id=str(d.get("id", "")),
            status=str(d.get("status", "")),
            task_definition_arn=str(d.get("taskDefinition", "")),
            rollout_state=d.get("rolloutState"),
            rollout_reason=inert_or_none(d.get("rolloutStateReason")),
            desired=int(d.get("desiredCount", 0)),
            running=int(d.get("runningCount", 0)),
            pending=int(d.get("pendingCount", 0)),
            failed_tasks=int(d.get("failedTasks", 0)),
            created_at=_utc_or_none(d.get("createdAt")),
            updated_at=_utc_or_none(d.get("updatedAt")),
        )
        for d in svc.get("deployments") or []
    ]
    epoch = datetime.fromtimestamp(0, UTC)
    return tuple(sorted(found, key=lambda d: (d.status != "PRIMARY", -(d.created_at or epoch).timestamp())))


def _events(svc: Mapping[str, Any], since: datetime | None = None) -> tuple[ServiceEvent, ...]:
    events = [
        ServiceEvent(at=at, message=inert(str(e.get("message", ""))))
        for e in svc.get("events") or []
        if (at := _utc_or_none(e.get("createdAt"))) is not None and (since is None or at >= since)
    ]
    return tuple(sorted(events, key=lambda e: e.at, reverse=True)[:MAX_EVENTS])


def _state_of(deployment: Deployment) -> RolloutState:
    if deployment.rollout_state in {"IN_PROGRESS", "COMPLETED", "FAILED"}:
        return cast(RolloutState, deployment.rollout_state)
    # ECS reports no rolloutState for some services (e.g. behind a Classic Load Balancer).
    done = deployment.running == deployment.desired and deployment.pending == 0
    return "COMPLETED" if done and deployment.status == "PRIMARY" else "IN_PROGRESS"


def _says_rolled_back(reason: str | None, svc: Mapping[str, Any]) -> bool:
    text = (reason or "").lower()
    if "rolling back" in text or "rolled back" in text or "rollback" in text:
        return True
    if "circuit breaker" in text:
        # The breaker rolls back only where enabled with rollback; moto does not echo the
        # configuration, so a breaker failure there counts as rolled back (as the seed configures).
        breaker = (svc.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker")
        return bool(breaker.get("rollback", False)) if isinstance(breaker, Mapping) else True
    return False
