"""CloudWatch alarm state changes: metric, metric-math and composite alarms."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bot.events.aws_fields import (
    _arn_account,
    _arn_region,
    _arn_resource_name,
    _dict,
    _float,
    _int,
    _region_code,
    _str,
    _time,
    _url,
)
from bot.events.event import Event, Metric


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
