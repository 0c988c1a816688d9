"""Alarms into Slack threads (DESIGN §6 step 4), on SQLite and PostgreSQL: SNS envelopes stored in
the inbox, then ``process_inbox`` posts roots, threads replies and edits the root in place."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from bot.alarms import open_alarms, process_inbox, short_id
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import load_config
from bot.core import Core
from bot.dispatch import Dispatcher
from bot.fakes.fixture_files import ALARM_FIXTURE
from bot.fakes.hostile import PROD_ARN
from bot.fakes.hostile import alarm_message as make_alarm_message
from bot.notify import MessageRef
from bot.render import render_text
from bot.settings import Settings
from bot.sns import SnsMessage
from bot.store.inbox import Inbox
from bot.store.models import SnsInboxMessage
from tests.harness import RecordingNotifier

FIXTURE = ALARM_FIXTURE
PROD_TOPIC = "arn:aws:sns:us-west-1:123456789012:menotime-prod-alarms"
START = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture
def alarm_core(database_url: str, notifier: RecordingNotifier) -> Core:
    core = build_core(
        Settings(database_url=database_url),
        config=load_config(),
        clock=FrozenClock(START),
        notifier=notifier,
        migrate_schema=True,
    )
    yield core
    core.close()


# The shared alarm Message (bot/fakes/hostile.py), made from this module's fixture.
alarm_message = partial(make_alarm_message, FIXTURE)


def store(
    core: Core,
    message: str,
    *,
    subject: str | None = None,
    topic: str = PROD_TOPIC,
    message_id: str | None = None,
) -> bool:
    envelope = {
        "Type": "Notification",
        "MessageId": message_id or f"msg-{next(_ids)}",
        "TopicArn": topic,
        "Message": message,
        "Timestamp": core.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "SignatureVersion": "1",
        "Signature": "sig",
        "SigningCertURL": "https://sns.us-west-1.amazonaws.com/cert.pem",
    }
    if subject is not None:
        envelope["Subject"] = subject
    msg = SnsMessage(
        type="Notification",
        message_id=envelope["MessageId"],
        topic_arn=topic,
        subject=subject,
        message=message,
        timestamp=core.clock.now(),
        signature_version="1",
        signature="sig",
        signing_cert_url=envelope["SigningCertURL"],
        subscribe_url=None,
        token=None,
        raw=envelope,
    )
    stored = Inbox(core.db).store(msg=msg, source="http", received_at=core.clock.now())
    assert stored or message_id is not None  # only a deliberate redelivery may be a duplicate
    return stored


def outcomes(core: Core) -> list[str | None]:
    with core.db.session(write=False) as session:
        return [row.outcome for row in session.query(SnsInboxMessage).order_by(SnsInboxMessage.id)]


def test_an_alarm_opens_a_thread_and_its_recovery_replies_in_it(
    alarm_core: Core, notifier: RecordingNotifier
) -> None:
    clock: FrozenClock = alarm_core.clock  # type: ignore[assignment]
    store(
        alarm_core, alarm_message(state="ALARM", old="OK", at=START), subject='ALARM: "menotime-prod-api-5xx"'
    )
    assert process_inbox(core=alarm_core) == 1

    assert len(notifier.posts) == 1
    channel, root, thread, _ref = notifier.posts[0]
    assert (channel, thread) == ("#menotime-prod-alerts", None)
    assert root.headline == "ALARM — menotime-prod-api-5xx" and root.emoji == ":red_circle:"
    facts = dict(root.facts)
    assert (
        facts["State"] == "ALARM"
        and facts["Threshold"] == "≥ 1"
        and "IExecutionFailureHook" in facts["Metric"]
    )
    assert "PST" in facts["Time"] and "(18:00 UTC)" in facts["Time"] and facts["Region"] == "us-west-1"
    assert [(b.label, b.action_id, b.value) for b in root.buttons] == [
        ("Acknowledge", "menotime_ack", short_id(PROD_ARN)),
        ("Snooze 1 h", "menotime_snooze", short_id(PROD_ARN)),
        ("Runbook", "menotime_runbook", short_id(PROD_ARN)),
    ]
    assert root.buttons[-1].url == "https://runbooks.menotime.internal/prod"
    assert len(short_id(PROD_ARN)) == 12
    assert "console.aws.amazon.com/cloudwatch" in root.footer
    assert [a.key for a in open_alarms(alarm_core)] == [PROD_ARN]
    assert [a.key for a in open_alarms(alarm_core, env="prod")] == [PROD_ARN]
    assert open_alarms(alarm_core, env="staging") == []

    clock.advance(minutes=17, seconds=20)
    store(alarm_core, alarm_message(state="OK", old="ALARM", at=START + timedelta(minutes=17)))
    assert process_inbox(core=alarm_core) == 1
    replies = notifier.replies()
    assert len(replies) == 1 and len(notifier.roots()) == 1
    channel, reply, thread, _ref = replies[0]
    assert channel == "#menotime-prod-alerts" and thread == MessageRef("#menotime-prod-alerts", "1.0")
    assert "resolved after 17 min" in render_text(reply) and reply.emoji == ":large_green_circle:"
    ref, updated = notifier.updates[-1]
    assert ref == MessageRef("#menotime-prod-alerts", "1.0")
    assert (
        updated.headline.startswith("OK — menotime-prod-api-5xx")
        and "resolved after 17 min" in updated.headline
    )
    assert updated.emoji == ":large_green_circle:"
    assert open_alarms(alarm_core) == []

    # The same OK again (a redelivery under a new MessageId, or a re-evaluation): no new reply.
    clock.advance(minutes=1)
    store(alarm_core, alarm_message(state="OK", old="ALARM", at=START + timedelta(minutes=17)))
    updates_before = len(notifier.updates)
    assert process_inbox(core=alarm_core) == 1
    assert len(notifier.replies()) == 1 and len(notifier.roots()) == 1
    assert len(notifier.updates) == updates_before + 1
    assert notifier.updates[-1][1].emoji == ":large_green_circle:"
    assert "resolved after 17 min" in notifier.updates[-1][1].headline  # the refresh keeps it

    # Back into ALARM: a reply "ALARM again", and the root is red again.
    clock.advance(minutes=5)
    store(alarm_core, alarm_message(state="ALARM", old="OK", at=START + timedelta(minutes=23)))
    assert process_inbox(core=alarm_core) == 1
    assert notifier.replies()[-1][1].headline == "ALARM again"
    assert notifier.updates[-1][1].emoji == ":red_circle:"
    assert [a.key for a in open_alarms(alarm_core)] == [PROD_ARN]
    assert outcomes(alarm_core) == ["posted", "threaded", "refreshed", "threaded"]
    assert Inbox(alarm_core.db).pending() == []


@pytest.mark.parametrize(("minutes", "label"), [(30, "Snooze 30 min"), (90, "Snooze 1 h 30 min")])
def test_the_snooze_button_says_how_long_the_configured_snooze_is(
    database_url: str, notifier: RecordingNotifier, minutes: int, label: str
) -> None:
    core = build_core(
        Settings(database_url=database_url),
        config=load_config(overrides={"alarms": {"snooze_minutes": minutes}}),
        clock=FrozenClock(START),
        notifier=notifier,
        migrate_schema=True,
    )
    store(core, alarm_message(state="ALARM", old="OK", at=START))
    assert process_inbox(core=core) == 1
    [(_, root, _, _)] = notifier.posts
    assert [b.label for b in root.buttons if b.action_id == "menotime_snooze"] == [label]
    core.close()


def test_a_generic_message_gets_its_own_post_in_the_default_channel(
    alarm_core: Core, notifier: RecordingNotifier
) -> None:
    topic = "arn:aws:sns:us-west-1:123456789012:something-else"
    store(alarm_core, "Backup job 42 finished with warnings", subject="AWS Backup notification", topic=topic)
    store(alarm_core, "Backup job 42 finished with warnings", subject="AWS Backup notification", topic=topic)
    assert process_inbox(core=alarm_core) == 2
    assert [(c, t) for c, _, t, _ in notifier.posts] == [("#menotime-ops", None), ("#menotime-ops", None)]
    result = notifier.posts[0][1]
    assert result.headline == "AWS Backup notification" and result.emoji == ":information_source:"
    assert "Backup job 42 finished with warnings" in render_text(result)
    assert result.buttons == ()
    assert outcomes(alarm_core) == ["posted", "posted"]
    assert open_alarms(alarm_core) == []


@pytest.mark.parametrize("failure", [True, "raise"])
def test_a_failed_post_leaves_the_message_pending_and_a_later_run_posts_it_once(
    alarm_core: Core, notifier: RecordingNotifier, failure: bool | str
) -> None:
    store(alarm_core, alarm_message(state="ALARM", old="OK", at=START))
    store(alarm_core, alarm_message(state="OK", old="ALARM", at=START + timedelta(minutes=17)))
    notifier.fail = failure
    assert process_inbox(core=alarm_core) == 0
    assert len(Inbox(alarm_core.db).pending()) == 2
    assert notifier.posts == [] and open_alarms(alarm_core) == []

    notifier.fail = False
    assert process_inbox(core=alarm_core) == 2
    assert len(notifier.roots()) == 1 and len(notifier.replies()) == 1
    assert "resolved after 17 min" in notifier.replies()[0][1].headline
    assert process_inbox(core=alarm_core) == 0
    assert len(notifier.posts) == 2
    assert outcomes(alarm_core) == ["posted", "threaded"]


def test_a_failed_reply_is_retried_without_a_second_root(
    alarm_core: Core, notifier: RecordingNotifier
) -> None:
    store(alarm_core, alarm_message(state="ALARM", old="OK", at=START))
    assert process_inbox(core=alarm_core) == 1
    store(alarm_core, alarm_message(state="OK", old="ALARM", at=START + timedelta(minutes=17)))
    notifier.fail = True
    assert process_inbox(core=alarm_core) == 0
    assert [a.state for a in open_alarms(alarm_core)] == ["ALARM"]  # nothing recorded
    notifier.fail = False
    assert process_inbox(core=alarm_core) == 1
    assert len(notifier.roots()) == 1 and len(notifier.replies()) == 1


def test_open_alarms_lists_only_the_alarms_in_alarm(alarm_core: Core, notifier: RecordingNotifier) -> None:
    staging_arn = "arn:aws:cloudwatch:us-west-1:123456789012:alarm:menotime-staging-cpu"
    store(alarm_core, alarm_message(state="ALARM", old="OK", at=START))
    store(
        alarm_core,
        alarm_message(name="menotime-staging-cpu", state="ALARM", old="OK", at=START, arn=staging_arn),
    )
    store(
        alarm_core,
        alarm_message(
            name="menotime-staging-disk",
            state="OK",
            old="ALARM",
            at=START,
            arn="arn:aws:cloudwatch:us-west-1:123456789012:alarm:menotime-staging-disk",
        ),
    )
    store(alarm_core, "plain text", subject="hello")
    assert process_inbox(core=alarm_core) == 4
    assert sorted(a.key for a in open_alarms(alarm_core)) == sorted([PROD_ARN, staging_arn])
    staging = open_alarms(alarm_core, env="staging")
    assert [(a.key, a.channel, a.state, a.env) for a in staging] == [
        (staging_arn, "#menotime-staging-alerts", "ALARM", "staging")
    ]
    assert staging[0].since == START and staging[0].short_id == short_id(staging_arn)
    # The OK-only staging alarm started a thread too, without an open alarm.
    assert notifier.roots()[2][1].headline == "OK — menotime-staging-disk"


def test_a_late_older_notification_does_not_rewind_the_thread(
    alarm_core: Core, notifier: RecordingNotifier
) -> None:
    store(alarm_core, alarm_message(state="OK", old="ALARM", at=START + timedelta(minutes=17)))
    store(alarm_core, alarm_message(state="ALARM", old="OK", at=START))
    assert process_inbox(core=alarm_core) == 2
    assert len(notifier.posts) == 1 and notifier.updates == []
    assert outcomes(alarm_core) == ["posted", "stale"]
    assert open_alarms(alarm_core) == []


def test_the_alarms_verb_lists_open_threads_the_user_may_see(alarm_core: Core) -> None:
    from moto import mock_aws

    from bot.aws import AwsGateway
    from bot.render import render_slack, render_text
    from tests.conftest import REGION, moto_session

    store(alarm_core, alarm_message(state="ALARM", old="OK", at=START))
    process_inbox(core=alarm_core)
    config = load_config(overrides={"roles": {"oncall": {"users": ["U0ONCALL1"]}}})
    with mock_aws():
        # `alarms` reads CloudWatch too: there, the alarm of the thread is in ALARM as well.
        aws = AwsGateway(session=moto_session(), region=REGION)
        aws.call(
            "cloudwatch",
            "put_metric_alarm",
            AlarmName="menotime-prod-api-5xx",
            Namespace="AWS/ApplicationELB",
            MetricName="HTTPCode_Target_5XX_Count",
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        aws.call(
            "cloudwatch",
            "set_alarm_state",
            AlarmName="menotime-prod-api-5xx",
            StateValue="ALARM",
            StateReason="Threshold Crossed",
        )
        core = build_core(
            Settings(database_url=alarm_core.settings.database_url),
            config=config,
            clock=FrozenClock(START),
            aws=aws,
        )

        def say(user: str, line: str):
            return Dispatcher(core=core).handle(user_id=user, text=line, source="test")

        everything = say("U0ONCALL1", "alarms")
        assert "1 alarm in ALARM" in render_text(
            everything.result
        )  # the thread and CloudWatch's alarm are one
        assert "menotime-prod-api-5xx" in render_text(everything.result)
        assert "thread in #menotime-prod-alerts" in str(render_slack(everything.result))
        assert "No alarms in ALARM for dev" in render_text(say("U0ONCALL1", "alarms dev").result)
        assert say("U0NOBODY", "alarms").outcome == "denied"
        core.close()


def test_acknowledge_records_who_once_in_the_thread(alarm_core: Core, notifier: RecordingNotifier) -> None:
    store(alarm_core, alarm_message(state="ALARM", old="OK", at=START))
    process_inbox(core=alarm_core)
    config = load_config(overrides={"roles": {"oncall": {"users": ["U0ONCALL1", "U0ONCALL2"]}}})
    core = build_core(
        Settings(database_url=alarm_core.settings.database_url),
        config=config,
        clock=FrozenClock(START + timedelta(minutes=3)),
        notifier=notifier,
    )
    [root] = notifier.roots()
    button = root[1].buttons[0]
    assert button.action_id == "menotime_ack"

    def say(user: str, line: str):
        return Dispatcher(core=core).handle(user_id=user, text=line, source="test")

    assert say("U0NOBODY", button.command).outcome == "denied"
    assert say("U0ONCALL1", button.command).outcome == "ok"
    [reply] = notifier.replies()
    assert "Acknowledged by <@U0ONCALL1>" in reply[1].headline and reply[2] is not None  # in the thread
    again = say("U0ONCALL2", button.command)
    assert "already acknowledged by <@U0ONCALL1>" in again.result.message
    assert "There is no alarm thread" in say("U0ONCALL1", "ack ffffffffffff").result.message
    assert open_alarms(core)[0].acknowledged_by == "U0ONCALL1"
    core.close()


def test_an_alarm_with_a_long_name_gets_its_thread_and_does_not_block_the_inbox(
    alarm_core: Core, notifier: RecordingNotifier
) -> None:
    """CloudWatch allows 255-character alarm names, so an AlarmArn can pass the thread key's 300
    characters: on PostgreSQL that row failed on every run, and every alarm after it waited forever."""
    name = "menotime-prod-" + "x" * 240
    arn = f"arn:aws:cloudwatch:us-west-1:123456789012:alarm:{name}"
    store(alarm_core, alarm_message(name=name, arn=arn, state="ALARM", old="OK", at=START))
    store(alarm_core, alarm_message(state="ALARM", old="OK", at=START))
    assert process_inbox(core=alarm_core) == 2
    alarm_core.clock.advance(minutes=5)  # type: ignore[attr-defined]
    store(
        alarm_core,
        alarm_message(name=name, arn=arn, state="OK", old="ALARM", at=START + timedelta(minutes=5)),
    )
    assert process_inbox(core=alarm_core) == 1
    assert len(notifier.roots()) == 2 and len(notifier.replies()) == 1  # the OK found the long alarm's thread
    assert [a.title for a in open_alarms(alarm_core)] == ["menotime-prod-api-5xx"]
