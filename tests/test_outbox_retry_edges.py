"""The outbox's retry rules at their edges, against the fake Slack Web API (SQLite and PostgreSQL):
how long a failed message waits, when Slack's refusal is final, and that one failure holds back
only its own channel's queue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import update

from bot.answers import ChangeResult
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import load_config
from bot.core import Core
from bot.fakes.slack_api import FakeSlack
from bot.metrics import Metrics
from bot.outbox import DEAD, PENDING, SENT, Outbox, OutboxNotifier, OutboxSender, SendOutcome
from bot.outbox.retry import _retry_after
from bot.settings import Settings
from bot.store.models import OutboxMessage
from tests.test_alarm_threads import START


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def core(database_url: str) -> Iterator[Core]:
    clock = FrozenClock(START)
    core = build_core(
        Settings(database_url=database_url),
        config=load_config(),
        clock=clock,
        metrics=Metrics(),
        migrate_schema=True,
    )
    core.notifier = OutboxNotifier(Outbox(core.db, clock))
    yield core
    core.close()


def _sender(core: Core, base_url: str) -> OutboxSender:
    client = WebClient(token="xoxb-test", base_url=base_url, timeout=5)
    return OutboxSender(db=core.db, client=client, clock=core.clock, metrics=core.metrics)


def _post(core: Core, text: str, channel: str = "#menotime-ops") -> None:
    core.notifier.post(channel=channel, result=ChangeResult(headline=text))


def _wait(core: Core, out: OutboxSender) -> float:
    """Seconds until the message may be sent again; the clock is moved there."""
    clock: FrozenClock = core.clock  # type: ignore[assignment]
    due = out.next_due()
    assert due is not None
    seconds = (due - clock.now()).total_seconds()
    clock.advance(seconds=seconds)
    return seconds


def _sent_texts(slack: FakeSlack) -> list[str]:
    return [c.params["text"] for c in slack.calls_to("chat.postMessage") if c.response.get("ok")]


def test_a_failing_message_waits_twice_as_long_each_time_up_to_five_minutes(
    core: Core, slack: FakeSlack
) -> None:
    _post(core, "through an outage")
    slack.fail_next("chat.postMessage", status=500, times=12)
    out = _sender(core, slack.api_url)

    waits = []
    for _ in range(12):
        outcome = out.send_due()
        assert (outcome.sent, outcome.waiting) == (0, 1)
        waits.append(_wait(core, out))
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]

    assert out.send_due().sent == 1
    [row] = Outbox(core.db, core.clock).rows()
    # Twelve failures and the send: thirteen attempts, the last error cleared, Slack's ts kept.
    assert (row.status, row.attempts, row.last_error) == (SENT, 13, None)
    assert row.ts == slack.calls_to("chat.postMessage")[-1].response["ts"]
    assert _sent_texts(slack) == ["through an outage"]


def test_a_permanent_refusal_is_final_on_the_fifth_attempt_and_not_before(
    core: Core, slack: FakeSlack
) -> None:
    _post(core, "fourth time lucky")
    slack.fail_next("chat.postMessage", error="channel_not_found", times=4)
    out = _sender(core, slack.api_url)
    for _ in range(4):
        assert out.send_due().sent == 0
        _wait(core, out)
    assert out.send_due().sent == 1
    assert [r.status for r in Outbox(core.db, core.clock).rows()] == [SENT]

    _post(core, "never taken")
    slack.fail_next("chat.postMessage", error="channel_not_found", times=5)
    for _ in range(4):
        out.send_due()
        _wait(core, out)
    out.send_due()
    dead = Outbox(core.db, core.clock).rows(status=DEAD)
    assert [(r.attempts, r.last_error) for r in dead] == [(5, "channel_not_found")]
    assert out.next_due() is None  # set aside: never tried again
    assert _sent_texts(slack) == ["fourth time lucky"]


def test_a_retry_after_of_zero_still_waits_a_second(core: Core, slack: FakeSlack) -> None:
    _post(core, "at once?")
    slack.fail_next("chat.postMessage", status=429, retry_after=0)
    out = _sender(core, slack.api_url)
    assert out.send_due().sent == 0
    assert _wait(core, out) == 1
    [row] = Outbox(core.db, core.clock).rows()
    assert (row.attempts, row.last_error) == (0, "ratelimited")
    assert out.send_due().sent == 1


def test_retry_after_in_any_form_slack_may_send_it() -> None:
    # A header given as a list (as some HTTP stacks hand them over) counts by its first value.
    assert _retry_after({"Retry-After": ["12", "99"]}) == 12.0
    assert _retry_after({"Retry-After": []}) == 30.0
    assert _retry_after({"Retry-After": ""}) == 30.0
    assert _retry_after({"Retry-After": "soon"}) == 30.0
    assert _retry_after({"Retry-After": "0.2"}) == 1.0
    assert _retry_after({"Retry-After": "-5"}) == 1.0
    assert _retry_after({"Retry-After": "3600"}) == 3600.0
    assert _retry_after({"Retry-After": "2.5"}) == 2.5
    assert _retry_after({"X-Other": "5", "retry-after": "9"}) == 9.0
    assert _retry_after(None) == 30.0


def test_slack_unreachable_is_retried_after_a_second_and_names_the_failure(
    core: Core, slack: FakeSlack
) -> None:
    _post(core, "while the network is down")
    down = _sender(core, "http://127.0.0.1:9/api/")  # nothing listens on the discard port
    assert down.send_due().sent == 0
    [row] = Outbox(core.db, core.clock).rows()
    assert row.status == PENDING and row.attempts == 1
    assert row.last_error == "URLError"
    assert (row.claimed_by, row.claimed_until) == (None, None)  # another sender may take it
    assert _wait(core, down) == 1
    assert _sender(core, slack.api_url).send_due().sent == 1
    assert _sent_texts(slack) == ["while the network is down"]


def test_a_long_error_is_kept_cut_to_its_column(core: Core, slack: FakeSlack) -> None:
    _post(core, "odd error")
    slack.fail_next("chat.postMessage", error="e" * 300)
    out = _sender(core, slack.api_url)
    out.send_due()
    [row] = Outbox(core.db, core.clock).rows()
    assert row.last_error == "e" * 200 and row.status == PENDING


def test_a_failure_holds_back_its_own_channel_only_and_for_no_longer_than_its_retry(
    core: Core, slack: FakeSlack
) -> None:
    _post(core, "a1", channel="#a")
    _post(core, "a2", channel="#a")
    _post(core, "a3", channel="#a")
    _post(core, "b1", channel="#b")
    slack.fail_next("chat.postMessage", status=500)
    out = _sender(core, slack.api_url)

    outcome = out.send_due()
    assert (outcome.sent, outcome.waiting) == (1, 1)  # b1 went; a1 waits its retry (a2, a3 behind it)
    assert _sent_texts(slack) == ["b1"]
    assert _wait(core, out) == 1
    # a2 and a3 were released with a1's failure: they follow a1 now, not when a claim would run out.
    assert out.send_due().sent == 3
    assert _sent_texts(slack) == ["b1", "a1", "a2", "a3"]


def test_a_round_takes_no_new_channel_once_its_limit_is_reached(core: Core, slack: FakeSlack) -> None:
    for text in ("m1", "m2", "m3"):
        _post(core, text, channel=f"#{text}")  # three channels: three batches of one
    out = _sender(core, slack.api_url)
    assert out.send_due(limit=2).sent == 2
    assert _sent_texts(slack) == ["m1", "m2"]
    assert out.send_due().sent == 1
    assert _sent_texts(slack) == ["m1", "m2", "m3"]
    sent = Outbox(core.db, core.clock).rows()
    assert all(r.sent_at is not None and r.status == SENT for r in sent)
    answered = [c.response["channel"] for c in slack.calls_to("chat.postMessage")]
    assert [r.sent_channel for r in sent] == answered


def test_a_reply_to_a_message_set_aside_is_set_aside_too_saying_why_and_the_channel_moves_on(
    core: Core, slack: FakeSlack
) -> None:
    root = core.notifier.post(channel="#gone", result=ChangeResult(headline="never taken"))
    core.notifier.post(channel="#gone", result=ChangeResult(headline="its reply"), thread=root)
    _post(core, "the next one", channel="#gone")
    slack.fail_next("chat.postMessage", error="channel_not_found", times=5)
    out = _sender(core, slack.api_url)
    for _ in range(4):
        out.send_due()
        _wait(core, out)

    # The root is set aside; its reply can never be threaded under it: set aside at once, not sent
    # unthreaded, not counted as sent, and the message behind them goes out.
    assert out.send_due().sent == 1
    root_row, reply_row, next_row = Outbox(core.db, core.clock).rows()
    assert (root_row.status, root_row.last_error) == (DEAD, "channel_not_found")
    assert (reply_row.status, reply_row.attempts, reply_row.last_error) == (
        DEAD,
        1,
        f"the message it refers to (outbox {root_row.id}) was never sent",
    )
    assert next_row.status == SENT
    assert _sent_texts(slack) == ["the next one"]
    assert len(slack.calls_to("chat.postMessage")) == 6  # five refusals of the root, then the next one
    assert out.next_due() is None


class _SlowSlack:
    """A Slack client stand-in: records each post's text; ``during`` runs inside the first post
    (the time a slow Slack takes), and an exception it raises is that post's failure."""

    def __init__(self, during: Callable[[], None] | None = None) -> None:
        self.during = during
        self.texts: list[str] = []

    def chat_postMessage(self, **args: Any) -> Any:
        self.texts.append(args["text"])
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return SimpleNamespace(data={"ok": True, "channel": "C1", "ts": f"{len(self.texts)}.0"})


