"""The status operation over moto (in-process), and its Slack and text rendering."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from moto import mock_aws

from bot.aws import AwsGateway
from bot.config import Config
from bot.errors import AwsUnavailable
from bot.render import mrkdwn_escape, render_slack, render_text
from bot.simulator import SeedReport, seed_environments, set_rollout
from bot.status import (
    AlarmSummary,
    DeploySummary,
    EnvStatus,
    ScalingStatus,
    ServiceStatus,
    StatusResult,
    env_status,
    image_tag,
    status,
)
from tests.blockkit import assert_valid_message
from tests.conftest import REGION, Platform, moto_session

AT = datetime(2026, 11, 25, 18, 46, tzinfo=UTC)


def _check_slack_limits(message: dict[str, Any]) -> None:
    assert_valid_message(message)  # the suite's shared Block Kit limits
    assert all(block for block in message["blocks"])  # optional blocks rendered as null were dropped


# -- reading AWS ---------------------------------------------------------------------------


class TestSeededPlatform:
    """Read-only checks sharing one seeded simulator."""

    def test_prod_shows_what_the_seed_runs(self, platform: Platform, config: Config) -> None:
        aws, seeded = platform
        prod = env_status(env=config.env("prod"), aws=aws)

        assert prod.service_problem is None and prod.service is not None
        assert prod.service.desired == 2
        assert prod.service.running == 2 and prod.service.pending == 0
        assert prod.service.task_family == "menotime-backend-prod"
        newest = int(seeded.env("prod").task_definition_arns[-1].rsplit(":", 1)[1])
        assert prod.service.revision == newest >= 3
        assert prod.service.image_tag == "v1.5.0"
        assert prod.service.image is not None and prod.service.image.endswith("/menotime-backend:v1.5.0")
        assert prod.service.rollout_state == "COMPLETED"
        assert prod.scaling == ScalingStatus(autoscaled=True, min=2, max=4)
        assert prod.scaling.label == "autoscaling 2–4"
        assert prod.database is not None and prod.database_problem is None
        assert (prod.database.instance_class, prod.database.storage_gb, prod.database.engine) == (
            "db.m7g.large",
            1000,
            "postgres",
        )
        assert prod.database.status == "available"
        assert [a.name for a in prod.alarms] == ["menotime-prod-api-5xx"]
        assert prod.alarms[0].since.tzinfo is not None
        assert prod.health == "failing"
        assert prod.attention[0] == "1 alarm in ALARM"

    def test_dev_is_manual_and_runs_develop(self, platform: Platform, config: Config) -> None:
        aws, _ = platform
        dev = env_status(env=config.env("dev"), aws=aws)

        assert dev.service is not None and dev.service.image_tag == "develop"
        assert (dev.service.running, dev.service.desired) == (1, 1)
        assert dev.scaling == ScalingStatus(autoscaled=False, min=1, max=2)
        assert dev.scaling.label == "manual 1–2"
        assert dev.database is not None and dev.database.storage_gb == 100
        assert dev.alarms == ()
        assert dev.health == "ok" and dev.attention == ()

    def test_status_answers_in_the_order_asked(self, platform: Platform, config: Config) -> None:
        aws, _ = platform
        deploy = DeploySummary(
            who="U0RELMGR", image_tag="v1.5.0", revision=3, finished_at=AT, outcome="succeeded"
        )
        envs = [config.env("prod"), config.env("dev"), config.env("staging")]

        result = status(envs=envs, aws=aws, asked_by="U0ONCALL1", at=AT, last_deploys={"prod": deploy})

        assert [e.env for e in result.envs] == ["prod", "dev", "staging"]
        assert result.envs[0].last_deploy == deploy
        assert result.envs[1].last_deploy is None
        assert result.envs[2].service is not None and result.envs[2].service.image_tag == "main"
        assert (result.asked_by, result.at) == ("U0ONCALL1", AT)
        assert StatusResult.template == "status" and StatusResult.audience == "in_channel"

    def test_alarms_are_filtered_to_the_env_and_to_alarm_state(
        self, platform: Platform, config: Config
    ) -> None:
        aws, _ = platform
        # moto ignores StateValue when AlarmNamePrefix is given: OK alarms come back and must be dropped.
        staging = env_status(env=config.env("staging"), aws=aws)
        assert staging.alarms == ()

    def test_render_slack_and_text(self, platform: Platform, config: Config) -> None:
        aws, _ = platform
        deploy = DeploySummary(
            who="U0RELMGR", image_tag="v1.5.0", revision=3, finished_at=AT, outcome="succeeded"
        )
        result = status(
            envs=list(config.environments.values()),
            aws=aws,
            asked_by="U0ONCALL1",
            at=AT,
            last_deploys={"prod": deploy},
        )

        slack = render_slack(result)
        _check_slack_limits(slack)
        flat = json.dumps(slack, ensure_ascii=False)
        assert "v1.5.0" in flat and "develop" in flat and "`menotime-prod-api-5xx`" in flat
        assert ":red_circle: *prod*" in flat and ":large_green_circle: *dev*" in flat
        assert "autoscaling 2–4" in flat and "manual 1–2" in flat
        assert "db.m7g.large · 1000 GB" in flat
        assert "by <@U0RELMGR>" in flat and "none seen" in flat
        assert (
            slack["blocks"][-1]["elements"][0]["text"]
            == "asked by <@U0ONCALL1> at 2026-11-25 10:46 PST (18:46 UTC)"
        )

        text = render_text(result)
        assert "2 running / 2 desired / 0 pending" in text
        assert "1 running / 1 desired / 0 pending" in text
        assert "menotime-backend-prod:3, image v1.5.0" in text
        assert "menotime-prod-api-5xx" in text and "none seen" in text
        assert "{" not in text  # no template leftovers


# -- what goes wrong -------------------------------------------------------------------------


def test_a_deleted_service_is_a_sentence_not_an_exception(
    aws: AwsGateway, config: Config, seeded: SeedReport
) -> None:
    prod = config.env("prod")
    aws.client("ecs").delete_service(cluster=prod.cluster, service=prod.service, force=True)

    result = env_status(env=prod, aws=aws)

    assert result.service is None
    assert result.service_problem is not None
    assert (
        "menotime-prod-service" in result.service_problem
        and "menotime-prod-cluster" in result.service_problem
    )
    assert result.database is not None  # the rest of the environment is still reported
    assert result.health == "failing"


def test_missing_service_cluster_and_database_are_named(
    aws: AwsGateway, config: Config, seeded: SeedReport
) -> None:
    prod = config.env("prod")
    no_service = prod.model_copy(update={"service": "menotime-prod-nope"})
    no_cluster = prod.model_copy(update={"cluster": "menotime-prod-gone"})
    aws.client("rds").delete_db_instance(DBInstanceIdentifier=prod.rds_instance, SkipFinalSnapshot=True)

    assert env_status(env=no_service, aws=aws).service_problem == (
        "service menotime-prod-nope not found in cluster menotime-prod-cluster"
    )
    assert env_status(env=no_cluster, aws=aws).service_problem == "cluster menotime-prod-gone not found"
    gone = env_status(env=prod, aws=aws)
    assert gone.database is None
    assert gone.database_problem == "database instance menotime-prod not found"


def test_missing_scalable_target_falls_back_to_configured_bounds(
    aws: AwsGateway, config: Config, seeded: SeedReport
) -> None:
    prod = config.env("prod")
    aws.client("application-autoscaling").deregister_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=f"service/{prod.cluster}/{prod.service}",
        ScalableDimension="ecs:service:DesiredCount",
    )

    scaling = env_status(env=prod, aws=aws).scaling

    assert (scaling.autoscaled, scaling.min, scaling.max) == (False, 2, 4)
    assert scaling.problem is not None and "no scalable target" in scaling.problem


def test_rollouts_in_progress_and_failed(aws: AwsGateway, config: Config, seeded: SeedReport) -> None:
    staging = config.env("staging")
    older = seeded.env("staging").task_definition_arns[0]
    aws.client("ecs").update_service(cluster=staging.cluster, service=staging.service, taskDefinition=older)
    set_rollout(region=REGION, cluster=staging.cluster, service=staging.service, state="IN_PROGRESS")

    moving = env_status(env=staging, aws=aws)
    assert moving.service is not None
    assert (moving.service.rollout_state, moving.service.deployments) == ("IN_PROGRESS", 2)
    assert moving.service.image_tag == "PR-41"
    assert moving.health == "degraded"

    set_rollout(region=REGION, cluster=staging.cluster, service=staging.service, state="FAILED")
    failed = env_status(env=staging, aws=aws)
    assert failed.service is not None and failed.service.rollout_state == "FAILED"
    assert failed.service.rollout_reason and "circuit breaker" in failed.service.rollout_reason
    assert failed.service.events[0].message.endswith("tasks failed to start.")
    assert failed.health == "failing"
    assert ":red_circle:" in json.dumps(render_slack(StatusResult(envs=(failed,), asked_by="U1", at=AT)))


def test_status_shows_the_image_a_deploy_would_change_and_never_guesses_among_sidecars(
    aws: AwsGateway, config: Config, seeded: SeedReport
) -> None:
    """The same rule as deploys: with a sidecar listed first and both essential, status does not show
    the sidecar's image as the app's; naming the app container (app_container) shows it."""
    staging = config.env("staging")
    app = "123456789012.dkr.ecr.us-west-1.amazonaws.com/menotime-backend:v2.0.0"
    arn = aws.call(
        "ecs",
        "register_task_definition",
        family="menotime-backend-staging",
        containerDefinitions=[
            {"name": "envoy", "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29", "essential": True},
            {"name": "app", "image": app, "essential": True},
        ],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )["taskDefinition"]["taskDefinitionArn"]
    aws.client("ecs").update_service(cluster=staging.cluster, service=staging.service, taskDefinition=arn)

    unnamed = env_status(env=staging, aws=aws).service
    assert unnamed is not None and (unnamed.image, unnamed.image_tag) == (None, None)
    named = env_status(env=staging.model_copy(update={"app_container": "app"}), aws=aws).service
    assert named is not None and (named.image, named.image_tag) == (app, "v2.0.0")


def test_unreachable_aws_raises_aws_unavailable(config: Config) -> None:
    nowhere = AwsGateway(
        session=moto_session(),
        region=REGION,
        endpoint_url="http://127.0.0.1:9",
        connect_timeout=0.5,
        read_timeout=0.5,
        max_attempts=1,
    )
    with pytest.raises(AwsUnavailable) as raised:
        status(
            envs=[config.env("prod"), config.env("dev")], aws=nowhere, asked_by="U1", at=AT, last_deploys={}
        )
    assert raised.value.message.startswith("AWS did not answer")


class _PagedAlarms:
    """A gateway answering describe_alarms in two pages, with a composite alarm (moto has none)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def call(self, service: str, operation: str, /, **params: Any) -> dict[str, Any]:
        assert (service, operation) == ("cloudwatch", "describe_alarms")
        self.calls.append(params)
        alarm = {"StateValue": "ALARM", "StateReason": "r", "StateUpdatedTimestamp": AT}
        if "NextToken" not in params:
            return {"MetricAlarms": [{**alarm, "AlarmName": "menotime-prod-a"}], "NextToken": "page-2"}
        return {"CompositeAlarms": [{**alarm, "AlarmName": "menotime-prod-composite"}]}


