"""Parse SNS messages into events and route them to a channel (DESIGN §6, steps 2 and 3).

Pure functions, no I/O. ``parse_message`` never raises and never drops a message: anything it
cannot read as a CloudWatch alarm, an EventBridge event (ECS, RDS, GuardDuty, AWS Health) or an RDS
event-subscription notification becomes a ``generic`` event that keeps the text as AWS sent it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from bot.config import Config, EnvironmentConfig
from bot.render import inert

KINDS = ("alarm", "ecs_deployment", "ecs_service_action", "ecs_task", "rds", "guardduty", "health", "generic")
ALARM_STATES = ("ALARM", "OK", "INSUFFICIENT_DATA")
TEXT_LIMIT = 3000

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
# CloudWatch puts the region's display name in "Region"; used only when no ARN tells the code.
_REGION_NAMES = {
    "US East (N. Virginia)": "us-east-1",
    "US East (Ohio)": "us-east-2",
    "US West (N. California)": "us-west-1",
    "US West (Oregon)": "us-west-2",
    "Canada (Central)": "ca-central-1",
    "EU (Ireland)": "eu-west-1",
    "EU - Ireland": "eu-west-1",
    "Europe (Ireland)": "eu-west-1",
    "EU (London)": "eu-west-2",
    "Europe (London)": "eu-west-2",
    "EU (Paris)": "eu-west-3",
    "Europe (Paris)": "eu-west-3",
    "EU (Frankfurt)": "eu-central-1",
    "Europe (Frankfurt)": "eu-central-1",
    "EU (Stockholm)": "eu-north-1",
    "Europe (Stockholm)": "eu-north-1",
    "Asia Pacific (Tokyo)": "ap-northeast-1",
    "Asia Pacific (Seoul)": "ap-northeast-2",
    "Asia Pacific (Singapore)": "ap-southeast-1",
    "Asia Pacific (Sydney)": "ap-southeast-2",
    "Asia Pacific (Mumbai)": "ap-south-1",
    "South America (Sao Paulo)": "sa-east-1",
    "South America (São Paulo)": "sa-east-1",
    "AWS GovCloud (US-East)": "us-gov-east-1",
    "AWS GovCloud (US-West)": "us-gov-west-1",
    "AWS GovCloud (US)": "us-gov-west-1",
}
_RDS_SOURCES = {
    "db-instance",
    "db-cluster",
    "db-snapshot",
    "db-cluster-snapshot",
    "db-parameter-group",
    "db-cluster-parameter-group",
    "db-security-group",
    "db-proxy",
    "blue-green-deployment",
    "custom-engine-version",
}


@dataclass(frozen=True)
class Metric:
    """What a CloudWatch alarm watches. For a metric-math alarm ``expression`` is set and ``name``
    is the expression's label (or id); the metrics it reads are in ``Event.metrics``."""

    namespace: str | None
    name: str | None
    statistic: str | None
    period: int | None
    threshold: float | None
    comparison: str | None
    dimensions: tuple[tuple[str, str], ...] = ()
    unit: str | None = None
    evaluation_periods: int | None = None
    expression: str | None = None


@dataclass(frozen=True)
class Event:
    kind: str
    key: str  # the Slack thread key
    title: str
    state: str | None = None
    previous_state: str | None = None
    reason: str | None = None
    at: datetime | None = None  # aware, UTC
    region: str | None = None
    account: str | None = None
    resource: str | None = None  # alarm name, "cluster/service", DB identifier, finding type, ...
    metric: Metric | None = None
    children: tuple[str, ...] = ()  # composite alarm: triggering children (alarm names)
    severity: str | None = None  # "low" | "medium" | "high" | "critical"
    console_url: str | None = None
    raw: Any = None
    text: str | None = None  # generic: the message as AWS sent it (truncated)
    alarm_type: str | None = None  # "metric" | "metric_math" | "composite"
    metrics: tuple[Metric, ...] = ()  # metric-math: the metrics the expression reads
    rule: str | None = None  # composite: AlarmRule
    description: str | None = None
    cluster: str | None = None
    service: str | None = None
    names: tuple[str, ...] = ()  # resource names routing may match (clusters, dims, ...)


# ---------------------------------------------------------------------------------------- parse


