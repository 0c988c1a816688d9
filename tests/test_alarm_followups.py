"""What on-call does with an alarm thread after it opens (DESIGN §10 items 5-6): storms grouped,
flapping summarised, snooze, reminders while an acknowledged alarm stays in ALARM, and the
Roll back button on prod service alarms."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.alarms import open_alarms, process_inbox, remind_due, short_id
from bot.answers import ChangeResult
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import load_config
from bot.core import Core
from bot.dispatch import Dispatcher
from bot.settings import Settings
from bot.store import migrate
from tests.harness import RecordingNotifier
from tests.test_alarm_threads import START, alarm_message, store

ROLES = {"oncall": {"users": ["U0ONCALL1"]}, "viewer": {"users": ["U0VIEWER"]}}


@pytest.fixture
def core(database_url: str, notifier: RecordingNotifier) -> Iterator[Core]:
    config = load_config(
        overrides={
            "roles": ROLES,
            "alarms": {
                "storm_threshold": 3,
                "flap_threshold": 4,
                "flap_window_minutes": 30,
                "reminder_minutes": 30,
            },
        }
    )
    core = build_core(
        Settings(database_url=database_url),
        config=config,
        clock=FrozenClock(START),
        notifier=notifier,
        migrate_schema=True,
    )
    yield core
    core.close()


def arn(name: str) -> str:
    return f"arn:aws:cloudwatch:us-west-1:123456789012:alarm:{name}"


def fire(
    core: Core, name: str, state: str, old: str, *, minutes: float = 0, message: str | None = None
) -> None:
    at = START + timedelta(minutes=minutes)
    store(core, message or alarm_message(name=name, arn=arn(name), state=state, old=old, at=at))
    process_inbox(core=core)


def say(core: Core, user: str, line: str):
    return Dispatcher(core=core).handle(user_id=user, text=line, source="test")


def test_a_storm_becomes_one_grouped_message_that_keeps_count(
    core: Core, notifier: RecordingNotifier
) -> None:
    names = [f"menotime-prod-db-{i}" for i in range(7)]
    for name in names:
        fire(core, name, "ALARM", "OK")
    roots = notifier.roots()
    # Three threads of their own, then one storm message for the rest of that minute.
    assert [r[1].headline for r in roots[:3]] == [f"ALARM — {n}" for n in names[:3]]
    assert len(roots) == 4 and roots[3][1].headline.startswith("Alarm storm in #menotime-prod-alerts")
    storm_edits = [u for u in notifier.updates if u[1].headline.startswith("Alarm storm")]
    latest = storm_edits[-1][1]
    assert "4 alarms at once, 4 in ALARM" in latest.headline
    assert all(any(n in line for line in latest.details) for n in names[3:])
    assert len(open_alarms(core, env="prod")) == 7  # grouped or not, each is an alarm in ALARM

    # A grouped alarm's recovery is a reply in the storm's thread, and the storm message recounts.
    fire(core, names[5], "OK", "ALARM", minutes=4)
    reply = notifier.replies()[-1]
    storm_ts = f"{notifier.posts.index(roots[3]) + 1}.0"  # the recording notifier's ts for that post
    assert reply[2] is not None and reply[2].ts == storm_ts
    assert "resolved after 4 min" in reply[1].headline
    assert "3 in ALARM" in notifier.updates[-1][1].headline


def test_a_flapping_alarm_is_summarised_not_replayed(core: Core, notifier: RecordingNotifier) -> None:
    name = "menotime-prod-api-latency"
    fire(core, name, "ALARM", "OK")
    states = ["OK", "ALARM"] * 5
    for i, state in enumerate(states, start=1):
        fire(core, name, state, "ALARM" if state == "OK" else "OK", minutes=2 * i)
    replies = [r[1].headline for r in notifier.replies()]
    # Four changes are replied (the root's ALARM counts as the first), then one summary, then quiet.
    assert len(replies) == 4
    assert replies[-1].startswith("Flapping: 5 state changes in 30 min")
    assert notifier.updates[-1][1].headline.startswith(
        "ALARM — menotime-prod-api-latency"
    )  # root still current
    # Once it calms down for a window, changes are replied again.
    fire(core, name, "OK", "ALARM", minutes=2 * len(states) + 60)
    assert notifier.replies()[-1][1].headline.startswith("OK — resolved")


def test_snooze_holds_replies_and_reminders_then_they_resume(core: Core, notifier: RecordingNotifier) -> None:
    clock: FrozenClock = core.clock  # type: ignore[assignment]
    name = "menotime-prod-api-5xx"
    fire(core, name, "ALARM", "OK")
    sid = short_id(arn(name))
    assert say(core, "U0ONCALL1", f"ack {sid}").outcome == "ok"
    clock.advance(minutes=29)
    assert remind_due(core) == 0
    clock.advance(minutes=2)
    assert remind_due(core) == 1 and remind_due(core) == 0  # once per interval, however often it runs
    assert "Still in ALARM after 31 min" in notifier.replies()[-1][1].headline

    snoozed = say(core, "U0ONCALL1", f"snooze {sid}")
    assert snoozed.outcome == "ok" and "Snoozed by <@U0ONCALL1>" in notifier.replies()[-1][1].headline
    count = len(notifier.replies())
    clock.advance(minutes=45)
    assert remind_due(core) == 0
    fire(core, name, "OK", "ALARM", minutes=76)
    fire(core, name, "ALARM", "OK", minutes=80)
    assert len(notifier.replies()) == count  # held while snoozed
    assert "Snoozed" in dict(notifier.updates[-1][1].facts)  # the root says why it is quiet
    clock.advance(minutes=50)
    assert remind_due(core) == 1

    # Like ack: seeing the alarm is not enough (DESIGN §5 acknowledge / snooze: on-call, operations, release_manager).
    viewer = say(core, "U0VIEWER", f"snooze {sid}")
    assert (
        viewer.outcome == "denied" and "oncall, operations, release_manager or admin" in viewer.result.message
    )
    assert "no alarm thread" in say(core, "U0ONCALL1", "snooze ffffffffffff").result.message
    assert "between 1 and 1440" in say(core, "U0ONCALL1", f"snooze {sid} 99999").result.message


def test_prod_service_alarms_offer_a_guarded_roll_back(core: Core, notifier: RecordingNotifier) -> None:
    data = json.loads(
        alarm_message(
            name="menotime-prod-api-5xx", arn=arn("menotime-prod-api-5xx"), state="ALARM", old="OK", at=START
        )
    )
    data["Trigger"].update(
        Namespace="AWS/ApplicationELB",
        Dimensions=[{"name": "LoadBalancer", "value": "app/menotime-prod/123"}],
    )
    fire(core, "menotime-prod-api-5xx", "ALARM", "OK", message=json.dumps(data))
    root: ChangeResult = notifier.roots()[0][1]
    button = next(b for b in root.buttons if b.label == "Roll back")
    assert (button.action_id, button.value, button.command, button.style) == (
        "menotime_alarm_rollback",
        "prod",
        "rollback prod",
        "danger",
    )

    # The same alarm in staging has no such button: the seed lets on-call roll back prod any time.
    data["AlarmName"], data["AlarmArn"] = "menotime-staging-api-5xx", arn("menotime-staging-api-5xx")
    fire(core, "menotime-staging-api-5xx", "ALARM", "OK", message=json.dumps(data))
    staging: ChangeResult = notifier.roots()[1][1]
    assert "Roll back" not in [b.label for b in staging.buttons]


def test_which_environments_offer_an_incident_roll_back_is_their_rollback_setting_not_their_name(
    database_url: str, notifier: RecordingNotifier
) -> None:
    config = load_config(
        overrides={
            "roles": ROLES,
            "environments": {"staging": {"rollback": "incident"}, "prod": {"rollback": "fast"}},
        }
    )
    core = build_core(
        Settings(database_url=database_url), config=config, clock=FrozenClock(START), notifier=notifier
    )
    try:
        migrate.upgrade(core.db)
        for name in ("menotime-staging-api-5xx", "menotime-prod-api-5xx"):
            data = json.loads(alarm_message(name=name, arn=arn(name), state="ALARM", old="OK", at=START))
            data["Trigger"].update(Namespace="AWS/ApplicationELB")
            fire(core, name, "ALARM", "OK", message=json.dumps(data))
        staging, prod = (post.result for post in notifier.roots())
        assert [b.command for b in staging.buttons if b.label == "Roll back"] == ["rollback staging"]
        assert "Roll back" not in [b.label for b in prod.buttons]
    finally:
        core.close()


def test_a_new_incident_starts_unacknowledged_but_a_flap_keeps_the_acknowledgement(
    core: Core, notifier: RecordingNotifier
) -> None:
    name = "menotime-prod-api-5xx"
    sid = short_id(arn(name))
    fire(core, name, "ALARM", "OK")
    assert say(core, "U0ONCALL1", f"ack {sid}").outcome == "ok"
    fire(core, name, "OK", "ALARM", minutes=10)
    fire(core, name, "ALARM", "OK", minutes=15)  # 5 min of OK: the same incident flapping
    assert open_alarms(core)[0].acknowledged_by == "U0ONCALL1"
    fire(core, name, "OK", "ALARM", minutes=20)
    fire(core, name, "ALARM", "OK", minutes=20 + 24 * 60)  # the next day: a new incident
    [alarm] = open_alarms(core)
    assert alarm.acknowledged_by is None and alarm.snoozed_until is None
    root = notifier.updates[-1][1]
    assert "Acknowledged" not in dict(root.facts) and "Acknowledge" in [b.label for b in root.buttons]


def test_a_message_that_cannot_be_processed_is_set_aside_and_the_rest_go_on(
    core: Core, notifier: RecordingNotifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.alarms.inbox

    real = bot.alarms.inbox.record_event

    def broken_for_one(core_: Core, event, env, channel, **kw):
        if event.title == "menotime-prod-broken":
            raise KeyError("a payload shape nobody foresaw")
        return real(core_, event, env, channel, **kw)

    monkeypatch.setattr(bot.alarms.inbox, "record_event", broken_for_one)
    fire(core, "menotime-prod-broken", "ALARM", "OK")
    fire(core, "menotime-prod-after", "ALARM", "OK")
    headlines = [r[1].headline for r in notifier.roots()]
    assert headlines[0].startswith("An AWS notification could not be turned into a thread (KeyError)")
    assert notifier.roots()[0][0] == core.config.channels.default_alerts
    assert headlines[1] == "ALARM — menotime-prod-after"
    assert process_inbox(core=core) == 0  # nothing left pending, the failed one is not retried forever


def test_acknowledging_and_snoozing_redraw_the_root_at_once(core: Core, notifier: RecordingNotifier) -> None:
    name = "menotime-prod-api-5xx"
    sid = short_id(arn(name))
    fire(core, name, "ALARM", "OK")
    root_ref = notifier.roots()[0]
    edits = len(notifier.updates)
    assert say(core, "U0ONCALL1", f"ack {sid}").outcome == "ok"
    ref, redrawn = notifier.updates[-1]
    assert len(notifier.updates) == edits + 1 and ref.ts == f"{notifier.posts.index(root_ref) + 1}.0"
    assert "Acknowledge" not in [b.label for b in redrawn.buttons]
    assert dict(redrawn.facts)["Acknowledged"].startswith("<@U0ONCALL1> at")
    assert redrawn.headline == f"ALARM — {name}" and "Threshold" in dict(
        redrawn.facts
    )  # the alarm's own facts
    assert say(core, "U0ONCALL1", f"snooze {sid}").outcome == "ok"
    snoozed = notifier.updates[-1][1]
    assert "Snooze 1 h" not in [b.label for b in snoozed.buttons] and "Snoozed" in dict(snoozed.facts)