def test_alarm_pages_and_composite_alarms_are_all_read(config: Config) -> None:
    from bot.status.aws_reads import _alarms_in_alarm as _alarms

    fake = _PagedAlarms()
    alarms = _alarms(env=config.env("prod"), aws=fake)  # type: ignore[arg-type]

    assert {a.name for a in alarms} == {"menotime-prod-a", "menotime-prod-composite"}
    assert fake.calls[0]["AlarmTypes"] == ["MetricAlarm", "CompositeAlarm"]
    assert fake.calls[0]["StateValue"] == "ALARM" and fake.calls[0]["AlarmNamePrefix"] == "menotime-prod-"
    assert fake.calls[1]["NextToken"] == "page-2"


def test_markup_in_cloudwatch_alarm_text_is_inert_in_status(config: Config) -> None:
    """Anyone who can create an alarm can write its name and reason: neither pings anybody."""
    from bot.status.aws_reads import _alarms_in_alarm as _alarms

    class Hostile(_PagedAlarms):
        def call(self, service: str, operation: str, /, **params: Any) -> dict[str, Any]:
            alarm = {
                "StateValue": "ALARM",
                "StateUpdatedTimestamp": AT,
                "AlarmName": "menotime-prod-<@U123ABC>-<!channel>",
                "StateReason": "paging <!here>",
            }
            return {"MetricAlarms": [alarm]}

    [alarm] = _alarms(env=config.env("prod"), aws=Hostile())  # type: ignore[arg-type]
    result = StatusResult(envs=(_env("prod", alarms=(alarm,)),), asked_by="U0ONCALL1", at=AT)
    flat = json.dumps(render_slack(result), ensure_ascii=False)
    for markup in ("<!channel>", "<@U123ABC>", "<!here>"):
        assert markup not in flat
    assert "U123ABC" in flat and "<@U0ONCALL1>" in flat  # readable, and the bot's own mention stays live