def _claimed_elsewhere(core: Core, text: str) -> None:
    """Another replica claims the queued message ``text`` (as it may once our claim has run out)."""
    [row_id] = [r.id for r in Outbox(core.db, core.clock).rows() if r.payload["text"] == text]
    with core.db.session() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(claimed_by="replica-b", claimed_until=core.clock.now() + timedelta(seconds=60))
        )


def test_a_sender_whose_claim_ran_out_during_a_slow_post_leaves_the_rest_to_the_replica_that_took_them(
    core: Core,
) -> None:
    clock: FrozenClock = core.clock  # type: ignore[assignment]
    _post(core, "m0", channel="#c")
    _post(core, "m1", channel="#c")

    def slow_post() -> None:
        clock.advance(seconds=61)  # longer than the claim: another replica takes m1 meanwhile
        _claimed_elsewhere(core, "m1")

    slack = _SlowSlack(during=slow_post)
    out = OutboxSender(db=core.db, client=slack, clock=clock)
    assert out.send_due() == SendOutcome(sent=1, waiting=0)
    assert slack.texts == ["m0"]  # m1 is the other replica's to send: not sent a second time here
    m0, m1 = Outbox(core.db, core.clock).rows()
    assert (m0.status, m1.status, m1.claimed_by) == (SENT, PENDING, "replica-b")

    clock.advance(seconds=61)  # that replica never sent it: once its claim runs out, m1 goes
    assert out.send_due() == SendOutcome(sent=1, waiting=0)
    assert slack.texts == ["m0", "m1"]


