"""EventBridge events: ECS deployments, service actions and tasks, GuardDuty findings and malware
scans, AWS Health; RDS events are read in ``bot.events.rds``."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from bot.events.aws_fields import (
    _arn_account,
    _arn_resource_name,
    _dict,
    _envelope_region,
    _region_code,
    _service_from_arn,
    _str,
    _time,
    _url,
)
from bot.events.event import Event
from bot.events.rds import _rds_eventbridge


def _eventbridge(data: dict[str, Any]) -> Event | None:
    source = _str(data.get("source")) or ""
    detail_type = str(data.get("detail-type"))
    detail = _dict(data.get("detail"))
    if detail_type == "ECS Deployment State Change":
        return _ecs_service(data, detail, "ecs_deployment", "deployment")
    if detail_type == "ECS Service Action":
        return _ecs_service(data, detail, "ecs_service_action", "service")
    if detail_type == "ECS Task State Change":
        return _ecs_task(data, detail)
    if source == "aws.rds" or detail_type.startswith("RDS DB "):
        return _rds_eventbridge(data, detail)
    if detail_type == "GuardDuty Finding":
        return _guardduty(data, detail)
    if detail_type.startswith("GuardDuty Malware Protection"):
        return _guardduty_malware(data, detail)
    if source == "aws.health" or detail_type == "AWS Health Event":
        return _health(data, detail)
    return None  # other EventBridge events (container instances, Glue, ...) are posted as generic


def _ecs_service(data: dict[str, Any], detail: dict[str, Any], kind: str, suffix: str) -> Event:
    resources = [r for r in data.get("resources") or [] if isinstance(r, str)]
    service_arn = next((r for r in resources if ":service/" in r), None)
    cluster_arn = _str(detail.get("clusterArn"))
    cluster, service = _service_from_arn(service_arn)
    cluster = cluster or _arn_resource_name(cluster_arn)
    region = _envelope_region(data, service_arn, cluster_arn)
    account = _arn_account(service_arn) or _str(data.get("account"))
    name = _str(detail.get("eventName")) or _detail_type(data)
    where = f"{cluster or '?'}/{service or '?'}"
    url = None
    if cluster and service:
        tab = "deployments" if kind == "ecs_deployment" else "health"
        url = _url(region, f"ecs/v2/clusters/{cluster}/services/{service}/{tab}?region={region}")
    return Event(
        kind=kind,
        key=f"ecs:{where}:{suffix}",
        title=f"ECS {service or 'service'}: {name}",
        state=name,
        reason=_str(detail.get("reason")),
        at=_time(data.get("time")) or _time(detail.get("updatedAt") or detail.get("createdAt")),
        region=region,
        account=account,
        resource=where,
        severity=_ecs_severity(detail.get("eventType")),
        console_url=url,
        raw=data,
        cluster=cluster,
        service=service,
        names=tuple(n for n in (cluster, service) if n),
    )


def _detail_type(data: dict[str, Any]) -> str:
    return str(data.get("detail-type") or "event")


def _ecs_task(data: dict[str, Any], detail: dict[str, Any]) -> Event:
    task_arn = _str(detail.get("taskArn")) or next(
        (r for r in data.get("resources") or [] if isinstance(r, str) and ":task/" in r), None
    )
    cluster_arn = _str(detail.get("clusterArn"))
    cluster = _arn_resource_name(cluster_arn)
    group = _str(detail.get("group")) or ""
    service = group.removeprefix("service:") if group.startswith("service:") else None
    family = group.removeprefix("family:") if group.startswith("family:") else None
    if family is None and _str(detail.get("taskDefinitionArn")):
        definition = _arn_resource_name(detail["taskDefinitionArn"])  # None when it is not an ARN
        family = definition.split(":")[0] if definition else None
    owner = service or family or "?"
    task_id = _arn_resource_name(task_arn)
    region = _envelope_region(data, task_arn, cluster_arn)
    last, desired = _str(detail.get("lastStatus")), _str(detail.get("desiredStatus"))
    reason = _str(detail.get("stoppedReason"))
    stop_code = _str(detail.get("stopCode"))
    if stop_code and reason:
        reason = f"{stop_code}: {reason}"
    url = None
    if cluster and task_id:
        url = _url(region, f"ecs/v2/clusters/{cluster}/tasks/{task_id}/configuration?region={region}")
    return Event(
        kind="ecs_task",
        key=f"ecs:{cluster or '?'}/{owner}:task",
        title=f"ECS task {owner}: {last or '?'}"
        + (f" (desired {desired})" if desired and desired != last else ""),
        state=last,
        previous_state=None,
        reason=reason or stop_code,
        at=_time(data.get("time")) or _time(detail.get("updatedAt")),
        region=region,
        account=_arn_account(task_arn) or _str(data.get("account")),
        resource=f"{cluster or '?'}/{owner}",
        console_url=url,
        raw=data,
        cluster=cluster,
        service=service,
        names=tuple(n for n in (cluster, service, family) if n),
    )


def _ecs_severity(event_type: Any) -> str | None:
    return {"INFO": "low", "WARN": "medium", "ERROR": "high"}.get(str(event_type).upper())


def severity_band(value: Any) -> str | None:
    """GuardDuty's numeric severity as a band: <4 low, <7 medium, <9 high, else critical."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return None
    if number < 4:
        return "low"
    if number < 7:
        return "medium"
    if number < 9:
        return "high"
    return "critical"


