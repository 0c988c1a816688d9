"""The AWS gateway: lazy clients, adaptive retries, endpoint override, pagination, IAM actions."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from bot.aws import AwsGateway, gateway_from_settings
from bot.errors import AwsUnavailable
from bot.settings import Settings


def _session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-west-1"
    )


def test_clients_are_made_on_first_use_with_adaptive_retries_and_the_endpoint() -> None:
    gateway = AwsGateway(
        session=_session(), region="us-west-1", endpoint_url="http://127.0.0.1:4566", max_attempts=5
    )
    assert gateway._clients == {}  # nothing made at construction
    ecs = gateway.client("ecs")
    assert ecs.meta.endpoint_url == "http://127.0.0.1:4566"
    assert ecs.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 5}
    assert gateway.client("ecs") is ecs


def test_settings_endpoint_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    gateway = gateway_from_settings(Settings(), _session())
    assert gateway.client("rds").meta.endpoint_url == "http://127.0.0.1:5000"


def test_pagination_reads_every_page() -> None:
    with mock_aws():
        gateway = AwsGateway(session=_session(), region="us-west-1")
        for i in range(120):
            gateway.call(
                "cloudwatch",
                "put_metric_alarm",
                AlarmName=f"menotime-prod-a{i:03}",
                MetricName="m",
                Namespace="n",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1.0,
                ComparisonOperator="GreaterThanThreshold",
            )
        alarms = gateway.paginate(
            "cloudwatch", "describe_alarms", "MetricAlarms", PaginationConfig={"PageSize": 50}
        )
    assert len(alarms) == 120


def test_the_actions_used_are_recorded_as_aws_spells_them() -> None:
    with mock_aws():
        gateway = AwsGateway(session=_session(), region="us-west-1")
        gateway.call("rds", "describe_db_instances")
        gateway.paginate("ecs", "list_clusters", "clusterArns")
        with pytest.raises(gateway.client("ecs").exceptions.ClientError):
            gateway.call("ecs", "update_service", cluster="nope", service="nope", desiredCount=1)
    assert gateway.iam_actions == {"rds:DescribeDBInstances", "ecs:ListClusters", "ecs:UpdateService"}


def test_an_unreachable_endpoint_is_one_sentence() -> None:
    gateway = AwsGateway(
        session=_session(),
        region="us-west-1",
        endpoint_url="http://127.0.0.1:9",
        connect_timeout=0.5,
        read_timeout=0.5,
        max_attempts=1,
    )
    with pytest.raises(AwsUnavailable) as caught:
        gateway.call("ecs", "describe_services", cluster="c", services=["s"])
    assert caught.value.message == "AWS did not answer (ECS: could not connect); nothing was changed."


def test_missing_credentials_are_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    gateway = AwsGateway(
        session=boto3.session.Session(region_name="us-west-1"),
        region="us-west-1",
        endpoint_url="http://127.0.0.1:9",
        max_attempts=1,
    )
    with pytest.raises(AwsUnavailable, match="no AWS credentials are configured"):
        gateway.call("rds", "describe_db_instances")