def test_a_sender_whose_claim_ran_out_records_no_failure_over_the_replica_now_sending_it(core: Core) -> None:
    clock: FrozenClock = core.clock  # type: ignore[assignment]
    _post(core, "m0", channel="#c")

    def stalls_then_fails() -> None:
        clock.advance(seconds=61)
        _claimed_elsewhere(core, "m0")  # another replica took it over and is sending it now
        raise ConnectionError("connection reset")

    out = OutboxSender(db=core.db, client=_SlowSlack(during=stalls_then_fails), clock=clock)
    assert out.send_due().sent == 0
    [row] = Outbox(core.db, core.clock).rows()
    # Our late failure changes nothing: the row stays the other replica's, with no error and no retry.
    assert (row.status, row.claimed_by, row.attempts, row.last_error) == (PENDING, "replica-b", 0, None)

    clock.advance(seconds=1)  # when our retry would have been due, a third sender must not send it too
    third = _SlowSlack()
    assert OutboxSender(db=core.db, client=third, clock=clock).send_due().sent == 0
    assert third.texts == []


class _Answering:
    """A Slack client stand-in whose posts are answered with ``answer`` (Slack names the channel by its
    id, not by the name it was posted to); records each call as (method, arguments)."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)  # one per post, the last one again for the posts after
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def chat_postMessage(self, **args: Any) -> Any:
        self.calls.append(("chat.postMessage", args))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return SimpleNamespace(data=dict(answer))

    def chat_update(self, **args: Any) -> Any:
        self.calls.append(("chat.update", args))
        return SimpleNamespace(data={"ok": True, "channel": args["channel"], "ts": args["ts"]})


def _drained(core: Core, slack: _Answering) -> OutboxSender:
    out = OutboxSender(db=core.db, client=slack, clock=core.clock, metrics=core.metrics)
    while out.send_due().sent:
        pass
    return out


def test_a_message_is_replied_to_and_edited_in_the_channel_and_at_the_ts_slack_answered(core: Core) -> None:
    root = core.notifier.post(channel="#menotime-prod-alerts", result=ChangeResult(headline="root"))
    assert root is not None
    core.notifier.post(channel="#menotime-prod-alerts", result=ChangeResult(headline="reply"), thread=root)
    core.notifier.update(ref=root, result=ChangeResult(headline="root, edited"))
    slack = _Answering({"ok": True, "channel": "C0PROD", "ts": "1764000000.000100"})
    _drained(core, slack)
    assert [(method, a["channel"], a.get("thread_ts"), a.get("ts")) for method, a in slack.calls] == [
        ("chat.postMessage", "#menotime-prod-alerts", None, None),
        ("chat.postMessage", "C0PROD", "1764000000.000100", None),
        ("chat.update", "C0PROD", None, "1764000000.000100"),
    ]


def test_a_reply_slack_answered_without_its_channel_is_edited_in_its_threads_channel(core: Core) -> None:
    root = core.notifier.post(channel="#menotime-ops", result=ChangeResult(headline="root"))
    assert root is not None
    reply = core.notifier.post(channel="#menotime-ops", result=ChangeResult(headline="reply"), thread=root)
    assert reply is not None
    core.notifier.update(ref=reply, result=ChangeResult(headline="reply, edited"))
    slack = _Answering({"ok": True, "channel": "C0OPS", "ts": "1.0"}, {"ok": True, "ts": "2.0"})
    _drained(core, slack)
    assert [(method, a["channel"], a.get("ts")) for method, a in slack.calls] == [
        ("chat.postMessage", "#menotime-ops", None),
        ("chat.postMessage", "C0OPS", None),
        ("chat.update", "C0OPS", "2.0"),
    ]


def test_a_reply_to_a_post_slack_acknowledged_without_a_ts_is_set_aside_saying_why(core: Core) -> None:
    root = core.notifier.post(channel="#menotime-ops", result=ChangeResult(headline="root"))
    assert root is not None
    core.notifier.post(channel="#menotime-ops", result=ChangeResult(headline="reply"), thread=root)
    slack = _Answering({"ok": True})  # no channel, no ts: nothing to thread under
    _drained(core, slack)
    assert [method for method, _ in slack.calls] == ["chat.postMessage"]
    first, reply = Outbox(core.db, core.clock).rows()
    assert (first.status, first.sent_channel) == (SENT, "#menotime-ops")
    assert (reply.status, reply.last_error) == (
        DEAD,
        f"the message it refers to (outbox {first.id}) was never sent",
    )


def _alarm_latency(core: Core) -> tuple[float, float]:
    """(posts observed, their seconds in total) of the SNS-Timestamp-to-Slack-post histogram."""
    [family] = core.metrics.alarm_latency.collect()
    values = {
        s.name.rsplit("_", 1)[-1]: s.value for s in family.samples if s.name.endswith(("_count", "_sum"))
    }
    return values["count"], values["sum"]


def test_only_an_alarm_post_is_timed_from_its_sns_timestamp_and_a_clock_ahead_counts_as_zero(
    core: Core,
) -> None:
    now = core.clock.now()
    root = core.notifier.post(
        channel="#menotime-prod-alerts",
        result=ChangeResult(headline="ALARM"),
        origin_at=now - timedelta(seconds=0.25),
    )
    assert root is not None
    core.notifier.post(channel="#menotime-ops", result=ChangeResult(headline="a change, not an alarm"))
    core.notifier.update(ref=root, result=ChangeResult(headline="ALARM, acknowledged"))
    _drained(core, _Answering({"ok": True, "channel": "C0PROD", "ts": "1.0"}))
    assert _alarm_latency(core) == (1, 0.25)
    # SNS's clock a little ahead of ours: never a negative latency.
    core.notifier.post(
        channel="#menotime-prod-alerts",
        result=ChangeResult(headline="ALARM"),
        origin_at=now + timedelta(seconds=3),
    )
    _drained(core, _Answering({"ok": True, "channel": "C0PROD", "ts": "2.0"}))
    assert _alarm_latency(core) == (2, 0.25)
