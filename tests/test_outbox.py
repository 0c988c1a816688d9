"""The Slack outbox (DESIGN §6 step 6) against the fake Slack Web API, on SQLite and PostgreSQL:
every message written first, sent once, in per-thread order, through 500s and 429s."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.alarms import process_inbox
from bot.answers import ChangeResult
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import load_config
from bot.core import Core
from bot.fakes.slack_api import FakeSlack
from bot.metrics import Metrics
from bot.outbox import DEAD, SENT, Outbox, OutboxNotifier, OutboxSender
from bot.settings import Settings
from bot.store.models import AlarmThread
from tests.test_alarm_threads import START, alarm_message, store


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def outbox_core(database_url: str, *, storm_threshold: int = 5) -> Core:
    clock = FrozenClock(START)
    config = load_config(overrides={"alarms": {"storm_threshold": storm_threshold}})
    core = build_core(
        Settings(database_url=database_url),
        config=config,
        clock=clock,
        metrics=Metrics(),
        migrate_schema=True,
    )
    core.notifier = OutboxNotifier(Outbox(core.db, clock))
    return core


@pytest.fixture
def core(database_url: str) -> Iterator[Core]:
    core = outbox_core(database_url)
    yield core
    core.close()


def sender(core: Core, slack: FakeSlack) -> OutboxSender:
    # No retry handlers: the outbox does the retrying.
    client = WebClient(token="xoxb-test", base_url=slack.api_url, timeout=5)
    return OutboxSender(db=core.db, client=client, clock=core.clock, metrics=core.metrics)


def drain(core: Core, out: OutboxSender, *, step_seconds: float = 1.0, rounds: int = 2000) -> None:
    """Sends until nothing is pending, moving the frozen clock to each next retry."""
    clock: FrozenClock = core.clock  # type: ignore[assignment]
    for _ in range(rounds):
        out.send_due()
        due = out.next_due()
        if due is None:
            return
        clock.advance(seconds=max(step_seconds, (due - clock.now()).total_seconds()))
    raise AssertionError("the outbox never drained")


def test_an_alarm_thread_goes_out_through_the_outbox_in_order(core: Core, slack: FakeSlack) -> None:
    clock: FrozenClock = core.clock  # type: ignore[assignment]
    store(core, alarm_message(state="ALARM", old="OK", at=START))
    process_inbox(core=core)
    assert slack.calls_to("chat.postMessage") == []  # queued, not sent: Slack is not on the inbox's path
    clock.advance(minutes=17)
    store(core, alarm_message(state="OK", old="ALARM", at=START + timedelta(minutes=17)))
    process_inbox(core=core)
    assert Outbox(core.db, core.clock).depth() == 3  # root, reply, root edit

    drain(core, sender(core, slack))
    root, reply = slack.calls_to("chat.postMessage")
    assert root.params["channel"] == "#menotime-prod-alerts" and "thread_ts" not in root.params
    assert (
        reply.params["thread_ts"] == root.response["ts"] and "resolved after 17 min" in reply.params["text"]
    )
    [edit] = slack.calls_to("chat.update")
    assert edit.params["ts"] == root.response["ts"] and edit.params["channel"] == root.response["channel"]
    assert "resolved after 17 min" in edit.params["text"]
    assert Outbox(core.db, core.clock).depth() == 0
    # SNS Timestamp → Slack post, observed for the two posts (the root and the reply), not the edit.
    [family] = core.metrics.alarm_latency.collect()
    assert [s.value for s in family.samples if s.name.endswith("_count")] == [2]


def test_slack_down_then_rate_limiting_every_message_arrives_once_in_order(
    core: Core, slack: FakeSlack
) -> None:
    clock: FrozenClock = core.clock  # type: ignore[assignment]
    names = [f"menotime-prod-db-{i}" for i in range(3)] + [f"menotime-staging-api-{i}" for i in range(3)]
    for name in names:
        arn = f"arn:aws:cloudwatch:us-west-1:123456789012:alarm:{name}"
        store(core, alarm_message(name=name, arn=arn, state="ALARM", old="OK", at=START))
    clock.advance(minutes=5)
    for name in names:
        arn = f"arn:aws:cloudwatch:us-west-1:123456789012:alarm:{name}"
        store(
            core, alarm_message(name=name, arn=arn, state="OK", old="ALARM", at=START + timedelta(minutes=5))
        )
    process_inbox(core=core)

    out = sender(core, slack)
    slack.fail_next("*", status=500, times=40)  # an hour of 5xx, as far as the outbox can tell
    for _ in range(10):
        out.send_due()
        clock.advance(minutes=6)
    assert [c for c in slack.calls if c.ok] == []
    slack.fail_next("chat.postMessage", status=429, retry_after=7, times=3)
    before = clock.now()
    drain(core, out)
    assert clock.now() - before >= timedelta(seconds=7)  # Retry-After was honoured

    posts = [c for c in slack.calls_to("chat.postMessage") if c.ok]
    assert len(posts) == 12  # 6 roots + 6 replies: each once
    roots = {p.params["text"].split(" — ")[1]: p.response["ts"] for p in posts if "thread_ts" not in p.params}
    assert sorted(roots) == sorted(names)
    for reply in (p for p in posts if "thread_ts" in p.params):
        assert reply.params["thread_ts"] in roots.values()
        # Per-thread order: the reply went out after its root.
        root_index = next(i for i, p in enumerate(posts) if p.response.get("ts") == reply.params["thread_ts"])
        assert root_index < posts.index(reply)
    assert len([c for c in slack.calls_to("chat.update") if c.ok]) == 6
    assert {row.status for row in Outbox(core.db, core.clock).rows()} == {SENT}


def test_a_429_waits_exactly_its_retry_after_and_not_an_ordinary_backoff(
    core: Core, slack: FakeSlack
) -> None:
    clock: FrozenClock = core.clock  # type: ignore[assignment]
    core.notifier.post(channel="#menotime-ops", result=ChangeResult(headline="rate limited"))
    slack.fail_next("chat.postMessage", status=429, retry_after=30)
    out = sender(core, slack)
    refused_at = clock.now()

    outcome = out.send_due()

    assert (outcome.sent, outcome.waiting) == (0, 1)
    assert [c.answered_status for c in slack.calls_to("chat.postMessage")] == [429]
    [row] = Outbox(core.db, core.clock).rows()
    # Slack's 30 s, not the 1 s backoff of a first failure; and a 429 is not counted as a failed attempt.
    assert out.next_due() == refused_at + timedelta(seconds=30)
    assert (row.attempts, row.last_error) == (0, "ratelimited")

    clock.advance(seconds=29)
    assert out.send_due().sent == 0  # not before Retry-After
    assert len(slack.calls_to("chat.postMessage")) == 1

    clock.advance(seconds=1)
    assert out.send_due().sent == 1
    assert [c.answered_status for c in slack.calls_to("chat.postMessage")] == [429, 200]
    assert [r.status for r in Outbox(core.db, core.clock).rows()] == [SENT]


def test_a_message_slack_will_never_take_is_set_aside_and_the_channel_moves_on(
    core: Core, slack: FakeSlack
) -> None:
    notifier = core.notifier
    first = notifier.post(channel="#gone", result=ChangeResult(headline="to an archived channel"))
    notifier.post(channel="#gone", result=ChangeResult(headline="the next one"))
    assert first is not None
    slack.fail_next("chat.postMessage", error="channel_not_found", times=5)
    drain(core, sender(core, slack))
    statuses = [row.status for row in Outbox(core.db, core.clock).rows()]
    assert statuses == [DEAD, SENT]
    assert [c.params["text"] for c in slack.calls_to("chat.postMessage") if c.response.get("ok")] == [
        "the next one"
    ]


def test_two_senders_never_send_a_message_twice(database_url: str, slack: FakeSlack) -> None:
    core = outbox_core(database_url)
    other = outbox_core(database_url)
    try:
        for i in range(30):
            core.notifier.post(channel=f"#c{i % 3}", result=ChangeResult(headline=f"message {i}"))
        senders = [sender(core, slack), sender(other, slack)]
        threads = [threading.Thread(target=s.send_due) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        texts = [c.params["text"] for c in slack.calls_to("chat.postMessage")]
        assert sorted(texts) == sorted(f"message {i}" for i in range(30))
        for channel in ("#c0", "#c1", "#c2"):
            sent = [
                int(c.params["text"].split()[1])
                for c in slack.calls_to("chat.postMessage")
                if c.params["channel"] == channel
            ]
            assert sent == sorted(sent)  # per-channel order kept across senders
    finally:
        core.close()
        other.close()


@pytest.mark.postgres
def test_200_alarms_delivered_three_times_concurrently_are_each_processed_once(postgres_server: str) -> None:
    from tests.conftest import _reset_postgres

    _reset_postgres(postgres_server)
    replicas = [outbox_core(postgres_server, storm_threshold=1000) for _ in range(2)]
    core = replicas[0]
    try:
        messages = []
        for i in range(200):
            name = f"menotime-prod-load-{i}"
            messages.append(
                alarm_message(
                    name=name,
                    arn=f"arn:aws:cloudwatch:us-west-1:123456789012:alarm:{name}",
                    state="ALARM",
                    old="OK",
                    at=START,
                )
            )
        ids = [f"dup-{i}" for i in range(200)]

        def deliver(copy: int) -> None:
            for message_id, message in zip(ids, messages, strict=True):
                store(replicas[copy % 2], message, message_id=message_id)

        workers = [threading.Thread(target=deliver, args=(n,)) for n in range(3)]
        workers += [
            threading.Thread(target=process_inbox, kwargs={"core": r, "limit": 1000}) for r in replicas
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        while process_inbox(core=core, limit=1000):
            pass
        with core.db.session(write=False) as session:
            assert session.query(AlarmThread).count() == 200
        posts = [r for r in Outbox(core.db, core.clock).rows() if r.op == "post"]
        assert len(posts) == 200
    finally:
        for r in replicas:
            r.close()


def test_the_sender_is_woken_only_once_the_queued_message_is_committed(core: Core, database_url: str) -> None:
    """process_inbox queues inside its transaction: a poke before the commit wakes a sender that
    cannot see the row yet (PostgreSQL does not block the reader) and then sleeps its idle interval."""
    from bot.store.db import Database

    elsewhere = Database(database_url)  # another connection, like the sender's
    seen: list[int] = []
    core.notifier.on_enqueue = lambda: seen.append(Outbox(elsewhere, core.clock).depth())
    try:
        store(core, alarm_message(state="ALARM", old="OK", at=START))
        assert process_inbox(core=core) == 1
        assert seen and all(depth >= 1 for depth in seen)  # every wake-up finds the message there
        core.notifier.post(channel="#c", result=ChangeResult(headline="outside a transaction"))
        assert seen[-1] == 2
    finally:
        elsewhere.dispose()


def test_a_slow_batch_keeps_its_claim_so_another_sender_never_sends_its_rows_again(database_url: str) -> None:
    """A batch is claimed for a minute; when Slack is slow the sender works through it for longer.
    The claim must be held on the way, or a second replica takes the rest and both send them."""
    from types import SimpleNamespace

    core = outbox_core(database_url)
    other = outbox_core(database_url)
    clock: FrozenClock = core.clock  # type: ignore[assignment]
    sent: list[tuple[str, str]] = []

    class SlowSlack:
        def __init__(self, name: str, on_call: Any = None) -> None:
            self.name, self.on_call, self.calls = name, on_call, 0

        def chat_postMessage(self, **args: Any) -> Any:
            self.calls += 1
            sent.append((self.name, args["text"]))
            if self.on_call:
                self.on_call()
            return SimpleNamespace(data={"ok": True, "channel": "C1", "ts": f"{len(sent)}.0"})

    try:
        for i in range(4):
            core.notifier.post(channel="#c", result=ChangeResult(headline=f"message {i}"))
        second = OutboxSender(db=other.db, client=SlowSlack("B"), clock=clock)

        def slow_call() -> None:
            clock.advance(seconds=40)  # each post takes 40 s; meanwhile the other replica looks
            second.send_due()

        first = OutboxSender(db=core.db, client=SlowSlack("A", slow_call), clock=clock)
        first.send_due()
        second.send_due()
        texts = [text for _who, text in sent]
        assert sorted(texts) == [f"message {i}" for i in range(4)]  # each once
        assert texts == sorted(texts)  # and in order
    finally:
        core.close()
        other.close()


def test_consecutive_edits_of_one_message_are_sent_as_one_with_the_latest_content(
    core: Core, slack: FakeSlack
) -> None:
    notifier = core.notifier
    ref = notifier.post(channel="#menotime-prod-alerts", result=ChangeResult(headline="storm: 1 alarm"))
    assert ref is not None
    for n in range(2, 30):
        notifier.update(ref=ref, result=ChangeResult(headline=f"storm: {n} alarms"))
    reply = notifier.post(
        channel="#menotime-prod-alerts", result=ChangeResult(headline="a reply"), thread=ref
    )
    notifier.update(
        ref=ref, result=ChangeResult(headline="storm: 30 alarms")
    )  # after the reply: its own edit
    assert reply is not None and Outbox(core.db, core.clock).depth() == 4
    drain(core, sender(core, slack))
    assert [c.params["text"] for c in slack.calls_to("chat.update")] == [
        "storm: 29 alarms",
        "storm: 30 alarms",
    ]
    assert [c.params["text"] for c in slack.calls_to("chat.postMessage")] == ["storm: 1 alarm", "a reply"]


def test_token_errors_keep_the_queue_and_a_bounded_retry_after(core: Core, slack: FakeSlack) -> None:
    from bot.outbox.retry import _retry_after

    core.notifier.post(channel="#menotime-ops", result=ChangeResult(headline="kept"))
    slack.fail_next("chat.postMessage", error="invalid_auth", times=8)
    drain(core, sender(core, slack))
    assert [row.status for row in Outbox(core.db, core.clock).rows()] == [
        SENT
    ]  # retried until the token worked
    assert _retry_after({"retry-after": "inf"}) == 30.0 and _retry_after({"Retry-After": "99999"}) == 3600.0
    assert _retry_after({"RETRY-AFTER": "7"}) == 7.0 and _retry_after({}) == 30.0
