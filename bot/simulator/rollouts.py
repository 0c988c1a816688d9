"""Moving a simulated rollout the way ECS would (moto's ECS never does it by itself), and what
MenoTime's CI/CD does to start one."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from bot.aws import AwsGateway, error_code
from bot.config import EnvironmentConfig
from bot.simulator.images import REPOSITORY, _put_image

RolloutState = Literal["IN_PROGRESS", "COMPLETED", "FAILED"]


def set_rollout(
    *,
    region: str,
    cluster: str,
    service: str,
    state: RolloutState,
    reason: str | None = None,
    account_id: str | None = None,
    at: datetime | None = None,
) -> None:
    """Put the in-process moto ECS service where ECS would be in ``state`` (at ``at``, default now).

    ``IN_PROGRESS``: a new PRIMARY deployment of the service's current task definition starts (the
    previous one becomes ACTIVE), no new task running yet. ``COMPLETED``: every desired task runs,
    old deployments are gone, a steady-state event is written. ``FAILED``: the PRIMARY deployment
    fails with ``reason`` (the circuit breaker's words by default).

    Works with ``mock_aws`` and with :class:`Simulator` (both keep moto's state in this process);
    raises LookupError when the service is not in this process's moto.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[account_id or DEFAULT_ACCOUNT_ID][region]
    simulated = backend.services.get(f"{cluster}:{service}")
    if simulated is None:
        raise LookupError(f"service {service} of cluster {cluster} is not in the in-process simulator")

    now = at or datetime.now(UTC)
    primary = next((d for d in simulated.deployments if d.get("status") == "PRIMARY"), None)
    if state == "IN_PROGRESS" or primary is None:
        for deployment in simulated.deployments:
            deployment["status"] = "ACTIVE"
        primary = {
            "id": f"ecs-svc/{random.randrange(10**18, 10**19)}",  # ECS's: unique in the account
            "status": "PRIMARY",
            "taskDefinition": simulated.task_definition,
            "desiredCount": simulated.desired_count,
            "pendingCount": simulated.desired_count,
            "runningCount": 0,
            "failedTasks": 0,
            "createdAt": now,
            "launchType": simulated.launch_type,
            "platformFamily": "FARGATE",
        }
        simulated.deployments.insert(0, primary)
    created = primary.get("createdAt")
    if at is not None and (not isinstance(created, datetime) or created.astimezone(UTC) > at):
        primary["createdAt"] = at  # moto stamps a new service's deployment with the wall clock
    primary["updatedAt"] = now
    primary["rolloutState"] = state
    if state == "COMPLETED":
        primary.update(
            taskDefinition=simulated.task_definition,
            desiredCount=simulated.desired_count,
            runningCount=simulated.desired_count,
            pendingCount=0,
        )
        primary["rolloutStateReason"] = reason or f"ECS deployment {primary['id']} completed."
        simulated.deployments[:] = [primary]
        simulated.running_count = simulated.desired_count
        simulated.pending_count = 0
        _add_event(simulated, f"(service {service}) has reached a steady state.", now)
    elif state == "FAILED":
        primary["rolloutStateReason"] = reason or ("ECS deployment circuit breaker: tasks failed to start.")
        _add_event(
            simulated,
            f"(service {service}) deployment {primary['id']} deployment failed: "
            f"{primary['rolloutStateReason']}",
            now,
        )
    else:
        primary["rolloutStateReason"] = reason or f"ECS deployment {primary['id']} in progress."
        _add_event(simulated, f"(service {service}) has started {simulated.desired_count} tasks.", now)


def _add_event(simulated: Any, message: str, at: datetime) -> None:
    # ECS lists events newest first and keeps the most recent 100.
    event_id = f"{int(at.timestamp() * 1_000_000):x}-{len(simulated.events)}"
    simulated.events.insert(0, {"id": event_id, "createdAt": at, "message": message})
    del simulated.events[100:]


def deploy_as_ci(
    gateway: AwsGateway,
    env: EnvironmentConfig,
    *,
    tag: str,
    at: datetime | None = None,
    outcome: RolloutState = "COMPLETED",
    account_id: str | None = None,
) -> str:
    """What MenoTime's CI/CD does, straight through the AWS API: a new revision of the family with
    the image ``tag`` (pushed first if missing), the service pointed at it, and (in-process moto)
    its deployment moved to ``outcome`` at ``at``. The new task-definition ARN."""
    try:
        gateway.call("ecr", "describe_images", repositoryName=REPOSITORY, imageIds=[{"imageTag": tag}])
    except ClientError as exc:
        if error_code(exc) != "ImageNotFoundException":
            raise
        _put_image(gateway, tag)
    current = gateway.call("ecs", "describe_services", cluster=env.cluster, services=[env.service])[
        "services"
    ][0]
    base = gateway.call("ecs", "describe_task_definition", taskDefinition=current["taskDefinition"])[
        "taskDefinition"
    ]
    containers = []
    for container in base["containerDefinitions"]:
        if container.get("essential", True):
            container = {**container, "image": f"{container['image'].rsplit(':', 1)[0]}:{tag}"}
        containers.append(container)
    keep = (
        "family",
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "requiresCompatibilities",
        "cpu",
        "memory",
    )
    arn = str(
        gateway.call(
            "ecs",
            "register_task_definition",
            containerDefinitions=containers,
            **{k: base[k] for k in keep if k in base},
        )["taskDefinition"]["taskDefinitionArn"]
    )
    gateway.call("ecs", "update_service", cluster=env.cluster, service=env.service, taskDefinition=arn)
    try:
        set_rollout(
            region=gateway.region,
            cluster=env.cluster,
            service=env.service,
            state="IN_PROGRESS",
            account_id=account_id,
            at=at,
        )
        if outcome != "IN_PROGRESS":
            set_rollout(
                region=gateway.region,
                cluster=env.cluster,
                service=env.service,
                state=outcome,
                account_id=account_id,
                at=at,
            )
    except LookupError:
        pass  # a moto server in another process: the service stays as moto left it
    return arn


def advance_rollouts(
    *,
    region: str,
    envs: list[EnvironmentConfig] | tuple[EnvironmentConfig, ...],
    account_id: str | None = None,
    at: datetime | None = None,
) -> None:
    """One step of what ECS would do next, for every simulated service: a service whose task
    definition changed starts a deployment; a deployment in progress completes."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[account_id or DEFAULT_ACCOUNT_ID][region]
    for env in envs:
        simulated = backend.services.get(f"{env.cluster}:{env.service}")
        if simulated is None:
            continue
        primary = next((d for d in simulated.deployments if d.get("status") == "PRIMARY"), None)
        if primary is None or primary.get("taskDefinition") != simulated.task_definition:
            set_rollout(
                region=region,
                cluster=env.cluster,
                service=env.service,
                state="IN_PROGRESS",
                account_id=account_id,
                at=at,
            )
        elif primary.get("rolloutState") == "IN_PROGRESS":
            set_rollout(
                region=region,
                cluster=env.cluster,
                service=env.service,
                state="COMPLETED",
                account_id=account_id,
                at=at,
            )


def autopilot(
    *,
    region: str,
    envs: list[EnvironmentConfig] | tuple[EnvironmentConfig, ...],
    pause: float = 0.05,
    clock: Any = None,
) -> Any:
    """A `sleep` for the bot's rollout follower that moves the simulated ECS on while it waits,
    so the demo and `console --simulate` see rollouts finish as they would on AWS (at ``clock``'s
    time, when given: one clock for the bot and the simulated AWS)."""
    import time

    def sleep(_seconds: float) -> None:
        time.sleep(pause)
        advance_rollouts(region=region, envs=envs, at=clock.now() if clock is not None else None)

    return sleep
