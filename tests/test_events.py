"""bot.events: parsing SNS messages into events (DESIGN §6 step 2) and routing them (step 3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, load_config
from bot.events import KINDS, TEXT_LIMIT, Event, parse_message, route, severity_band
from bot.fakes.fixture_files import FIXTURES

MISSING = f"event fixtures not found at {FIXTURES}"

# fixture (relative to FIXTURES) -> expected kind
EXPECTED_KIND: dict[str, str] = {
    "cloudwatch/aws-lambda-go__cloudwatch-alarm-sns-payload-single-metric.json": "alarm",
    "cloudwatch/aws-lambda-go__cloudwatch-alarm-sns-payload-multiple-metrics.json": "alarm",
    "cloudwatch/real-signed-metric-alarm-sigv1.json": "alarm",
    "cloudwatch/real-signed-composite-alarm-sigv1.json": "alarm",
    "eventbridge/aws-lambda-go__ecs-container-instance-state-change.json": "generic",
    "eventbridge/awsdocs-ecs__ECS_Container_Instance_State_Change__ACTIVE.json": "generic",
    "eventbridge/awsdocs-ecs__ECS_Deployment_State_Change__SERVICE_DEPLOYMENT_COMPLETED.json": "ecs_deployment",
    "eventbridge/awsdocs-ecs__ECS_Deployment_State_Change__SERVICE_DEPLOYMENT_FAILED.json": "ecs_deployment",
    "eventbridge/awsdocs-ecs__ECS_Deployment_State_Change__SERVICE_DEPLOYMENT_IN_PROGRESS.json": "ecs_deployment",
    "eventbridge/awsdocs-ecs__ECS_Deployment_State_Change__SERVICE_DEPLOYMENT_IN_PROGRESS_rollback.json": "ecs_deployment",
    "eventbridge/awsdocs-ecs__ECS_Service_Action__CAPACITY_PROVIDER_STEADY_STATE.json": "ecs_service_action",
    "eventbridge/awsdocs-ecs__ECS_Service_Action__SERVICE_STEADY_STATE.json": "ecs_service_action",
    "eventbridge/awsdocs-ecs__ECS_Service_Action__SERVICE_TASK_PLACEMENT_FAILURE_cpu.json": "ecs_service_action",
    "eventbridge/awsdocs-ecs__ECS_Service_Action__SERVICE_TASK_PLACEMENT_FAILURE_fargate.json": "ecs_service_action",
    "eventbridge/awsdocs-ecs__ECS_Service_Action__SERVICE_TASK_START_IMPAIRED.json": "ecs_service_action",
    "eventbridge/awsdocs-ecs__ECS_Task_State_Change__RUNNING.json": "ecs_task",
    "eventbridge/realworld__ECS_Task_State_Change__DEPROVISIONING_EssentialContainerExited.json": "ecs_task",
    "eventbridge/awsdocs-rds__RDS_DB_Instance_Event__RDS-EVENT-0087_stopped.json": "rds",
    "eventbridge/awsdocs-lambda__RDS_event_subscription_via_SNS__lambda_record.json": "rds",
    "notify-slack/events__aws_health_event.json": "health",
    "notify-slack/events__cloudwatch_alarm.json": "alarm",
    "notify-slack/events__guardduty_finding_high.json": "guardduty",
    "notify-slack/events__guardduty_finding_medium.json": "guardduty",
    "notify-slack/events__guardduty_finding_low.json": "guardduty",
    "notify-slack/messages__backup.json": "generic",
    "notify-slack/messages__cloudwatch_alarm.json": "alarm",
    "notify-slack/messages__dms_notification.json": "generic",
    "notify-slack/messages__glue_notification.json": "generic",
    "notify-slack/messages__guardduty_finding.json": "guardduty",
    "notify-slack/messages__guardduty_malware_protection_object_scan_result.json": "guardduty",
    "notify-slack/messages__text_message.json": "generic",
}


def _sns(path: Path) -> tuple[str | None, str]:
    """(Subject, Message) of a fixture: a Lambda Records file, an SNS envelope, or a bare payload."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if "Records" in data:
        sns = data["Records"][0]["Sns"]
        return sns.get("Subject"), sns["Message"]
    if data.get("Type") == "Notification":
        return data.get("Subject"), data["Message"]
    return None, json.dumps(data)  # a raw payload, as SNS would carry it in Message