def parse_message(subject: str | None, message: str) -> Event:
    """The event in an SNS ``message`` (its Message string); generic when it is nothing known.
    Every text in it is AWS's or whoever wrote the alarm: made inert, so it can never mention anyone."""
    subject = inert(subject) if subject is not None else None
    try:
        # Decoded first: JSON may spell "<" as \u003c.
        data = _inert_strings(json.loads(message)) if isinstance(message, str) else None
    except (ValueError, RecursionError):
        data = None
    message = inert(message) if isinstance(message, str) else message
    if isinstance(data, dict):
        try:
            event = _parse_known(data)
        except Exception:  # noqa: BLE001 - a malformed known message is still posted, as text
            event = None
        if event is not None:
            return event
    return _generic(subject, message, data)


def _inert_strings(value: Any) -> Any:
    if isinstance(value, str):
        return inert(value)
    if isinstance(value, dict):
        return {key: _inert_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_inert_strings(item) for item in value]
    return value


def _parse_known(data: dict[str, Any]) -> Event | None:
    if "AlarmName" in data and "NewStateValue" in data:
        return _alarm(data)
    if "detail-type" in data and ("source" in data or isinstance(data.get("detail"), dict)):
        return _eventbridge(data)
    if "Event Source" in data and "Event Message" in data:
        return _rds_subscription(data)
    return None


def _generic(subject: str | None, message: Any, data: Any) -> Event:
    text = message if isinstance(message, str) else repr(message)
    title = (subject or "").strip()
    if not title and isinstance(data, dict):
        title = str(data.get("detail-type") or data.get("Event Source") or "")
    if not title:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        title = first[:120] or "AWS notification"
    at = None
    region = account = None
    if isinstance(data, dict):
        at = _time(data.get("time"))
        region = _region_code(data.get("region"))
        account = _str(data.get("account"))
    digest = hashlib.sha256(f"{subject or ''}\n{text}".encode()).hexdigest()[:16]
    return Event(
        kind="generic",
        key=f"generic:{digest}",
        title=title[:200],
        at=at,
        region=region,
        account=account,
        raw=data if data is not None else text,
        text=_truncate(text),
    )


# --- CloudWatch alarms


def _alarm(data: dict[str, Any]) -> Event:
    name = str(data["AlarmName"])
    arn = _str(data.get("AlarmArn"))
    region = _arn_region(arn) or _region_code(data.get("Region"))
    account = _arn_account(arn) or _str(data.get("AWSAccountId"))
    trigger = data.get("Trigger") if isinstance(data.get("Trigger"), dict) else None
    metric: Metric | None = None
    metrics: tuple[Metric, ...] = ()
    children: tuple[str, ...] = ()
    rule = _str(data.get("AlarmRule"))
    if rule is not None or "TriggeringChildren" in data:
        alarm_type = "composite"
        children = tuple(
            _arn_resource_name(_str(c.get("Arn"))) or str(c.get("Arn"))
            for c in (data.get("TriggeringChildren") or [])
            if isinstance(c, dict)
        )
    elif trigger is not None and isinstance(trigger.get("Metrics"), list):
        alarm_type = "metric_math"
        metric, metrics = _math_metric(trigger)
    elif trigger is not None:
        alarm_type = "metric"
        metric = Metric(
            namespace=_str(trigger.get("Namespace")),
            name=_str(trigger.get("MetricName")),
            statistic=_str(trigger.get("Statistic") or trigger.get("ExtendedStatistic")),
            period=_int(trigger.get("Period")),
            threshold=_float(trigger.get("Threshold")),
            comparison=_str(trigger.get("ComparisonOperator")),
            dimensions=_dimensions(trigger.get("Dimensions")),
            unit=_str(trigger.get("Unit")),
            evaluation_periods=_int(trigger.get("EvaluationPeriods")),
        )
    else:
        alarm_type = None
    dims = metric.dimensions if metric else ()
    dims += tuple(d for m in metrics for d in m.dimensions)
    state = _str(data.get("NewStateValue"))
    return Event(
        kind="alarm",
        key=arn or f"alarm:{account or '-'}:{region or '-'}:{name}",
        title=name,
        state=state,
        previous_state=_str(data.get("OldStateValue")),
        reason=_str(data.get("NewStateReason")),
        at=_time(data.get("StateChangeTime")),
        region=region,
        account=account,
        resource=name,
        metric=metric,
        children=children,
        console_url=_url(region, f"cloudwatch/home?region={region}#alarmsV2:alarm/{quote(name, safe='')}"),
        raw=data,
        alarm_type=alarm_type,
        metrics=metrics,
        rule=rule,
        description=_str(data.get("AlarmDescription")),
        names=(name, *(value for _, value in dims)),
    )


