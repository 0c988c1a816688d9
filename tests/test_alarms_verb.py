"""`/menotime alarms [env]`: every alarm in ALARM, CloudWatch's and the bot's threads merged, over
moto (in-process) seeded as the simulator seeds it (prod's `menotime-prod-api-5xx` in ALARM)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bot.alarms import process_inbox, short_id
from bot.alarms.listing import cloudwatch_in_alarm, env_order
from bot.answers import ChangeResult
from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import Config, load_config
from bot.core import Core
from bot.dispatch import Dispatcher
from bot.errors import AwsUnavailable
from bot.notify import MessageRef
from bot.render import render_slack, render_text
from bot.settings import Settings
from bot.simulator import alarm_notification
from bot.status import StatusResult
from tests.blockkit import assert_valid_message
from tests.conftest import REGION
from tests.test_alarm_threads import store

START = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
PROD_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:menotime-prod-alarms"
DEV_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:menotime-dev-alarms"
ONCALL, DEV, OTHER_ONCALL = "U0ONCALL1", "U0DEV", "U0ONCALL2"
# On-call sees every environment's alarms, a developer only dev's.
OVERRIDES: dict[str, Any] = {
    "roles": {"oncall": {"users": [ONCALL, OTHER_ONCALL]}, "developer": {"users": [DEV]}},
    "permissions": {"alarms": {"dev": ["developer", "oncall"], "staging": ["oncall"], "prod": ["oncall"]}},
    "environments": {"prod": {"alarm_topics": [PROD_TOPIC]}},
}


def arn(name: str) -> str:
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"


class SlackIdNotifier:
    """Posts answered as Slack answers them: a channel ID and a ts, so threads get real links."""

    def __init__(self) -> None:
        self.posts = 0

    def post(
        self,
        *,
        channel: str,
        result: Any,
        thread: MessageRef | None = None,
        origin_at: datetime | None = None,
    ) -> MessageRef | None:
        self.posts += 1
        return MessageRef("C0ALERTS", f"1764007200.{self.posts:06d}")

    def update(self, *, ref: MessageRef, result: Any) -> None:
        return None


@pytest.fixture
def alarms_config() -> Config:
    return load_config(overrides=OVERRIDES)


@pytest.fixture
def core(sqlite_url: str, alarms_config: Config, aws: AwsGateway) -> Iterator[Core]:
    from bot.simulator import seed_environments

    seed_environments(aws, alarms_config)
    built = build_core(
        Settings(database_url=sqlite_url),
        config=alarms_config,
        aws=aws,
        clock=FrozenClock(START),
        notifier=SlackIdNotifier(),
        migrate_schema=True,
    )
    yield built
    built.close()


def say(core: Core, user: str, line: str) -> Any:
    return Dispatcher(core=core).handle(user_id=user, text=line, source="test")


def alarms(core: Core, user: str, line: str) -> ChangeResult:
    """The answer to ``line``, checked to render for Slack and the console."""
    reply = say(core, user, line)
    assert reply.outcome == "ok", reply.result
    result = reply.result
    assert isinstance(result, ChangeResult)
    assert_valid_message(render_slack(result))
    assert render_text(result)
    return result


def alarm_lines(result: ChangeResult) -> list[str]:
    """The one line per alarm (not the notices, not "…and N more")."""
    return [line for line in result.details if " · `" in line]


def notify(core: Core, name: str, state: str, *, minutes: float = 0, topic: str = PROD_TOPIC) -> None:
    """CloudWatch moves ``name`` to ``state`` and its notification reaches the bot."""
    at = START + timedelta(minutes=minutes)
    message = alarm_notification(core.aws, name=name, state=state, reason=f"went {state}", at=at)
    store(core, message, topic=topic)
    assert process_inbox(core=core) == 1


def set_state(core: Core, name: str, state: str) -> None:
    """CloudWatch moves ``name`` to ``state``; no notification reaches the bot."""
    time.sleep(0.005)  # moto stamps the change to the millisecond: orders by time stay unambiguous
    core.aws.call(
        "cloudwatch", "set_alarm_state", AlarmName=name, StateValue=state, StateReason=f"went {state}"
    )


# ------------------------------------------------------------------------------------------ tests


def test_an_alarm_in_alarm_without_a_thread_is_listed_with_no_thread_yet(core: Core) -> None:
    result = alarms(core, ONCALL, "alarms prod")

    assert alarm_lines(result) == [
        f"prod · `menotime-prod-api-5xx` since {_since_of(core, 'menotime-prod-api-5xx')} · no thread yet"
    ]
    assert result.headline == "1 alarm in ALARM for prod" and result.emoji == ":red_circle:"
    # `status prod` tells the same story: as many alarms in ALARM.
    status = say(core, ONCALL, "status prod").result
    assert isinstance(status, StatusResult)
    assert len(status.envs[0].alarms) == len(alarm_lines(result)) == 1
    assert "No alarms in ALARM for dev." in render_text(alarms(core, ONCALL, "alarms dev"))


def test_an_alarm_with_a_thread_links_it_and_names_who_acknowledged(core: Core) -> None:
    notify(core, "menotime-prod-api-5xx", "ALARM")
    assert say(core, ONCALL, f"ack {short_id(arn('menotime-prod-api-5xx'))}").outcome == "ok"
    notify(core, "menotime-prod-api-latency", "ALARM", minutes=1)
    assert say(core, OTHER_ONCALL, f"snooze {short_id(arn('menotime-prod-api-latency'))} 30").outcome == "ok"

    result = alarms(core, ONCALL, "alarms prod")

    # One line per alarm: CloudWatch's alarm and the bot's thread of it are the same alarm.
    assert alarm_lines(result) == [
        f"prod · `menotime-prod-api-5xx` since {_since_of(core, 'menotime-prod-api-5xx')} · "
        "<https://slack.com/archives/C0ALERTS/p1764007200000001|thread> · acknowledged by <@U0ONCALL1>",
        f"prod · `menotime-prod-api-latency` since {_since_of(core, 'menotime-prod-api-latency')} · "
        "<https://slack.com/archives/C0ALERTS/p1764007200000003|thread> · snoozed by <@U0ONCALL2> until "
        "2026-11-24 10:30 PST (18:30 UTC)",
    ]
    assert result.headline == "2 alarms in ALARM for prod"
    flat = str(render_slack(result))
    assert "<https://slack.com/archives/C0ALERTS/p1764007200000001|thread>" in flat and "<@U0ONCALL1>" in flat


def test_production_like_environments_come_first_then_the_oldest_alarm(core: Core) -> None:
    assert env_order(config=core.config) == ("prod", "staging", "dev")
    # Set newest-named first, so the order by time is not the order by name.
    set_state(core, "menotime-dev-rds-cpu-high", "ALARM")
    set_state(core, "menotime-dev-api-latency", "ALARM")
    set_state(core, "menotime-staging-ecs-cpu-high", "ALARM")

    lines = alarm_lines(alarms(core, ONCALL, "alarms"))

    assert [line.split(" · ")[:2] for line in lines] == [
        ["prod", "`menotime-prod-api-5xx` since " + _since_of(core, "menotime-prod-api-5xx")],
        [
            "staging",
            "`menotime-staging-ecs-cpu-high` since " + _since_of(core, "menotime-staging-ecs-cpu-high"),
        ],
        ["dev", "`menotime-dev-rds-cpu-high` since " + _since_of(core, "menotime-dev-rds-cpu-high")],
        ["dev", "`menotime-dev-api-latency` since " + _since_of(core, "menotime-dev-api-latency")],
    ]


def test_a_developer_sees_only_the_environments_they_may_see(core: Core) -> None:
    notify(core, "menotime-prod-api-5xx", "ALARM")  # a prod thread, beside CloudWatch's prod alarm
    set_state(core, "menotime-staging-api-5xx", "ALARM")
    notify(core, "menotime-dev-api-5xx", "ALARM", topic=DEV_TOPIC)
    set_state(core, "menotime-dev-ecs-cpu-high", "ALARM")

    result = alarms(core, DEV, "alarms")

    assert [line.split(" · ")[:2] for line in alarm_lines(result)] == [
        ["dev", "`menotime-dev-api-5xx` since " + _since_of(core, "menotime-dev-api-5xx")],
        ["dev", "`menotime-dev-ecs-cpu-high` since " + _since_of(core, "menotime-dev-ecs-cpu-high")],
    ]
    assert "prod" not in render_text(result) and "staging" not in render_text(result)
    assert say(core, DEV, "alarms prod").outcome == "denied"
    # On-call, asking the same, sees all four.
    assert [line.split(" · ")[0] for line in alarm_lines(alarms(core, ONCALL, "alarms"))] == [
        "prod",
        "staging",
        "dev",
        "dev",
    ]


def test_cloudwatch_not_answering_still_lists_the_threads_with_one_notice(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    notify(core, "menotime-prod-api-5xx", "ALARM")
    assert say(core, ONCALL, f"ack {short_id(arn('menotime-prod-api-5xx'))}").outcome == "ok"
    notify(core, "menotime-dev-api-5xx", "ALARM", minutes=2, topic=DEV_TOPIC)
    _cloudwatch_fails(core, monkeypatch, AwsUnavailable("AWS did not answer (CloudWatch: could not connect)"))

    result = alarms(core, ONCALL, "alarms")

    notices = [line for line in result.details if "CloudWatch could not be read" in line]
    assert notices == [
        "CloudWatch could not be read (AWS did not answer): only the bot's own threads are listed, "
        "as it last heard them."
    ]
    assert result.details[0] == notices[0]
    assert alarm_lines(result) == [
        "prod · `menotime-prod-api-5xx` since 2026-11-24 10:00 PST (18:00 UTC) · "
        "<https://slack.com/archives/C0ALERTS/p1764007200000001|thread> · acknowledged by <@U0ONCALL1>",
        "dev · `menotime-dev-api-5xx` since 2026-11-24 10:02 PST (18:02 UTC) · "
        "<https://slack.com/archives/C0ALERTS/p1764007200000003|thread>",
    ]
    assert result.headline == "2 alarms in ALARM for the environments you may see"


def test_cloudwatch_refusing_says_so_and_an_empty_list_is_not_all_clear(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    denied = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "arn:aws:iam::123456789012:role/x"}}, "DescribeAlarms"
    )
    _cloudwatch_fails(core, monkeypatch, denied)

    result = alarms(core, ONCALL, "alarms staging")

    assert result.emoji == ":warning:" and "CloudWatch could not be read" in result.headline
    assert result.details == (
        "CloudWatch could not be read (AWS answered AccessDenied): only the bot's own threads "
        "are listed, as it last heard them.",
    )
    assert "123456789012" not in render_text(result)


def test_a_thread_cloudwatch_no_longer_has_in_alarm_is_listed_with_cloudwatchs_state(core: Core) -> None:
    notify(
        core,
        "menotime-staging-api-latency",
        "ALARM",
        topic="arn:aws:sns:us-west-1:123456789012:menotime-staging",
    )
    set_state(core, "menotime-staging-api-latency", "OK")  # the OK notification has not arrived

    lines = alarm_lines(alarms(core, ONCALL, "alarms staging"))

    assert lines == [
        "staging · `menotime-staging-api-latency` since 2026-11-24 10:00 PST (18:00 UTC) · "
        "<https://slack.com/archives/C0ALERTS/p1764007200000001|thread> · (CloudWatch: OK)"
    ]


def test_a_refused_lookup_of_a_stale_thread_marks_only_that_thread(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy may let the bot read alarms by its prefixes but not by name: the list still stands."""
    notify(
        core,
        "menotime-staging-api-latency",
        "ALARM",
        topic="arn:aws:sns:us-west-1:123456789012:menotime-staging",
    )
    set_state(core, "menotime-staging-api-latency", "OK")
    set_state(core, "menotime-staging-ecs-cpu-high", "ALARM")
    real = core.aws.call

    def call(service: str, operation: str, /, **params: Any) -> dict[str, Any]:
        if "AlarmNames" in params:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DescribeAlarms")
        return real(service, operation, **params)

    monkeypatch.setattr(core.aws, "call", call)

    result = alarms(core, ONCALL, "alarms staging")

    assert not any("could not be read" in line for line in result.details)
    assert alarm_lines(result) == [
        "staging · `menotime-staging-api-latency` since 2026-11-24 10:00 PST (18:00 UTC) · "
        "<https://slack.com/archives/C0ALERTS/p1764007200000001|thread> · (CloudWatch: not in ALARM, state unreadable)",
        f"staging · `menotime-staging-ecs-cpu-high` since {_since_of(core, 'menotime-staging-ecs-cpu-high', real)} · "
        "no thread yet",
    ]


