"""Alarm notifications, as CloudWatch publishes them to SNS (moto's CloudWatch does not publish)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.aws import AwsGateway

_REGION_NAMES = {
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "us-east-1": "US East (N. Virginia)",
}


def alarm_notification(gateway: AwsGateway, *, name: str, state: str, reason: str, at: datetime) -> str:
    """The SNS ``Message`` CloudWatch would send for alarm ``name`` (read from the simulator)
    moving to ``state`` at ``at``; the alarm's state in the simulator moves too."""
    [alarm] = gateway.call("cloudwatch", "describe_alarms", AlarmNames=[name])["MetricAlarms"]
    gateway.call("cloudwatch", "set_alarm_state", AlarmName=name, StateValue=state, StateReason=reason)
    region = alarm["AlarmArn"].split(":")[3]
    trigger: dict[str, Any] = {
        "MetricName": alarm["MetricName"],
        "Namespace": alarm["Namespace"],
        "Dimensions": [{"name": d["Name"], "value": d["Value"]} for d in alarm.get("Dimensions", [])],
        "Period": alarm["Period"],
        "EvaluationPeriods": alarm["EvaluationPeriods"],
        "ComparisonOperator": alarm["ComparisonOperator"],
        "Threshold": alarm["Threshold"],
        "TreatMissingData": alarm.get("TreatMissingData", "missing"),
    }
    if alarm.get("Statistic"):
        trigger.update(StatisticType="Statistic", Statistic=alarm["Statistic"].upper())
    else:
        trigger.update(StatisticType="ExtendedStatistic", ExtendedStatistic=alarm.get("ExtendedStatistic"))
    return json.dumps(
        {
            "AlarmName": name,
            "AlarmDescription": alarm.get("AlarmDescription"),
            "AWSAccountId": alarm["AlarmArn"].split(":")[4],
            "NewStateValue": state,
            "NewStateReason": reason,
            "StateChangeTime": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "Region": _REGION_NAMES.get(region, region),
            "AlarmArn": alarm["AlarmArn"],
            "OldStateValue": alarm["StateValue"],
            "Trigger": trigger,
        }
    )