def _fixture_params() -> list[Any]:
    if not FIXTURES.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=MISSING))]
    return [pytest.param(name, kind, id=name.split("/", 1)[1][:80]) for name, kind in EXPECTED_KIND.items()]


def _load(name: str) -> Event:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"fixture {name} not found under {FIXTURES}")
    return parse_message(*_sns(path))


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


# ------------------------------------------------------------------------------ every fixture


@pytest.mark.parametrize(("name", "kind"), _fixture_params())
def test_fixture_parses_to_expected_kind(name: str, kind: str) -> None:
    event = _load(name)
    assert event.kind == kind
    assert event.kind in KINDS
    assert event.key and event.title
    assert event.raw is not None
    if event.at is not None:
        assert event.at.tzinfo is not None and event.at.utcoffset().total_seconds() == 0
    if kind != "generic":
        assert event.at is not None
        assert event.text is None
    else:
        assert event.text  # the message is kept


def test_every_fixture_message_parses_without_raising() -> None:
    """Every SNS message in the shared fixtures (signature ones included) yields an event."""
    if not FIXTURES.is_dir():
        pytest.skip(MISSING)
    for path in sorted(FIXTURES.glob("*/*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "Records" not in data and data.get("Type") not in ("Notification", None):
            continue
        event = parse_message(*_sns(path))
        assert event.kind in KINDS, path


def test_all_event_fixtures_are_covered() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(MISSING)
    on_disk = {
        str(p.relative_to(FIXTURES))
        for folder in ("cloudwatch", "eventbridge", "notify-slack")
        for p in (FIXTURES / folder).glob("*.json")
    }
    assert on_disk - set(EXPECTED_KIND) == set()


# ------------------------------------------------------------------------------ CloudWatch alarms


def test_metric_alarm() -> None:
    event = _load("cloudwatch/real-signed-metric-alarm-sigv1.json")
    name = "if-sim-app_427809481713_us-east-1-metric_emitting_node_failure"
    assert event.kind == "alarm" and event.alarm_type == "metric"
    assert event.key == f"arn:aws:cloudwatch:us-east-1:427809481713:alarm:{name}"
    assert event.title == name and event.resource == name
    assert (event.state, event.previous_state) == ("ALARM", "INSUFFICIENT_DATA")
    assert event.reason.startswith("Threshold Crossed")
    assert event.at == datetime(2021, 11, 10, 2, 45, 55, 640000, tzinfo=UTC)
    assert event.region == "us-east-1"  # from the ARN, not "US East (N. Virginia)"
    assert event.account == "427809481713"
    m = event.metric
    assert m is not None and m.expression is None
    assert (m.namespace, m.name, m.statistic, m.period) == (
        "sim-app_427809481713_us-east-1",
        "IExecutionFailureHook",
        "SUM",
        300,
    )
    assert (m.threshold, m.comparison) == (1.0, "GreaterThanOrEqualToThreshold")
    assert m.dimensions == (
        ("MetricGroupId", "routing_table.receive.hook"),
        ("RouteID", "metric_emitting_node"),
    )
    assert event.children == () and event.metrics == ()
    assert event.console_url == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#alarmsV2:alarm/" + name
    )


def test_metric_math_alarm() -> None:
    event = _load("cloudwatch/aws-lambda-go__cloudwatch-alarm-sns-payload-multiple-metrics.json")
    assert event.kind == "alarm" and event.alarm_type == "metric_math"
    assert event.metric is not None
    assert event.metric.expression == "m1*1" and event.metric.name == "Expression1"
    assert (event.metric.threshold, event.metric.comparison, event.metric.period) == (
        0.0,
        "GreaterThanThreshold",
        60,
    )
    assert len(event.metrics) == 1
    read = event.metrics[0]
    assert (read.namespace, read.name, read.statistic) == ("AWS/EC2", "NetworkOut", "Average")
    assert read.dimensions == (("InstanceId", "TestInstance"),)
    # The ARN carries a placeholder ("REGION") and Region a non-name: no region is made up.
    assert event.region is None and event.console_url is None
    assert event.at == datetime(2015, 6, 3, 17, 43, 27, 123000, tzinfo=UTC)


def test_single_metric_alarm_from_lambda_go_is_metric() -> None:
    event = _load("cloudwatch/aws-lambda-go__cloudwatch-alarm-sns-payload-single-metric.json")
    assert event.alarm_type == "metric" and event.metric.expression is None
    assert (event.metric.namespace, event.metric.name) == ("AWS/EC2", "NetworkOut")


def test_composite_alarm() -> None:
    event = _load("cloudwatch/real-signed-composite-alarm-sigv1.json")
    assert event.kind == "alarm" and event.alarm_type == "composite"
    assert event.metric is None
    assert event.children == ("if-sim-app_427809481713_us-east-1-metric_emitting_node_failure",)
    assert event.rule.startswith("ALARM(arn:aws:cloudwatch:us-east-1:")
    assert (event.state, event.previous_state) == ("ALARM", "OK")
    assert event.key.endswith(":alarm:if-sim-app_427809481713_us-east-1-test_node_monitor")
    assert event.region == "us-east-1"


def test_region_comes_from_the_arn_not_the_display_name() -> None:
    message = json.dumps(
        {
            "AlarmName": "menotime-prod-api-5xx",
            "NewStateValue": "ALARM",
            "OldStateValue": "OK",
            "NewStateReason": "Threshold Crossed",
            "StateChangeTime": "2026-01-02T03:04:05.000+0000",
            "Region": "US East (N. Virginia)",
            "AWSAccountId": "111122223333",
            "AlarmArn": "arn:aws:cloudwatch:us-west-1:111122223333:alarm:menotime-prod-api-5xx",
            "Trigger": {
                "MetricName": "HTTPCode_Target_5XX_Count",
                "Namespace": "AWS/ApplicationELB",
                "Statistic": "SUM",
                "Period": 60,
                "Threshold": 5.0,
                "ComparisonOperator": "GreaterThanThreshold",
                "Dimensions": [],
            },
        }
    )
    event = parse_message('ALARM: "menotime-prod-api-5xx" in US East (N. Virginia)', message)
    assert event.region == "us-west-1"
    assert event.console_url.startswith(
        "https://us-west-1.console.aws.amazon.com/cloudwatch/home?region=us-west-1"
    )


def test_alarm_without_arn_keys_on_name_and_reads_the_display_region() -> None:
    event = _load("notify-slack/events__cloudwatch_alarm.json")
    assert event.key == "alarm:000000000000:eu-west-1:Example"
    assert event.region == "eu-west-1"  # "EU - Ireland", no ARN to say otherwise
    assert event.alarm_type is None and event.metric is None


def test_ok_alarm_state() -> None:
    event = _load("notify-slack/messages__cloudwatch_alarm.json")
    assert (event.state, event.previous_state) == ("OK", "ALARM")
    assert event.metric.dimensions == ()


@pytest.mark.parametrize(
    "message",
    [
        '{"AlarmName": "menotime-prod-x", "NewStateValue": "ALARM", "Trigger": {"Metrics": "nope"',  # cut short
        '{"AlarmName": "menotime-prod-x", "NewStateValue": "ALARM", "Trigger": {"Metrics": [1, {"MetricStat": 3}]}}',
        '{"AlarmName": ["x"], "NewStateValue": {"a": 1}, "StateChangeTime": 12, "AlarmArn": 5, "TriggeringChildren": 3}',
        '{"AlarmName": "a", "NewStateValue": "ALARM", "Trigger": {"Dimensions": "bad", "Period": "x"}}',
        '{"detail-type": "ECS Deployment State Change", "source": "aws.ecs", "detail": 7, "resources": 3}',
        '{"detail-type": "GuardDuty Finding", "detail": {"severity": "high", "id": null}}',
        '{"Event Source": "db-instance", "Event Message": 3, "Identifier Link": 4}',
        "[1, 2, 3]",
        "null",
        "",
        "\x00\xff not json",
    ],
)
def test_broken_messages_never_raise(message: str) -> None:
    event = parse_message("ALARM: broken", message)
    assert event.kind in KINDS
    assert event.key and event.title
    if event.kind == "generic":
        assert event.text == message


def test_truncated_alarm_json_is_generic_with_the_text() -> None:
    message = '{"AlarmName": "menotime-prod-api-5xx", "NewStateValue": "ALARM", "Trigger": {'
    event = parse_message('ALARM: "menotime-prod-api-5xx"', message)
    assert event.kind == "generic"
    assert event.text == message
    assert event.title == 'ALARM: "menotime-prod-api-5xx"'


def test_a_parser_that_fails_falls_back_to_generic(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.events import parse

    def boom(data: dict[str, Any]) -> Event:
        raise KeyError("surprise")

    monkeypatch.setattr(parse, "_alarm", boom)  # the name parse_message's dispatch calls
    message = json.dumps({"AlarmName": "a", "NewStateValue": "ALARM"})
    event = parse_message(None, message)
    assert event.kind == "generic" and event.text == message


# ------------------------------------------------------------------------------ ECS


def test_ecs_deployment_events() -> None:
    failed = _load("eventbridge/awsdocs-ecs__ECS_Deployment_State_Change__SERVICE_DEPLOYMENT_FAILED.json")
    done = _load("eventbridge/awsdocs-ecs__ECS_Deployment_State_Change__SERVICE_DEPLOYMENT_COMPLETED.json")
    assert failed.key == done.key == "ecs:default/servicetest:deployment"  # one thread per service
    assert failed.state == "SERVICE_DEPLOYMENT_FAILED" and done.state == "SERVICE_DEPLOYMENT_COMPLETED"
    assert failed.reason == "ECS deployment circuit breaker: task failed to start."
    assert (failed.cluster, failed.service, failed.resource) == (
        "default",
        "servicetest",
        "default/servicetest",
    )
    assert failed.region == "us-west-2" and failed.account == "111122223333"
    assert failed.at == datetime(2020, 5, 23, 12, 31, 14, tzinfo=UTC)
    assert failed.console_url == (
        "https://us-west-2.console.aws.amazon.com/ecs/v2/clusters/default/services/"
        "servicetest/deployments?region=us-west-2"
    )


def test_ecs_service_action() -> None:
    event = _load("eventbridge/awsdocs-ecs__ECS_Service_Action__SERVICE_TASK_PLACEMENT_FAILURE_cpu.json")
    assert event.key == "ecs:default/servicetest:service"
    assert event.state == "SERVICE_TASK_PLACEMENT_FAILURE" and event.reason == "RESOURCE:CPU"
    assert event.severity == "high"  # eventType ERROR


def test_ecs_task_state_change() -> None:
    event = _load(
        "eventbridge/realworld__ECS_Task_State_Change__DEPROVISIONING_EssentialContainerExited.json"
    )
    assert event.state == "DEPROVISIONING"
    assert event.key == "ecs:primary-cluster/voterintake:task"
    assert event.reason == "EssentialContainerExited: Essential container in task exited"
    assert event.region == "us-east-2" and event.cluster == "primary-cluster"
    assert "/clusters/primary-cluster/tasks/e9511a82-9247-4239-89e9-ffd548ed9ee4/" in event.console_url


def test_an_ecs_task_event_whose_task_definition_is_not_an_arn_is_still_a_task_event() -> None:
    detail = {
        "lastStatus": "STOPPED",
        "taskArn": "arn:aws:ecs:us-west-1:123456789012:task/menotime-prod/0123456789abcdef",
        "clusterArn": "arn:aws:ecs:us-west-1:123456789012:cluster/menotime-prod",
        "taskDefinitionArn": "menotime-backend-prod:7",  # a family:revision, not an ARN
    }
    message = json.dumps(
        {"source": "aws.ecs", "detail-type": "ECS Task State Change", "region": "us-west-1", "detail": detail}
    )
    event = parse_message(None, message)
    assert (event.kind, event.state) == ("ecs_task", "STOPPED")  # not a raw "generic" post


# ------------------------------------------------------------------------------ RDS, GuardDuty, Health


def test_rds_eventbridge_form() -> None:
    event = _load("eventbridge/awsdocs-rds__RDS_DB_Instance_Event__RDS-EVENT-0087_stopped.json")
    assert event.kind == "rds" and event.key == "rds:testdb" and event.resource == "testdb"
    assert event.state == "RDS-EVENT-0087" and event.reason == "DB instance stopped"
    assert event.region == "us-east-1"
    assert event.at == datetime(2021, 3, 19, 19, 34, 9, 293000, tzinfo=UTC)
    assert event.console_url == (
        "https://us-east-1.console.aws.amazon.com/rds/home?region=us-east-1"
        "#database:id=testdb;is-cluster=false"
    )


def test_rds_event_subscription_form() -> None:
    event = _load("eventbridge/awsdocs-lambda__RDS_event_subscription_via_SNS__lambda_record.json")
    assert event.kind == "rds" and event.key == "rds:dbinstanceid" and event.resource == "dbinstanceid"
    assert event.state == "RDS-EVENT-0002" and event.reason == "Finished DB Instance backup"
    assert event.region == "eu-west-1"  # from the Identifier Link
    assert event.at == datetime(1970, 1, 1, tzinfo=UTC)


def test_dms_notification_in_the_same_shape_is_generic() -> None:
    event = _load("notify-slack/messages__dms_notification.json")
    assert event.kind == "generic" and "Replication task has stopped." in event.text


@pytest.mark.parametrize(
    ("name", "band"),
    [
        ("notify-slack/events__guardduty_finding_low.json", "low"),
        ("notify-slack/events__guardduty_finding_medium.json", "medium"),
        ("notify-slack/events__guardduty_finding_high.json", "critical"),  # severity 9
        ("notify-slack/messages__guardduty_finding.json", "critical"),
    ],
)
def test_guardduty_bands_from_fixtures(name: str, band: str) -> None:
    event = _load(name)
    assert event.kind == "guardduty" and event.severity == band and event.state == band
    assert event.key == "guardduty:123456789:sample-id-2"
    assert "fId=sample-id-2" in event.console_url


@pytest.mark.parametrize(
    ("value", "band"),
    [
        (0, "low"),
        (1.0, "low"),
        (3.9, "low"),
        (4, "medium"),
        (6.9, "medium"),
        (7, "high"),
        (8.9, "high"),
        (9, "critical"),
        (10, "critical"),
        ("5.5", "medium"),
        (None, None),
        ("x", None),
        (float("nan"), None),
    ],
)
def test_severity_band(value: Any, band: str | None) -> None:
    assert severity_band(value) == band


def test_guardduty_region_from_the_finding_arn() -> None:
    message = json.dumps(
        {
            "detail-type": "GuardDuty Finding",
            "source": "aws.guardduty",
            "region": "us-east-1",
            "time": "2026-01-01T00:00:00Z",
            "account": "111122223333",
            "detail": {
                "id": "f1",
                "severity": 7.5,
                "title": "t",
                "type": "Recon:x",
                "accountId": "111122223333",
                "arn": "arn:aws:guardduty:us-west-1:111122223333:detector/d/finding/f1",
            },
        }
    )
    event = parse_message(None, message)
    assert event.region == "us-west-1" and event.severity == "high"


def test_guardduty_malware_scan_threats_found() -> None:
    event = _load("notify-slack/messages__guardduty_malware_protection_object_scan_result.json")
    assert event.state == "THREATS_FOUND" and event.severity == "high"
    assert "EICAR" in event.reason


def test_health_event() -> None:
    event = _load("notify-slack/events__aws_health_event.json")
    assert event.kind == "health"
    assert event.key.startswith("health:arn:aws:health:us-west-2::event/")
    assert event.state == "issue" and event.region == "us-west-2"
    assert event.reason == "A description of the event will be provided here"
    assert event.resource == "i-abcd1111"
    assert event.console_url.startswith(
        "https://health.aws.amazon.com/health/home#/account/event-log?eventID="
    )


# ------------------------------------------------------------------------------ generic


def test_plain_text_is_generic_with_the_text_kept() -> None:
    event = _load("notify-slack/messages__text_message.json")
    assert event.kind == "generic" and event.title == "All Fine"
    assert event.text == "This\nis\na typical multi-line\nmessage from SNS!\n\nHave a ~good~ amazing day! :)"


def test_unknown_json_is_generic_with_the_text_kept() -> None:
    message = '{"hello": "world", "n": 1}'
    event = parse_message(None, message)
    assert event.kind == "generic" and event.text == message
    assert event.title


def test_unknown_eventbridge_event_is_generic() -> None:
    event = _load("notify-slack/messages__glue_notification.json")
    assert event.kind == "generic" and event.title == "Glue Job State Change"
    assert event.region == "us-east-2" and '"jobName": "test_job"' in event.text


def test_generic_text_is_truncated() -> None:
    event = parse_message("big", "x" * 10_000)
    assert event.kind == "generic" and len(event.text) == TEXT_LIMIT
    assert parse_message("big", "x" * 10_000).key == event.key  # the same message, the same key


def test_generic_without_subject_titles_from_the_first_line() -> None:
    event = parse_message(None, "\n  first line\nsecond")
    assert event.title == "first line"


# ------------------------------------------------------------------------------ routing


def _alarm(name: str, **extra: Any) -> Event:
    return parse_message(
        None,
        json.dumps(
            {
                "AlarmName": name,
                "NewStateValue": "ALARM",
                "OldStateValue": "OK",
                "StateChangeTime": "2026-01-02T03:04:05.000+0000",
                "AlarmArn": f"arn:aws:cloudwatch:us-west-1:111122223333:alarm:{name}",
                **extra,
            }
        ),
    )


def _ecs(cluster: str, service: str) -> Event:
    return parse_message(
        None,
        json.dumps(
            {
                "version": "0",
                "detail-type": "ECS Deployment State Change",
                "source": "aws.ecs",
                "account": "111122223333",
                "time": "2026-01-02T03:04:05Z",
                "region": "us-west-1",
                "resources": [f"arn:aws:ecs:us-west-1:111122223333:service/{cluster}/{service}"],
                "detail": {"eventType": "ERROR", "eventName": "SERVICE_DEPLOYMENT_FAILED", "reason": "r"},
            }
        ),
    )


def _rds(ident: str) -> Event:
    return parse_message(
        None,
        json.dumps(
            {
                "detail-type": "RDS DB Instance Event",
                "source": "aws.rds",
                "time": "2026-01-02T03:04:05Z",
                "region": "us-west-1",
                "account": "111122223333",
                "detail": {
                    "SourceIdentifier": ident,
                    "SourceArn": f"arn:aws:rds:us-west-1:111122223333:db:{ident}",
                    "EventID": "RDS-EVENT-0087",
                    "Message": "DB instance stopped",
                    "SourceType": "DB_INSTANCE",
                },
            }
        ),
    )


def test_route_prod_alarm_by_prefix(config: Config) -> None:
    assert route(_alarm("menotime-prod-api-5xx"), config) == ("prod", "#menotime-prod-alerts")


def test_route_dev_alarm_goes_to_the_default_channel(config: Config) -> None:
    assert config.env("dev").alerts_channel is None
    assert route(_alarm("menotime-dev-api-5xx"), config) == ("dev", config.channels.default_alerts)


def test_route_ecs_event_by_cluster(config: Config) -> None:
    assert route(_ecs("menotime-staging-cluster", "menotime-staging-service"), config) == (
        "staging",
        "#menotime-staging-alerts",
    )


def test_route_rds_exact_and_dash_prefixed(config: Config) -> None:
    assert route(_rds("menotime-staging"), config) == ("staging", "#menotime-staging-alerts")
    assert route(_rds("menotime-staging-next"), config)[0] == "staging"
    assert route(_rds("menotime-stagingx"), config) == (None, config.channels.default_alerts)


def test_route_alarm_by_dimension(config: Config) -> None:
    event = _alarm(
        "db-cpu-high",
        Trigger={
            "MetricName": "CPUUtilization",
            "Namespace": "AWS/RDS",
            "Statistic": "AVERAGE",
            "Period": 60,
            "Threshold": 80.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "Dimensions": [{"name": "DBInstanceIdentifier", "value": "menotime-prod"}],
        },
    )
    assert route(event, config) == ("prod", "#menotime-prod-alerts")


def test_route_by_topic_arn(config: Config) -> None:
    event = parse_message("hello", "plain text")
    topic = "arn:aws:sns:us-west-1:111122223333:menotime-staging-alerts"
    assert route(event, config, topic_arn=topic) == ("staging", "#menotime-staging-alerts")
    assert route(event, config, topic_arn="arn:aws:sns:us-west-1:1:menotime-production")[0] is None


def test_route_by_a_topic_configured_for_an_environment() -> None:
    from bot.config import load_config

    topic = "arn:aws:sns:us-west-1:111122223333:platform-pager"  # its name says nothing
    config = load_config(overrides={"environments": {"prod": {"alarm_topics": [topic]}}})
    assert route(_alarm("someone-elses-alarm"), config, topic_arn=topic) == ("prod", "#menotime-prod-alerts")
    assert route(_alarm("someone-elses-alarm"), config, topic_arn=topic + "-2")[0] is None


def test_route_unknown(config: Config) -> None:
    assert route(_alarm("someone-elses-alarm"), config) == (None, config.channels.default_alerts)
    assert route(parse_message(None, "hi"), config) == (None, config.channels.default_alerts)
    assert route(_load("eventbridge/awsdocs-ecs__ECS_Service_Action__SERVICE_STEADY_STATE.json"), config) == (
        None,
        config.channels.default_alerts,
    )