def test_an_alarm_whose_thread_missed_the_alarm_links_the_thread_and_says_so(core: Core) -> None:
    notify(core, "menotime-dev-api-5xx", "ALARM", topic=DEV_TOPIC)
    notify(core, "menotime-dev-api-5xx", "OK", minutes=5, topic=DEV_TOPIC)
    set_state(core, "menotime-dev-api-5xx", "ALARM")  # the ALARM notification never arrived

    lines = alarm_lines(alarms(core, ONCALL, "alarms dev"))

    assert lines == [
        f"dev · `menotime-dev-api-5xx` since {_since_of(core, 'menotime-dev-api-5xx')} · "
        "<https://slack.com/archives/C0ALERTS/p1764007200000001|thread> · (thread says OK)"
    ]


def test_an_alarm_belongs_to_the_environment_claiming_its_topic(core: Core) -> None:
    core.aws.call(
        "cloudwatch",
        "put_metric_alarm",
        AlarmName="billing-spike",
        Namespace="AWS/Billing",
        MetricName="EstimatedCharges",
        Statistic="Maximum",
        Period=21600,
        EvaluationPeriods=1,
        Threshold=1000.0,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[PROD_TOPIC],
    )
    core.aws.call(
        "cloudwatch",
        "put_metric_alarm",
        AlarmName="someone-elses",
        Namespace="AWS/Billing",
        MetricName="EstimatedCharges",
        Statistic="Maximum",
        Period=21600,
        EvaluationPeriods=1,
        Threshold=1000.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    set_state(core, "billing-spike", "ALARM")
    set_state(core, "someone-elses", "ALARM")

    everything = alarm_lines(alarms(core, ONCALL, "alarms"))

    assert [line.split(" · ")[:2] for line in everything] == [
        ["prod", "`menotime-prod-api-5xx` since " + _since_of(core, "menotime-prod-api-5xx")],
        ["prod", "`billing-spike` since " + _since_of(core, "billing-spike")],
    ]


def test_unrouted_threads_show_only_when_no_environment_is_named(core: Core) -> None:
    from tests.test_alarm_threads import alarm_message

    store(
        core,
        alarm_message(
            name="legacy-queue-depth", arn=arn("legacy-queue-depth"), state="ALARM", old="OK", at=START
        ),
        topic=f"arn:aws:sns:{REGION}:{ACCOUNT}:ops-misc",
    )
    assert process_inbox(core=core) == 1

    lines = alarm_lines(alarms(core, DEV, "alarms"))
    assert lines[-1] == (
        "unrouted · `legacy-queue-depth` since 2026-11-24 10:00 PST (18:00 UTC) · "
        "<https://slack.com/archives/C0ALERTS/p1764007200000001|thread> · "
        "(CloudWatch: no such alarm)"
    )
    assert all("legacy" not in line for line in alarm_lines(alarms(core, DEV, "alarms dev")))


def test_every_page_and_composite_alarms_are_read_by_prefix_and_claimed_topic(alarms_config: Config) -> None:
    """moto answers in one page and has no composite alarms: a gateway that does both."""
    at = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)

    class Paged:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def call(self, service: str, operation: str, /, **params: Any) -> dict[str, Any]:
            assert (service, operation) == ("cloudwatch", "describe_alarms")
            self.calls.append(params)
            alarm = {"StateValue": "ALARM", "StateUpdatedTimestamp": at + timedelta(hours=1)}
            if "ActionPrefix" in params:  # the claimed topic: an alarm of another name, and one read twice
                return {
                    "MetricAlarms": [
                        {
                            **alarm,
                            "AlarmName": "billing",
                            "AlarmArn": arn("billing"),
                            "AlarmActions": [PROD_TOPIC],
                        },
                        {**alarm, "AlarmName": "menotime-prod-a", "AlarmArn": arn("menotime-prod-a")},
                    ]
                }
            if "NextToken" not in params:
                return {
                    "MetricAlarms": [
                        {**alarm, "AlarmName": "menotime-prod-a", "AlarmArn": arn("menotime-prod-a")},
                        {
                            **alarm,
                            "AlarmName": "menotime-prod-ok",
                            "AlarmArn": arn("menotime-prod-ok"),
                            "StateValue": "OK",
                        },
                    ],
                    "NextToken": "page-2",
                }
            return {
                "CompositeAlarms": [
                    {
                        **alarm,
                        "AlarmName": "menotime-prod-composite",
                        "StateTransitionedTimestamp": at,
                        "AlarmArn": arn("menotime-prod-composite"),
                    }
                ]
            }

    fake = Paged()
    found = cloudwatch_in_alarm(aws=fake, config=alarms_config, envs=("prod",))  # type: ignore[arg-type]

    assert [(a.name, a.env, a.since) for a in found] == [
        ("menotime-prod-a", "prod", at + timedelta(hours=1)),
        ("menotime-prod-composite", "prod", at),
        ("billing", "prod", at + timedelta(hours=1)),
    ]
    assert [
        {k: v for k, v in c.items() if k in ("AlarmNamePrefix", "ActionPrefix", "NextToken")}
        for c in fake.calls
    ] == [
        {"AlarmNamePrefix": "menotime-prod-"},
        {"AlarmNamePrefix": "menotime-prod-", "NextToken": "page-2"},
        {"ActionPrefix": PROD_TOPIC},
    ]
    assert all(
        c["StateValue"] == "ALARM" and c["AlarmTypes"] == ["MetricAlarm", "CompositeAlarm"]
        for c in fake.calls
    )