def test_markup_in_ecs_service_events_and_rollout_reasons_is_inert(config: Config) -> None:
    """ECS quotes names anyone with console access chooses: its events never ping on-call."""
    from bot.ecs.deployments import _deployments, _events
    from bot.status.aws_reads import _service

    svc = {
        "status": "ACTIVE",
        "runningCount": 1,
        "desiredCount": 1,
        "pendingCount": 0,
        "taskDefinition": "",
        "deployments": [
            {
                "id": "ecs-svc/1",
                "status": "PRIMARY",
                "rolloutState": "FAILED",
                "rolloutStateReason": "task <@U123ABC> failed",
                "createdAt": AT,
            }
        ],
        "events": [{"createdAt": AT, "message": "(service x) <@U123ABC> has reached a steady state."}],
    }

    class Ecs:
        def call(self, service: str, operation: str, /, **params: Any) -> dict[str, Any]:
            return {"services": [svc]}

    found, _ = _service(env=config.env("prod"), aws=Ecs())  # type: ignore[arg-type]
    assert found is not None
    texts = [
        found.rollout_reason or "",
        *(e.message for e in found.events),
        *(d.rollout_reason or "" for d in _deployments(svc)),
        *(e.message for e in _events(svc)),
    ]
    shown = json.dumps([mrkdwn_escape(t) for t in texts], ensure_ascii=False)
    assert "<@U123ABC>" not in shown and "<!here>" not in shown
    assert len(texts) == 4 and all("U123ABC" in t for t in texts)


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("123456789012.dkr.ecr.us-west-1.amazonaws.com/menotime-backend:v1.5.0", "v1.5.0"),
        ("menotime-backend:feature-login", "feature-login"),
        ("registry.local:5000/menotime-backend", None),
        ("registry.local:5000/menotime-backend:main", "main"),
        ("123456789012.dkr.ecr.us-west-1.amazonaws.com/menotime-backend@sha256:" + "a" * 64, None),
        ("123456789012.dkr.ecr.us-west-1.amazonaws.com/menotime-backend:v1.6.0@sha256:" + "a" * 64, "v1.6.0"),
    ],
)
def test_image_tag(image: str, tag: str | None) -> None:
    assert image_tag(image) == tag


