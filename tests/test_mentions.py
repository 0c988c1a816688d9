"""Only mentions the bot itself inserts are live (issue 12, item 7).

Text from outside — an alarm's name, description and reason as AWS delivers them, a lock reason
typed in Slack — may hold Slack markup: ``<@U…>``, ``<@W…>``, ``<#C…>``, ``<!here>``,
``<!everyone>``, ``<!channel>``, ``<!subteam^…>``, links. It reaches Slack readable but inert, while
the bot's own "Acknowledged: <@U…>" and "locked by <@U…>" stay live. Alarms go the real way: an SNS
envelope in the inbox, ``process_inbox``, the notifier; commands through the service.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.alarms import process_inbox, short_id
from bot.core import Core
from bot.fakes.hostile import HOSTILE
from bot.render import inert, mrkdwn_escape, render_slack, render_text
from tests.harness import RecordingNotifier
from tests.test_alarm_followups import arn, core, say  # noqa: F401 - fixtures shared with those tests
from tests.test_alarm_threads import START, alarm_message, store

ONCALL = "U0ONCALL1"  # on-call in tests.test_alarm_followups' roles


def _slack_text(result: Any) -> str:
    """Every string of the message Slack would receive, as Slack reads it (no JSON escaping)."""
    return json.dumps(render_slack(result), ensure_ascii=False)


def _assert_inert(text: str) -> None:
    for markup in HOSTILE:
        assert markup not in text, f"{markup} would be live in {text[:300]}"
    assert "U123ABC" in text  # neutralised, not removed: on-call still reads what was written


def test_markup_in_an_alarm_is_posted_inert_while_the_bots_acknowledgement_mentions(
    core: Core, notifier: RecordingNotifier
) -> None:
    name = "menotime-prod-api-5xx"
    message = json.loads(alarm_message(name=name, arn=arn(name), state="ALARM", old="OK", at=START))
    message["AlarmDescription"] = "Page " + " ".join(HOSTILE) + " now"
    message["NewStateReason"] = "Threshold Crossed <@U123ABC>"
    # AWS may spell "<" as \u003c in the JSON it delivers: decoded, it is the same markup.
    store(
        core,
        json.dumps(message).replace("Threshold Crossed <", "Threshold Crossed \\u003c"),
        subject="ALARM: <!channel> <@U123ABC>",
    )
    process_inbox(core=core)
    [(_, root, _, _)] = notifier.roots()
    _assert_inert(_slack_text(root))

    assert say(core, ONCALL, f"ack {short_id(arn(name))}").outcome == "ok"
    redrawn = notifier.updates[-1][1]
    posted = _slack_text(redrawn)
    assert f"<@{ONCALL}>" in posted  # the bot's own mention is live
    _assert_inert(posted)
    [(_, reply, _, _)] = notifier.replies()  # "Acknowledged by <@U0ONCALL1>" in the thread
    assert f"Acknowledged by <@{ONCALL}>" in _slack_text(reply)


def test_markup_in_a_lock_reason_is_inert_in_the_bots_lock_message(
    core: Core, notifier: RecordingNotifier
) -> None:
    reason = "failover, ask " + " ".join(HOSTILE)
    locked = say(core, ONCALL, f"lock prod '{reason}'")
    assert locked.outcome == "ok", render_text(locked.result)
    posted = _slack_text(locked.result)
    assert f"locked by <@{ONCALL}>" in posted
    _assert_inert(posted)
    for _channel, result, _thread, _ref in notifier.posts:
        _assert_inert(_slack_text(result))

    unlocked = say(core, ONCALL, "unlock prod")
    posted = _slack_text(unlocked.result)
    assert f"unlocked by <@{ONCALL}>" in posted and f"locked by <@{ONCALL}>" in posted
    _assert_inert(posted)


@pytest.mark.parametrize("markup", HOSTILE)
def test_inert_text_never_renders_as_markup_and_reads_the_same(markup: str) -> None:
    shown = mrkdwn_escape(inert(f"see {markup}"))
    assert "<" not in shown  # nothing Slack would read as markup
    assert (
        shown.replace("\u2060", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        == f"see {markup}"
    )
    assert inert(inert(markup)) == inert(markup)