def test_a_long_list_stops_short_of_slacks_limit_and_counts_the_rest(core: Core) -> None:
    for i in range(40):
        core.aws.call(
            "cloudwatch",
            "put_metric_alarm",
            AlarmName=f"menotime-dev-queue-{i:02d}-" + "x" * 60,
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=100.0,
            ComparisonOperator="GreaterThanThreshold",
        )
        set_state(core, f"menotime-dev-queue-{i:02d}-" + "x" * 60, "ALARM")

    result = alarms(core, ONCALL, "alarms dev")

    shown = alarm_lines(result)
    assert 10 < len(shown) < 40 and result.details[-1] == f"…and {40 - len(shown)} more"
    assert result.headline == "40 alarms in ALARM for dev"
    assert len("\n".join(result.details)) < 2900  # the template's cut never falls inside the list


# ------------------------------------------------------------------------------------------ helpers


def _since_of(core: Core, name: str, call: Any = None) -> str:
    from bot.render import when

    [alarm] = (call or core.aws.call)("cloudwatch", "describe_alarms", AlarmNames=[name])["MetricAlarms"]
    return when(alarm["StateUpdatedTimestamp"])


def _cloudwatch_fails(core: Core, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    real = core.aws.call

    def call(service: str, operation: str, /, **params: Any) -> dict[str, Any]:
        if service == "cloudwatch":
            raise error
        return real(service, operation, **params)

    monkeypatch.setattr(core.aws, "call", call)