def _guardduty(data: dict[str, Any], detail: dict[str, Any]) -> Event:
    finding_arn = _str(detail.get("arn"))
    region = _envelope_region(data, finding_arn) or _region_code(detail.get("region"))
    finding_id = _str(detail.get("id")) or "?"
    band = severity_band(detail.get("severity"))
    service = _dict(detail.get("service"))
    return Event(
        kind="guardduty",
        key=f"guardduty:{_str(detail.get('accountId')) or _str(data.get('account')) or '-'}:{finding_id}",
        title=_str(detail.get("title")) or _str(detail.get("type")) or "GuardDuty finding",
        state=band,
        reason=_str(detail.get("description")),
        at=_time(data.get("time")) or _time(detail.get("updatedAt")) or _time(service.get("eventLastSeen")),
        region=region,
        account=_str(detail.get("accountId")) or _str(data.get("account")),
        resource=_str(detail.get("type")),
        severity=band,
        console_url=_url(
            region, f"guardduty/home?region={region}#/findings?macros=current&fId={quote(finding_id)}"
        )
        if finding_id != "?"
        else None,
        raw=data,
    )


def _guardduty_malware(data: dict[str, Any], detail: dict[str, Any]) -> Event:
    resources = [r for r in data.get("resources") or [] if isinstance(r, str)]
    region = _envelope_region(data, *resources)
    result = _dict(detail.get("scanResultDetails"))
    status = _str(result.get("scanResultStatus")) or _str(detail.get("scanStatus"))
    obj = _dict(detail.get("s3ObjectDetails"))
    target = "/".join(str(p) for p in (obj.get("bucketName"), obj.get("objectKey")) if p) or None
    threats = [str(t.get("name")) for t in result.get("threats") or [] if isinstance(t, dict)]
    return Event(
        kind="guardduty",
        key=f"guardduty:malware:{target or _str(data.get('id')) or '?'}",
        title=f"GuardDuty malware scan: {status or '?'}" + (f" in {target}" if target else ""),
        state=status,
        reason=", ".join(threats) or None,
        at=_time(data.get("time")),
        region=region,
        account=_str(data.get("account")),
        resource=target,
        severity="high" if status == "THREATS_FOUND" else None,
        console_url=_url(region, f"guardduty/home?region={region}#/malware-protection"),
        raw=data,
    )


def _health(data: dict[str, Any], detail: dict[str, Any]) -> Event:
    event_arn = _str(detail.get("eventArn"))
    region = _envelope_region(data, event_arn)
    descriptions = detail.get("eventDescription") or []
    reason = next((_str(d.get("latestDescription")) for d in descriptions if isinstance(d, dict)), None)
    code = _str(detail.get("eventTypeCode")) or "AWS Health event"
    entities = tuple(
        str(e.get("entityValue"))
        for e in detail.get("affectedEntities") or []
        if isinstance(e, dict) and e.get("entityValue")
    )
    url = None
    if event_arn:
        url = (
            "https://health.aws.amazon.com/health/home#/account/event-log?eventID="
            f"{quote(event_arn, safe='')}&eventTab=details"
        )
    return Event(
        kind="health",
        key=f"health:{event_arn or code}",
        title=f"AWS Health: {_str(detail.get('service')) or ''} {code}".replace("  ", " "),
        state=_str(detail.get("statusCode")) or _str(detail.get("eventTypeCategory")),
        reason=reason,
        at=_time(data.get("time")) or _time(detail.get("startTime")),
        region=region,
        account=_str(data.get("account")),
        resource=", ".join(entities) or _str(detail.get("service")),
        console_url=url,
        raw=data,
        names=entities,
    )
