"""The SQS consumer (DESIGN §6) against moto in-process, with a real AWS-signed CloudWatch alarm.

The fixture's certificate is pinned in a temporary cache (``<sha256 of SigningCertURL>.pem``). The
message is years old and the clock is the real one: the SNS age limit must not apply on this path.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from moto import mock_aws
from sqlalchemy import select

from bot.aws import AwsGateway
from bot.compose import build_core
from bot.core import Core
from bot.fakes.fixture_files import FIXTURES
from bot.settings import Settings
from bot.sns import SnsRejected, parse
from bot.store.inbox import SQS
from bot.store.models import SnsInboxMessage
from handlers.sns import build_verifier
from handlers.sqs import SqsConsumer
from tests.conftest import REGION, moto_session

CLOUDWATCH = FIXTURES / "cloudwatch"
ALARM = CLOUDWATCH / "real-signed-metric-alarm-sigv1.json"

pytestmark = pytest.mark.skipif(not ALARM.is_file(), reason=f"signed CloudWatch fixture not found at {ALARM}")


def _pin_certificate(cache: Path) -> None:
    url = json.loads(ALARM.read_bytes())["SigningCertURL"]
    pem = (CLOUDWATCH / url.rsplit("/", 1)[-1]).read_bytes()
    (cache / f"{hashlib.sha256(url.encode()).hexdigest()}.pem").write_bytes(pem)


@dataclass
class Queue:
    core: Core
    aws: AwsGateway
    url: str
    stored: list[int]

    def consumer(self, core: Core | None = None, **kw: Any) -> SqsConsumer:
        kw.setdefault("wait_seconds", 0)
        return SqsConsumer(
            core or self.core, queue_url=self.url, on_stored=lambda: self.stored.append(1), **kw
        )

    def send(self, body: str) -> None:
        self.aws.call("sqs", "send_message", QueueUrl=self.url, MessageBody=body)

    def remaining(self) -> list[str]:
        """Bodies still in the queue (visibility 0: every message is visible again at once)."""
        response = self.aws.call(
            "sqs",
            "receive_message",
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=0,
        )
        return [message["Body"] for message in response.get("Messages", [])]

    def rows(self, core: Core | None = None) -> list[SnsInboxMessage]:
        with (core or self.core).db.session(write=False) as session:
            return list(session.scalars(select(SnsInboxMessage).order_by(SnsInboxMessage.id)))


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[Queue]:
    cache = tmp_path / "certs"
    cache.mkdir()
    _pin_certificate(cache)
    with mock_aws():
        gateway = AwsGateway(session=moto_session(), region=REGION)
        url = gateway.call(
            "sqs", "create_queue", QueueName="menotime-alarms", Attributes={"VisibilityTimeout": "0"}
        )["QueueUrl"]
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
            sns_cert_cache_dir=cache,
            sns_max_age_seconds=3600,
            sns_topic_arns=(json.loads(_alarm())["TopicArn"],),
        )
        core = build_core(settings, aws=gateway, migrate_schema=True)
        yield Queue(core=core, aws=gateway, url=url, stored=[])
        core.close()


def _alarm() -> str:
    return ALARM.read_text(encoding="utf-8")


def test_the_fixture_is_too_old_for_the_http_endpoint(queue: Queue) -> None:
    # What makes the next tests meaningful: /sns's verifier (age limit on) refuses this message.
    with pytest.raises(SnsRejected, match="older than"):
        build_verifier(queue.core).verify(parse(_alarm()))


def test_a_valid_message_is_stored_once_and_deleted(queue: Queue) -> None:
    queue.send(_alarm())
    assert queue.consumer().poll_once() == 1
    [row] = queue.rows()
    data = json.loads(_alarm())
    assert row.source == SQS and row.message_id == data["MessageId"] and row.type == "Notification"
    assert row.body == _alarm()  # the envelope exactly as it came out of the queue
    assert queue.remaining() == []
    assert queue.stored == [1]


def test_the_consumer_calls_only_what_its_iam_declaration_allows(queue: Queue) -> None:
    from bot.iam import BACKGROUND

    [declared] = [set(work.iam_actions) for work in BACKGROUND if work.name == "sqs consumer"]
    queue.send(_alarm())
    queue.aws.iam_actions.clear()  # the test's own set-up
    assert queue.consumer().poll_once() == 1
    assert queue.aws.iam_actions == declared  # received, and deleted once stored


def test_the_same_message_twice_is_stored_once_and_both_are_deleted(queue: Queue) -> None:
    queue.send(_alarm())
    queue.send(_alarm())
    consumer = queue.consumer(batch=1)
    with structlog.testing.capture_logs() as logs:
        assert consumer.poll_once() + consumer.poll_once() == 1
    assert len(queue.rows()) == 1
    assert queue.remaining() == []
    assert any(entry["event"] == "sqs_duplicate_dropped" for entry in logs)
    assert queue.stored == [1]
    assert consumer.poll_once() == 0  # empty queue


def test_a_tampered_message_is_neither_stored_nor_deleted(queue: Queue) -> None:
    data = json.loads(_alarm())
    data["Message"] = "x" + data["Message"][1:]
    tampered = json.dumps(data)
    queue.send(tampered)
    with structlog.testing.capture_logs() as logs:
        assert queue.consumer().poll_once() == 0
    assert queue.rows() == []
    assert queue.remaining() == [tampered]  # left for the redrive policy
    [rejected] = [entry for entry in logs if entry["event"] == "sqs_message_rejected"]
    assert "bad signature" in rejected["reason"]
    assert queue.stored == []


@pytest.mark.parametrize("body", ["not json", json.dumps({"AlarmName": "raw message delivery"})])
def test_a_body_that_is_not_an_envelope_is_left_in_the_queue(queue: Queue, body: str) -> None:
    queue.send(body)
    with structlog.testing.capture_logs() as logs:
        assert queue.consumer().poll_once() == 0
    assert queue.rows() == []
    assert queue.remaining() == [body]
    assert any(entry["event"] == "sqs_message_rejected" for entry in logs)


def test_a_database_failure_leaves_the_message_in_the_queue(queue: Queue, tmp_path: Path) -> None:
    settings = queue.core.settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'empty.db'}"})
    unmigrated = build_core(settings, aws=queue.aws, migrate_schema=False)  # no tables: every insert fails
    try:
        queue.send(_alarm())
        with structlog.testing.capture_logs() as logs:
            assert queue.consumer(unmigrated).poll_once() == 0
        assert queue.remaining() == [_alarm()]
        assert any(entry["event"] == "sqs_store_failed" for entry in logs)
        assert queue.stored == []
    finally:
        unmigrated.close()


def test_with_an_allow_list_other_topics_are_left_in_the_queue(queue: Queue, tmp_path: Path) -> None:
    settings = queue.core.settings.model_copy(
        update={"sns_topic_arns": ("arn:aws:sns:us-west-1:123456789012:menotime-alarms",)}
    )
    listed = build_core(settings, aws=queue.aws, migrate_schema=False)  # same database, already migrated
    try:
        queue.send(_alarm())
        assert queue.consumer(listed).poll_once() == 0
        assert queue.rows() == []
        assert queue.remaining() == [_alarm()]
    finally:
        listed.close()


def test_without_an_allow_list_every_message_is_left_in_the_queue(queue: Queue) -> None:
    """Closed by default: no SNS_TOPIC_ARNS and no environment's alarm_topics, nothing is heard."""
    closed = build_core(
        queue.core.settings.model_copy(update={"sns_topic_arns": ()}), aws=queue.aws, migrate_schema=False
    )
    try:
        queue.send(_alarm())
        with structlog.testing.capture_logs() as logs:
            assert queue.consumer(closed).poll_once() == 0
        assert queue.rows() == []
        assert queue.remaining() == [_alarm()]
        [rejected] = [entry for entry in logs if entry["event"] == "sqs_message_rejected"]
        assert rejected["kind"] == "topic_not_allowed" and "no topic is allowed" in rejected["reason"]
    finally:
        closed.close()


