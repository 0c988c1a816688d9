"""Following a rollout: where the deployment stands (and whether ECS rolled it back), polled until
it finishes or the wait times out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.aws import AwsGateway
from bot.config import EnvironmentConfig
from bot.ecs.deployments import (
    Deployment,
    RolloutState,
    _deployments,
    _describe_service,
    _events,
    _says_rolled_back,
    _state_of,
)
from bot.ecs.parse import _label
from bot.errors import AwsUnavailable
from bot.status.model import ServiceEvent

MAX_POLL_FAILURES = 3  # consecutive "AWS did not answer" while following a rollout before giving up

_TERMINAL: frozenset[str] = frozenset({"COMPLETED", "FAILED"})


@dataclass(frozen=True)
class RolloutSnapshot:
    state: RolloutState
    reason: str | None
    running: int  # of the deployment followed (the service's when that deployment is gone)
    desired: int
    pending: int
    task_definition_arn: str  # what the service is moving to: the PRIMARY deployment's
    events: tuple[ServiceEvent, ...]  # since the deployment started, newest first, at most MAX_EVENTS
    rolled_back: bool  # ECS (its deployment circuit breaker) put the previous revision back
    deployment_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.state != "IN_PROGRESS"


def rollout(
    *,
    aws: AwsGateway,
    env: EnvironmentConfig,
    deployment_id: str | None = None,
    task_definition_arn: str | None = None,
) -> RolloutSnapshot:
    """Where the deployment stands: the one with ``deployment_id``, else the newest one of
    ``task_definition_arn`` (the revision deployed), else the PRIMARY one.

    ``rolled_back`` is true when ECS's circuit breaker rolled the deployment back: it FAILED with a
    reason saying so, or the service's PRIMARY deployment runs another revision than the one deployed.
    """
    svc = _describe_service(aws=aws, env=env)
    deployments = _deployments(svc)
    primary = next((d for d in deployments if d.status == "PRIMARY"), None)
    service_arn = str(svc.get("taskDefinition") or "")
    now_running = primary.task_definition_arn if primary else service_arn
    wanted = _label(task_definition_arn) if task_definition_arn else None

    ours: Deployment | None
    if deployment_id is not None:
        ours = next((d for d in deployments if d.id == deployment_id), None)
    elif wanted is not None:
        ours = next(
            (d for d in deployments if _label(d.task_definition_arn) == wanted), None
        )  # PRIMARY first
    else:
        ours = primary

    if ours is None:
        if wanted is not None and _label(service_arn) == wanted:
            # The service points at the revision but no deployment shows it yet (moto never starts one).
            return RolloutSnapshot(
                state="IN_PROGRESS",
                reason="Waiting for ECS to start the deployment.",
                running=int(svc.get("runningCount", 0)),
                desired=int(svc.get("desiredCount", 0)),
                pending=int(svc.get("pendingCount", 0)),
                task_definition_arn=service_arn,
                events=_events(svc),
                rolled_back=False,
                deployment_id=deployment_id,
            )
        if wanted is None and deployment_id is None:
            # No deployment at all (not the ECS deployment controller): judge by the counts.
            running, desired = int(svc.get("runningCount", 0)), int(svc.get("desiredCount", 0))
            pending = int(svc.get("pendingCount", 0))
            return RolloutSnapshot(
                state="COMPLETED" if running == desired and not pending else "IN_PROGRESS",
                reason=None,
                running=running,
                desired=desired,
                pending=pending,
                task_definition_arn=service_arn,
                events=_events(svc),
                rolled_back=False,
            )
        # Our deployment is gone and the service runs something else: ECS replaced it.
        return RolloutSnapshot(
            state="FAILED",
            reason=f"ECS replaced the deployment; the service now runs {_label(now_running)}.",
            running=primary.running if primary else int(svc.get("runningCount", 0)),
            desired=primary.desired if primary else int(svc.get("desiredCount", 0)),
            pending=primary.pending if primary else int(svc.get("pendingCount", 0)),
            task_definition_arn=now_running,
            events=_events(svc),
            rolled_back=True,
            deployment_id=deployment_id,
        )

    state = _state_of(ours)
    reason = ours.rollout_reason
    rolled_back = False
    if state == "FAILED" and _says_rolled_back(reason, svc):
        rolled_back = True
    if (
        ours is not primary
        and primary is not None
        and _label(primary.task_definition_arn) != _label(ours.task_definition_arn)
    ):
        # Another revision took over the service: the circuit breaker's rollback (or a newer deploy).
        rolled_back = True
        if state != "FAILED":
            state = "FAILED"
            reason = (
                f"ECS replaced the deployment; the service now runs {_label(primary.task_definition_arn)}."
            )
    return RolloutSnapshot(
        state=state,
        reason=reason,
        running=ours.running,
        desired=ours.desired,
        pending=ours.pending,
        task_definition_arn=now_running,
        events=_events(svc, since=ours.created_at),
        rolled_back=rolled_back,
        deployment_id=ours.id or None,
    )


def follow_rollout(
    *,
    aws: AwsGateway,
    env: EnvironmentConfig,
    task_definition_arn: str,
    on_change: Callable[[RolloutSnapshot], None],
    sleep: Callable[[float], None],
    now: Callable[[], datetime],
    interval: float = 10.0,
    timeout: timedelta = timedelta(minutes=30),
    deployment_id: str | None = None,
) -> RolloutSnapshot:
    """Poll :func:`rollout` every ``interval`` seconds until COMPLETED or FAILED, calling
    ``on_change`` with each snapshot that differs from the previous one (the first included).
    After ``timeout`` the last snapshot comes back as TIMED_OUT (also passed to ``on_change``).
    A few consecutive "AWS did not answer" polls are ridden out; more propagate."""
    deadline = now() + timeout
    last_key: tuple[Any, ...] | None = None
    last: RolloutSnapshot | None = None
    failures = 0
    while True:
        try:
            snapshot = rollout(
                aws=aws, env=env, deployment_id=deployment_id, task_definition_arn=task_definition_arn
            )
            failures = 0
        except AwsUnavailable:
            failures += 1
            if failures >= MAX_POLL_FAILURES:
                raise
            snapshot = None
        if snapshot is not None:
            last = snapshot
            key = _change_key(snapshot)
            if key != last_key:
                last_key = key
                on_change(snapshot)
            if snapshot.state in _TERMINAL:
                return snapshot
        remaining = (deadline - now()).total_seconds()
        if remaining <= 0:
            minutes = timeout.total_seconds() / 60
            waited = f"{minutes:g} minute{'s' if minutes != 1 else ''}"
            base = last or RolloutSnapshot(
                state="IN_PROGRESS",
                reason=None,
                running=0,
                desired=0,
                pending=0,
                task_definition_arn=task_definition_arn,
                events=(),
                rolled_back=False,
            )
            timed_out = replace(
                base,
                state="TIMED_OUT",
                reason=f"The rollout had not finished after {waited}; it may still complete — "
                f"check `status {env.name}`.",
            )
            on_change(timed_out)
            return timed_out
        sleep(min(interval, remaining))


def _change_key(snapshot: RolloutSnapshot) -> tuple[Any, ...]:
    newest = snapshot.events[0] if snapshot.events else None
    return (
        snapshot.state,
        snapshot.reason,
        snapshot.running,
        snapshot.desired,
        snapshot.pending,
        snapshot.task_definition_arn,
        snapshot.rolled_back,
        newest,
    )
