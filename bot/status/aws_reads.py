"""Reading each environment's status from AWS, concurrently: the ECS service and the image it
runs, the Application Auto Scaling target, the RDS instance, and the CloudWatch alarms in ALARM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from bot.app_container import app_container_or_none
from bot.aws import AwsGateway, error_code
from bot.config import EnvironmentConfig
from bot.render import inert, inert_or_none
from bot.status.model import (
    AlarmSummary,
    DatabaseStatus,
    DeploySummary,
    EnvStatus,
    ScalingStatus,
    ServiceEvent,
    ServiceStatus,
    StatusResult,
)

MAX_EVENTS = 3
_MAX_WORKERS = 4  # a handful of environments; more threads would only queue on AWS's rate limits
_SCALABLE_DIMENSION = "ecs:service:DesiredCount"
_DB_NOT_FOUND = {"DBInstanceNotFound", "DBInstanceNotFoundFault"}


def status(
    *,
    envs: Sequence[EnvironmentConfig],
    aws: AwsGateway,
    asked_by: str,
    at: datetime,
    last_deploys: Mapping[str, DeploySummary | None],
    notes: Mapping[str, tuple[str, ...]] | None = None,
) -> StatusResult:
    """Every environment in ``envs``, read concurrently, answered in the order asked."""
    if not envs:
        return StatusResult(envs=(), asked_by=asked_by, at=at)
    with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(envs)), thread_name_prefix="status") as pool:
        futures = [
            pool.submit(env_status, env=env, aws=aws, last_deploy=last_deploys.get(env.name)) for env in envs
        ]
        results = tuple(future.result() for future in futures)
    if notes:
        results = tuple(replace(r, notes=notes.get(r.env, ())) for r in results)
    return StatusResult(envs=results, asked_by=asked_by, at=at)


def env_status(
    *, env: EnvironmentConfig, aws: AwsGateway, last_deploy: DeploySummary | None = None
) -> EnvStatus:
    service, service_problem = _service(env=env, aws=aws)
    database, database_problem = _database(env=env, aws=aws)
    return EnvStatus(
        env=env.name,
        service=service,
        service_problem=service_problem,
        scaling=_scaling(env=env, aws=aws),
        database=database,
        database_problem=database_problem,
        **_alarms(env=env, aws=aws),
        last_deploy=last_deploy,
    )


# --------------------------------------------------------------------------------------------
# ECS


def _service(*, env: EnvironmentConfig, aws: AwsGateway) -> tuple[ServiceStatus | None, str | None]:
    where = f"service {env.service} in cluster {env.cluster}"
    try:
        answer = aws.call("ecs", "describe_services", cluster=env.cluster, services=[env.service])
    except ClientError as exc:
        if error_code(exc) == "ClusterNotFoundException":
            return None, f"cluster {env.cluster} not found"
        return None, _refused(f"read {where}", exc)
    services = answer.get("services") or []
    if not services:
        reasons = {str(f.get("reason", "")) for f in answer.get("failures") or []}
        if reasons - {"MISSING", ""}:
            return None, f"could not read {where}: ECS answered {', '.join(sorted(reasons))}"
        return None, f"service {env.service} not found in cluster {env.cluster}"
    svc = services[0]
    if svc.get("status") != "ACTIVE":
        # A deleted service stays visible for a while as DRAINING, then INACTIVE.
        return None, f"{where} is {str(svc.get('status', 'unknown')).lower()} (deleted or being deleted)"

    deployments = svc.get("deployments") or []
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    family, revision, image = _task_definition(aws=aws, arn=str(svc.get("taskDefinition") or ""), env=env)
    events = tuple(
        ServiceEvent(at=_utc(e["createdAt"]), message=inert(str(e.get("message", ""))))
        for e in sorted(svc.get("events") or [], key=lambda e: e["createdAt"], reverse=True)[:MAX_EVENTS]
    )
    return ServiceStatus(
        running=int(svc.get("runningCount", 0)),
        desired=int(svc.get("desiredCount", 0)),
        pending=int(svc.get("pendingCount", 0)),
        task_family=family,
        revision=revision,
        image=image,
        image_tag=image_tag(image) if image else None,
        rollout_state=primary.get("rolloutState") if primary else None,
        rollout_reason=inert_or_none(primary.get("rolloutStateReason")) if primary else None,
        deployments=len(deployments),
        events=events,
    ), None


def _task_definition(
    *, aws: AwsGateway, arn: str, env: EnvironmentConfig
) -> tuple[str | None, int | None, str | None]:
    """(family, revision, image of the application container); the image is None if unreadable."""
    family, revision = _family_revision(arn)
    if not arn:
        return family, revision, None
    try:
        taskdef = aws.call("ecs", "describe_task_definition", taskDefinition=arn)["taskDefinition"]
    except ClientError:
        # The counts are still worth showing; the image then reads "unknown".
        return family, revision, None
    chosen = app_container_or_none(taskdef, env)  # the container a deploy would change, or none
    return (
        taskdef.get("family", family),
        taskdef.get("revision", revision),
        chosen.get("image") if chosen else None,
    )


def _family_revision(arn: str) -> tuple[str | None, int | None]:
    # arn:aws:ecs:<region>:<account>:task-definition/<family>:<revision>
    name = arn.rsplit("/", 1)[-1]
    if not name:
        return None, None
    family, _, revision = name.partition(":")
    return family, int(revision) if revision.isdigit() else None


def image_tag(image: str) -> str | None:
    """``…/menotime-backend:v1.5.0`` (or ``…:v1.5.0@sha256:…``, as deploy pins it) → ``v1.5.0``;
    None for an image named by digest alone, or untagged.

    Only the last path segment is looked at, so a registry port (``host:5000/repo``) is no tag.
    """
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


# --------------------------------------------------------------------------------------------
# Application Auto Scaling


def _scaling(*, env: EnvironmentConfig, aws: AwsGateway) -> ScalingStatus:
    if not env.autoscaling:
        return ScalingStatus(autoscaled=False, min=env.tasks.min, max=env.tasks.max)
    resource_id = f"service/{env.cluster}/{env.service}"
    try:
        targets = aws.paginate(
            "application-autoscaling",
            "describe_scalable_targets",
            "ScalableTargets",
            ServiceNamespace="ecs",
            ResourceIds=[resource_id],
            ScalableDimension=_SCALABLE_DIMENSION,
        )
    except ClientError as exc:
        return ScalingStatus(
            autoscaled=False,
            min=env.tasks.min,
            max=env.tasks.max,
            problem=_refused("read the scaling target", exc) + "; showing the configured bounds",
        )
    target = next((t for t in targets if t.get("ResourceId") == resource_id), None)
    if target is None:
        return ScalingStatus(
            autoscaled=False,
            min=env.tasks.min,
            max=env.tasks.max,
            problem=f"no scalable target for {resource_id}; showing the configured bounds",
        )
    return ScalingStatus(autoscaled=True, min=int(target["MinCapacity"]), max=int(target["MaxCapacity"]))


# --------------------------------------------------------------------------------------------
# RDS


def _database(*, env: EnvironmentConfig, aws: AwsGateway) -> tuple[DatabaseStatus | None, str | None]:
    try:
        answer = aws.call("rds", "describe_db_instances", DBInstanceIdentifier=env.rds_instance)
    except ClientError as exc:
        if error_code(exc) in _DB_NOT_FOUND:
            return None, f"database instance {env.rds_instance} not found"
        return None, _refused(f"read database instance {env.rds_instance}", exc)
    instances = answer.get("DBInstances") or []
    if not instances:
        return None, f"database instance {env.rds_instance} not found"
    db = instances[0]
    return DatabaseStatus(
        status=str(db.get("DBInstanceStatus", "unknown")),
        instance_class=str(db.get("DBInstanceClass", "unknown")),
        storage_gb=int(db.get("AllocatedStorage", 0)),
        engine=str(db.get("Engine", "unknown")),
        engine_version=str(db.get("EngineVersion", "")),
        multi_az=bool(db.get("MultiAZ", False)),
    ), None


# --------------------------------------------------------------------------------------------
# CloudWatch


def _alarms(*, env: EnvironmentConfig, aws: AwsGateway) -> dict[str, Any]:
    """``alarms`` in ALARM (newest first), or ``alarms_problem`` when CloudWatch refused."""
    try:
        return {"alarms": _alarms_in_alarm(env=env, aws=aws)}
    except ClientError as exc:
        return {"alarms": (), "alarms_problem": _refused("read the alarms", exc)}


def describe_alarms(*, aws: AwsGateway, **filters: Any) -> list[dict[str, Any]]:
    """Every metric and composite alarm DescribeAlarms answers for ``filters``, all pages."""
    # Without AlarmTypes AWS returns metric alarms only.
    params: dict[str, Any] = {**filters, "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}
    if "AlarmNames" not in filters:
        params["MaxRecords"] = 100
    found: list[dict[str, Any]] = []
    # One pass over the pages collects both lists (the gateway's paginate follows a single key).
    while True:
        page = aws.call("cloudwatch", "describe_alarms", **params)
        found.extend(_inert_text(a) for a in page.get("MetricAlarms") or [])
        found.extend(_inert_text(a) for a in page.get("CompositeAlarms") or [])
        token = page.get("NextToken")
        if not token:
            return found
        params["NextToken"] = token


def _inert_text(alarm: dict[str, Any]) -> dict[str, Any]:
    """An alarm as AWS describes it, with the text anyone could have written made inert (the same
    rule as alarm notifications, so names still match the threads they opened)."""
    return {k: inert(v) if k in _ALARM_TEXT and isinstance(v, str) else v for k, v in alarm.items()}


_ALARM_TEXT = frozenset({"AlarmName", "AlarmDescription", "StateReason"})


def _alarms_in_alarm(*, env: EnvironmentConfig, aws: AwsGateway) -> tuple[AlarmSummary, ...]:
    found = describe_alarms(aws=aws, AlarmNamePrefix=env.alarm_name_prefix, StateValue="ALARM")
    alarms = [
        AlarmSummary(
            name=str(a["AlarmName"]),
            reason=str(a.get("StateReason", "")),
            since=_utc(a.get("StateUpdatedTimestamp") or a.get("StateTransitionedTimestamp")),
        )
        # moto ignores StateValue when a prefix is given; AWS applies both. Filtering again is cheap.
        for a in found
        if a.get("StateValue") == "ALARM" and str(a.get("AlarmName", "")).startswith(env.alarm_name_prefix)
    ]
    return tuple(sorted(alarms, key=lambda a: (-a.since.timestamp(), a.name)))


# --------------------------------------------------------------------------------------------


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.fromtimestamp(0, UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _refused(what: str, exc: ClientError) -> str:
    # Only the error code: AWS's own message text may carry ARNs and account details.
    return f"could not {what}: AWS answered {error_code(exc) or 'an error'}"