def test_the_thread_stores_wakes_and_stops(queue: Queue) -> None:
    woken = threading.Event()
    consumer = SqsConsumer(queue.core, queue_url=queue.url, on_stored=woken.set, wait_seconds=0).start()
    try:
        queue.send(_alarm())
        assert woken.wait(10)
    finally:
        consumer.stop()
    assert len(queue.rows()) == 1
    assert queue.remaining() == []


def test_aws_errors_in_the_loop_are_logged_and_retried(queue: Queue) -> None:
    missing = queue.url.rsplit("/", 1)[0] + "/no-such-queue"
    consumer = SqsConsumer(queue.core, queue_url=missing, wait_seconds=0, retry_pause=0.01)
    with structlog.testing.capture_logs() as logs:
        consumer.start()
        try:
            for _ in range(500):
                if sum(entry["event"] == "sqs_poll_failed" for entry in logs) >= 2:
                    break
                threading.Event().wait(0.01)
        finally:
            consumer.stop()
    assert sum(entry["event"] == "sqs_poll_failed" for entry in logs) >= 2  # failed, paused, tried again


def test_the_long_poll_stays_under_the_read_timeout(queue: Queue) -> None:
    consumer = queue.consumer(wait_seconds=20)  # the gateway's read timeout is 10 s by default
    assert consumer._wait_seconds < 10
