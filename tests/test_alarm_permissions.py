"""Who may acknowledge or snooze an alarm (DESIGN §5 "acknowledge / snooze an alarm"): developers on
dev only; on-call, operations and release managers everywhere; seeing an alarm is not enough. The
thread's Acknowledge and Snooze buttons are the same `ack`/`snooze` lines, so they are decided alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.alarms import open_alarms, process_inbox, short_id, thread_by_short_id
from bot.buttons import BUTTONS
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import load_config
from bot.core import Core
from bot.dispatch import Dispatcher
from bot.settings import Settings
from tests.harness import RecordingNotifier
from tests.test_alarm_threads import START, alarm_message, store

USERS = {
    "developer": "U0DEV",
    "qa": "U0QA",
    "viewer": "U0VIEWER",
    "oncall": "U0ONCALL1",
    "operations": "U0OPS",
    "release_manager": "U0RELMGR",
}
ROLES = {role: {"users": [user]} for role, user in USERS.items()}
OTHER_TOPIC = "arn:aws:sns:us-west-1:123456789012:something-else"  # its name says no environment


def arn(name: str) -> str:
    return f"arn:aws:cloudwatch:us-west-1:123456789012:alarm:{name}"


@pytest.fixture
def core(database_url: str, notifier: RecordingNotifier) -> Iterator[Core]:
    core = build_core(
        Settings(database_url=database_url),
        config=load_config(overrides={"roles": ROLES}),
        clock=FrozenClock(START),
        notifier=notifier,
        migrate_schema=True,
    )
    yield core
    core.close()


def fire(core: Core, name: str, *, topic: str = OTHER_TOPIC) -> str:
    """An alarm named ``name`` goes into ALARM; its thread's short id."""
    store(core, alarm_message(name=name, arn=arn(name), state="ALARM", old="OK", at=START), topic=topic)
    process_inbox(core=core)
    return short_id(arn(name))


def say(core: Core, role: str, line: str):
    return Dispatcher(core=core).handle(user_id=USERS[role], text=line, source="test")


@pytest.mark.parametrize("verb", ["ack", "snooze"])
@pytest.mark.parametrize("role", ["developer", "qa"])
def test_developers_and_qa_may_not_ack_or_snooze_a_prod_alarm(
    core: Core, notifier: RecordingNotifier, role: str, verb: str
) -> None:
    sid = fire(core, "menotime-prod-api-5xx")
    assert thread_by_short_id(core, sid).env == "prod"
    posts, edits = len(notifier.posts), len(notifier.updates)

    reply = say(core, role, f"{verb} {sid}")
    assert reply.outcome == "denied" and reply.env == "prod"
    assert reply.result.message == (
        f"`{verb}` on prod needs the role oncall, operations, release_manager or admin; you have {role}. "
        "Ask someone with that role, or an admin to add you."
    )
    # Nothing was recorded on the thread, nor said in it.
    [thread] = open_alarms(core, env="prod")
    assert (thread.acknowledged_by, thread.acknowledged_at, thread.snoozed_by, thread.snoozed_until) == (
        None,
        None,
        None,
        None,
    )
    assert (len(notifier.posts), len(notifier.updates)) == (posts, edits)
    [entry] = [e for e in core.audit.recent() if e.verb == verb]
    assert (entry.actor, entry.env, entry.outcome, entry.rule) == (
        USERS[role],
        "prod",
        "denied",
        "matrix:acknowledge/prod",
    )


@pytest.mark.parametrize("role", ["oncall", "operations", "release_manager"])
def test_on_call_operations_and_release_managers_may_ack_a_prod_alarm(core: Core, role: str) -> None:
    sid = fire(core, "menotime-prod-api-5xx")
    assert say(core, role, f"ack {sid}").outcome == "ok"
    assert open_alarms(core, env="prod")[0].acknowledged_by == USERS[role]
    assert say(core, role, f"snooze {sid}").outcome == "ok"


def test_a_developer_may_ack_and_snooze_a_dev_alarm(core: Core, notifier: RecordingNotifier) -> None:
    sid = fire(core, "menotime-dev-api-5xx")
    assert thread_by_short_id(core, sid).env == "dev"
    acked = say(core, "developer", f"ack {sid}")
    assert acked.outcome == "ok" and acked.env == "dev"
    assert open_alarms(core, env="dev")[0].acknowledged_by == USERS["developer"]
    assert "Acknowledged by <@U0DEV>" in notifier.replies()[-1][1].headline
    assert say(core, "developer", f"snooze {sid}").outcome == "ok"
    assert open_alarms(core, env="dev")[0].snoozed_by == USERS["developer"]
    # Seeing dev's alarms is not acknowledging them.
    assert say(core, "qa", f"ack {sid}").outcome == "denied"
    assert say(core, "viewer", f"snooze {sid}").outcome == "denied"


def test_the_alarm_buttons_are_the_same_commands_and_are_refused_alike(
    core: Core, notifier: RecordingNotifier
) -> None:
    fire(core, "menotime-prod-api-5xx")
    buttons = {b.action_id: b for b in notifier.roots()[0][1].buttons}
    for action_id in ("menotime_ack", "menotime_snooze"):
        button = buttons[action_id]
        line = BUTTONS[action_id].clicked(button.value)  # what handlers/actions.py runs for the click
        assert line == button.command
        refused = Dispatcher(core=core).handle(user_id=USERS["developer"], text=line, source="slack-button")
        assert refused.outcome == "denied" and "oncall, operations, release_manager" in refused.result.message
    assert open_alarms(core, env="prod")[0].acknowledged_by is None
    assert (
        Dispatcher(core=core)
        .handle(user_id=USERS["oncall"], text=buttons["menotime_ack"].command, source="slack-button")
        .outcome
        == "ok"
    )


def test_an_unrouted_alarm_needs_acknowledge_on_every_environment(core: Core) -> None:
    # Its environment could not be told, so it may be prod's: a dev-only acknowledger may not quiet it.
    sid = fire(core, "someone-elses-alarm")
    assert thread_by_short_id(core, sid).env is None
    refused = say(core, "developer", f"snooze {sid}")
    assert refused.outcome == "denied"
    assert refused.result.message.startswith(
        "`snooze` on every environment needs the role oncall, operations, release_manager or admin"
    )
    assert open_alarms(core)[0].snoozed_by is None
    assert say(core, "oncall", f"ack {sid}").outcome == "ok"
    assert open_alarms(core)[0].acknowledged_by == USERS["oncall"]