def _math_metric(trigger: dict[str, Any]) -> tuple[Metric, tuple[Metric, ...]]:
    entries = [m for m in trigger["Metrics"] if isinstance(m, dict)]
    reads = []
    for entry in entries:
        stat = entry.get("MetricStat")
        if not isinstance(stat, dict):
            continue
        inner = _dict(stat.get("Metric"))
        reads.append(
            Metric(
                namespace=_str(inner.get("Namespace")),
                name=_str(inner.get("MetricName")),
                statistic=_str(stat.get("Stat")),
                period=_int(stat.get("Period")),
                threshold=None,
                comparison=None,
                dimensions=_dimensions(inner.get("Dimensions")),
                unit=_str(stat.get("Unit")),
            )
        )
    returned = next((e for e in entries if e.get("ReturnData")), entries[0] if entries else {})
    expression = _str(returned.get("Expression"))
    main = Metric(
        namespace=reads[0].namespace if len(reads) == 1 else None,
        name=_str(returned.get("Label")) or _str(returned.get("Id")),
        statistic=None,
        period=_int(trigger.get("Period")),
        threshold=_float(trigger.get("Threshold")),
        comparison=_str(trigger.get("ComparisonOperator")),
        dimensions=(),
        evaluation_periods=_int(trigger.get("EvaluationPeriods")),
        expression=expression or _str(returned.get("Id")),
    )
    return main, tuple(reads)