# -- rendering --------------------------------------------------------------------------------


def _env(name: str, **changes: Any) -> EnvStatus:
    base = EnvStatus(
        env=name,
        service=ServiceStatus(
            running=2,
            desired=2,
            pending=0,
            task_family=f"menotime-backend-{name}",
            revision=7,
            image=f"repo/menotime-backend:{name}-tag",
            image_tag=f"{name}-tag",
            rollout_state="COMPLETED",
            rollout_reason=None,
            deployments=1,
            events=(),
        ),
        service_problem=None,
        scaling=ScalingStatus(autoscaled=False, min=1, max=2),
        database=None,
        database_problem=f"database instance menotime-{name} not found",
        alarms=(),
        last_deploy=None,
    )
    return EnvStatus(**{**base.__dict__, **changes})


def test_many_alarms_are_capped_and_markup_is_escaped() -> None:
    alarms = tuple(
        AlarmSummary(name=f"menotime-prod-<!channel>-{i}", reason="<b>", since=AT) for i in range(8)
    )
    result = StatusResult(envs=(_env("prod", alarms=alarms),), asked_by="U1", at=AT)

    slack = render_slack(result)
    _check_slack_limits(slack)
    flat = json.dumps(slack)
    assert "and 3 more" in flat
    assert "<!channel>" not in flat and "&lt;!channel&gt;" in flat
    assert "and 3 more" in render_text(result)