def _dimensions(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for item in value:
        if isinstance(item, dict):
            name = item.get("name", item.get("Name"))
            val = item.get("value", item.get("Value"))
            if name is not None:
                out.append((str(name), "" if val is None else str(val)))
    return tuple(out)


# --- EventBridge


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


def _envelope_region(data: dict[str, Any], *arns: str | None) -> str | None:
    for arn in arns:
        region = _arn_region(arn)
        if region:
            return region
    return _region_code(data.get("region"))


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


def _rds_eventbridge(data: dict[str, Any], detail: dict[str, Any]) -> Event:
    source_arn = _str(detail.get("SourceArn")) or next(
        (r for r in data.get("resources") or [] if isinstance(r, str)), None
    )
    ident = _str(detail.get("SourceIdentifier")) or _arn_resource_name(source_arn) or "?"
    region = _envelope_region(data, source_arn)
    event_id = _str(detail.get("EventID"))
    source_type = _str(detail.get("SourceType")) or "DB_INSTANCE"
    message = _str(detail.get("Message"))
    return Event(
        kind="rds",
        key=f"rds:{ident}",
        title=f"RDS {ident}: {message or event_id or 'event'}",
        state=event_id,
        reason=message,
        at=_time(detail.get("Date")) or _time(data.get("time")),
        region=region,
        account=_arn_account(source_arn) or _str(data.get("account")),
        resource=ident,
        console_url=_rds_url(region, ident, cluster="CLUSTER" in source_type.upper()),
        raw=data,
        names=(ident,),
    )


def _rds_subscription(data: dict[str, Any]) -> Event | None:
    source = str(data.get("Event Source") or "")
    event_ref = str(data.get("Event ID") or "")
    link = _str(data.get("Identifier Link"))
    if source not in _RDS_SOURCES and "RDS-EVENT" not in event_ref and "/rds/" not in (link or ""):
        return None  # DMS and friends use the same shape: posted as generic
    ident = _str(data.get("Source ID") or data.get("SourceId")) or "?"
    region = None
    if link:
        query = parse_qs(urlsplit(link).query)
        regions = query.get("region")
        region = _region_code(regions[0] if regions else None)
    match = re.search(r"RDS-EVENT-\d+", event_ref)
    message = _str(data.get("Event Message"))
    at = _time(data.get("Event Time"))
    return Event(
        kind="rds",
        key=f"rds:{ident}",
        title=f"RDS {ident}: {message or 'event'}",
        state=match.group(0) if match else None,
        reason=message,
        at=at,
        region=region,
        resource=ident,
        console_url=_rds_url(region, ident, cluster="cluster" in source) or link,
        raw=data,
        names=(ident,),
    )


def _rds_url(region: str | None, ident: str, *, cluster: bool) -> str | None:
    if ident == "?":
        return None
    flag = "true" if cluster else "false"
    return _url(region, f"rds/home?region={region}#database:id={quote(ident, safe='')};is-cluster={flag}")


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


# ---------------------------------------------------------------------------------------- route


def route(event: Event, config: Config, *, topic_arn: str | None = None) -> tuple[str | None, str]:
    """(environment name or None, channel) for ``event``: by a topic configured for an environment
    (``alarm_topics``), by alarm name prefix, by resource name (cluster, service, DB instance: exact
    or ``<name>-``-prefixed), then by the topic's name (``menotime-<env>``). The channel is the
    env's alerts channel, else the default alerts one."""
    env = (
        _env_by_configured_topic(topic_arn, config)
        or _env_by_alarm_prefix(event, config)
        or _env_by_resource(event, config)
        or _env_by_topic(topic_arn, config)
    )
    if env is None:
        return None, config.channels.default_alerts
    return env.name, env.alerts_channel or config.channels.default_alerts


def _env_by_configured_topic(topic_arn: str | None, config: Config) -> EnvironmentConfig | None:
    return next((e for e in config.environments.values() if topic_arn and topic_arn in e.alarm_topics), None)


def _env_by_alarm_prefix(event: Event, config: Config) -> EnvironmentConfig | None:
    if event.kind != "alarm" or not event.resource:
        return None
    hits = [e for e in config.environments.values() if event.resource.startswith(e.alarm_name_prefix)]
    return max(hits, key=lambda e: len(e.alarm_name_prefix), default=None)


def _env_by_resource(event: Event, config: Config) -> EnvironmentConfig | None:
    names = set(event.names)
    for part in (event.cluster, event.service):
        if part:
            names.add(part)
    best: tuple[int, EnvironmentConfig] | None = None
    for env in config.environments.values():
        for known in (env.cluster, env.service, env.rds_instance):
            for name in names:
                matches = name == known or name.startswith(f"{known}-")
                if matches and (best is None or len(known) > best[0]):
                    best = (len(known), env)
    return best[1] if best else None


def _env_by_topic(topic_arn: str | None, config: Config) -> EnvironmentConfig | None:
    if not topic_arn:
        return None
    topic = topic_arn.rsplit(":", 1)[-1]
    hits = [
        e
        for e in config.environments.values()
        if re.search(rf"menotime-{re.escape(e.name)}(?![a-z0-9])", topic)
    ]
    return max(hits, key=lambda e: len(e.name), default=None)


# ---------------------------------------------------------------------------------------- helpers


def _dict(value: Any) -> dict[str, Any]:
    """A JSON object as it is; anything else (missing, a list, a string) as an empty one."""
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _truncate(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def _time(value: Any) -> datetime | None:
    """An aware UTC datetime from AWS's many time formats; None when there is none."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)  # "Sat, 05 Jun 2016 15:10:09 GMT"
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # RDS "Event Time" is UTC without a zone
    return moment.astimezone(UTC)


def _region_code(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _REGION.match(text):
        return text
    return _REGION_NAMES.get(text)


def _arn_parts(arn: str | None) -> list[str] | None:
    if not arn or not arn.startswith("arn:"):
        return None
    parts = arn.split(":", 5)
    return parts if len(parts) == 6 else None


def _arn_region(arn: str | None) -> str | None:
    parts = _arn_parts(arn)
    return parts[3] if parts and _REGION.match(parts[3]) else None


def _arn_account(arn: str | None) -> str | None:
    parts = _arn_parts(arn)
    return parts[4] if parts and parts[4].isdigit() else None


def _arn_resource_name(arn: str | None) -> str | None:
    """The last name in an ARN's resource part: ``alarm:NAME``, ``cluster/NAME``, ``db:NAME``."""
    parts = _arn_parts(arn)
    if not parts:
        return None
    resource = parts[5]
    if resource.startswith(("alarm:", "db:", "cluster:")):
        return resource.split(":", 1)[1]
    return resource.rsplit("/", 1)[-1] or None


def _service_from_arn(arn: str | None) -> tuple[str | None, str | None]:
    parts = _arn_parts(arn)
    if not parts or not parts[5].startswith("service/"):
        return None, None
    path = parts[5].removeprefix("service/").split("/")
    if len(path) >= 2:
        return path[0], path[1]
    return None, path[0] or None  # the old ARN format has no cluster


def _url(region: str | None, path: str) -> str | None:
    if not region:
        return None
    host = "console.amazonaws-us-gov.com" if region.startswith("us-gov-") else "console.aws.amazon.com"
    return f"https://{region}.{host}/{path}"