def test_many_environments_stay_within_slacks_block_limit() -> None:
    result = StatusResult(envs=tuple(_env(f"env{i}") for i in range(14)), asked_by="U1", at=AT)

    slack = render_slack(result)
    _check_slack_limits(slack)
    assert "5 more environments" in json.dumps(slack)
    assert "env13" in render_text(result)  # the console has no such limit


def test_service_problem_renders_in_place_of_tasks() -> None:
    env = _env("prod", service=None, service_problem="service menotime-prod-service not found in cluster x")
    result = StatusResult(envs=(env,), asked_by="U1", at=AT)

    flat = json.dumps(render_slack(result))
    assert ":red_circle:" in flat and "not found in cluster x" in flat
    assert "service menotime-prod-service not found in cluster x" in render_text(result)


def test_refused_scaling_and_alarm_reads_are_sentences_not_crashes(config: Config) -> None:
    """AccessDenied on a part of status (a missing IAM permission) names that part; the rest shows."""
    from botocore.exceptions import ClientError

    class Refusing:
        def __init__(self, inner: AwsGateway) -> None:
            self.inner = inner

        def call(self, service: str, operation: str, /, **params: Any) -> dict[str, Any]:
            if service == "cloudwatch":
                raise ClientError(
                    {"Error": {"Code": "AccessDenied", "Message": "arn:aws:iam::1:role/x"}}, operation
                )
            return self.inner.call(service, operation, **params)

        def paginate(self, service: str, operation: str, key: str, /, **params: Any) -> list[Any]:
            if service == "application-autoscaling":
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, operation)
            return self.inner.paginate(service, operation, key, **params)

    with mock_aws():
        aws = AwsGateway(session=moto_session(), region=REGION)
        seed_environments(aws, config)
        result = env_status(env=config.env("prod"), aws=Refusing(aws))
    assert result.service is not None and result.service.image_tag == "v1.5.0"
    assert result.alarms_problem == "could not read the alarms: AWS answered AccessDenied"
    assert result.scaling.problem.startswith("could not read the scaling target: AWS answered AccessDenied")
    shown = render_text(StatusResult(envs=(result,), asked_by="U0X", at=AT))
    assert "AccessDenied" in shown and "arn:aws:iam" not in shown
