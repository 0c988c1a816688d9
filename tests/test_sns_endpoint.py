"""``POST /sns`` and the inbox (DESIGN §6) with real AWS-signed messages, on SQLite and PostgreSQL.

The certificates of the real fixtures have expired: each is pinned in a temporary certificate cache
(``<sha256 of SigningCertURL>.pem``) and the clock is frozen at the message's own Timestamp. No test
touches the network: a SubscribeURL is "fetched" by a recording fake.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import func, select
from starlette.testclient import TestClient

import handlers.sns
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import Config
from bot.core import Core
from bot.fakes.fixture_files import FIXTURES
from bot.settings import Settings
from bot.sns import parse
from bot.store.db import Database
from bot.store.inbox import HTTP, Inbox, InboxWriter, row_values
from bot.store.models import SnsInboxMessage
from handlers.web import create_web_app

SIGNED = FIXTURES / "java-v2-sns-message-manager"  # one topic: notifications, (un)subscribe confirmations
OTHER_TOPIC = "arn:aws:sns:us-west-2:131990247566:someone-elses-topic"

pytestmark = pytest.mark.skipif(not SIGNED.is_dir(), reason=f"SNS fixtures not found at {SIGNED}")


def _fixture(name: str) -> bytes:
    return (SIGNED / name).read_bytes()


NOTIFICATION = "test-notification-with-subject.json"
SUBSCRIBE = "test-subscription-confirmation.json"
UNSUBSCRIBE = "test-unsubscribe-confirmation.json"


def _pin_certificates(cache: Path) -> None:
    """The air-gapped mechanism: the signing certificate already in the cache, under sha256(url)."""
    pem = next(SIGNED.glob("*.pem")).read_bytes()
    for path in SIGNED.glob("*.json"):
        url = json.loads(path.read_bytes())["SigningCertURL"]
        (cache / f"{hashlib.sha256(url.encode()).hexdigest()}.pem").write_bytes(pem)


def _sent(name: str) -> datetime:
    return parse(_fixture(name)).timestamp


@dataclass
class Endpoint:
    core: Core
    client: TestClient
    confirmed: list[str] = field(default_factory=list)

    def post(self, body: bytes | str) -> Any:
        return self.client.post("/sns", content=body, headers={"Content-Type": "text/plain; charset=UTF-8"})

    def rows(self) -> list[SnsInboxMessage]:
        with self.core.db.session(write=False) as session:
            return list(session.scalars(select(SnsInboxMessage).order_by(SnsInboxMessage.id)))


@pytest.fixture
def make_endpoint(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    cache = tmp_path / "certs"
    cache.mkdir()
    _pin_certificates(cache)
    topic = parse(_fixture(NOTIFICATION)).topic_arn
    cores: list[Core] = []

    def make(
        *,
        at: datetime,
        topics: tuple[str, ...] = (topic,),
        migrate: bool = True,
        config: Config | None = None,
    ) -> Endpoint:
        settings = Settings(database_url=database_url, sns_cert_cache_dir=cache, sns_topic_arns=topics)
        core = build_core(settings, config=config, clock=FrozenClock(at), migrate_schema=migrate)
        cores.append(core)
        endpoint = Endpoint(core=core, client=TestClient(create_web_app(core, None)))
        monkeypatch.setattr(handlers.sns, "confirm_subscription", endpoint.confirmed.append)
        return endpoint

    yield make
    for core in cores:
        core.close()


# --- notifications -----------------------------------------------------------------------------


def test_a_signed_notification_is_stored_once_then_answered(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(NOTIFICATION) + timedelta(seconds=2))
    body = _fixture(NOTIFICATION)
    first = sns.post(body)
    assert first.status_code == 200, first.text
    [row] = sns.rows()
    data = json.loads(body)
    assert row.message_id == data["MessageId"] and row.topic_arn == data["TopicArn"]
    assert row.type == "Notification" and row.subject == data["Subject"] and row.source == HTTP
    assert row.body == body.decode("utf-8")  # exactly as received
    assert row.processed_at is None and row.outcome is None

    with structlog.testing.capture_logs() as logs:
        again = sns.post(body)  # SNS redelivers: answered 200, dropped
    assert again.status_code == 200
    assert len(sns.rows()) == 1
    assert any(entry["event"] == "sns_duplicate_dropped" for entry in logs)


def test_a_tampered_message_is_refused_and_not_stored(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(NOTIFICATION))
    data = json.loads(_fixture(NOTIFICATION))
    data["Message"] = "x" + data["Message"][1:]
    with structlog.testing.capture_logs() as logs:
        response = sns.post(json.dumps(data))
    assert response.status_code == 403 and "bad signature" in response.text
    assert sns.rows() == []
    [refusal] = [entry for entry in logs if entry["event"] == "sns_refused"]
    assert refusal["status"] == 403 and "bad signature" in refusal["reason"]


def test_raw_message_delivery_is_refused_with_a_400(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(NOTIFICATION))
    # With raw message delivery SNS posts the bare CloudWatch alarm: no envelope, no signature.
    alarm = json.loads((FIXTURES / "cloudwatch" / "real-signed-metric-alarm-sigv1.json").read_bytes())[
        "Message"
    ]
    assert "AlarmName" in json.loads(alarm)
    response = sns.post(alarm)
    assert response.status_code == 400 and "raw message delivery" in response.text
    assert sns.rows() == []


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"Type": "Notification"}'])
def test_malformed_bodies_are_400(make_endpoint: Any, body: bytes) -> None:
    sns = make_endpoint(at=_sent(NOTIFICATION))
    assert sns.post(body).status_code == 400
    assert sns.rows() == []


def test_a_message_older_than_the_max_age_is_refused(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(NOTIFICATION) + timedelta(hours=2))  # shipped max age: 3600 s
    response = sns.post(_fixture(NOTIFICATION))
    assert response.status_code == 403 and "older than" in response.text
    assert sns.rows() == []


def test_a_body_over_256_kib_is_413(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(NOTIFICATION))
    data = json.loads(_fixture(NOTIFICATION))
    data["Padding"] = "x" * (256 * 1024)
    assert sns.post(json.dumps(data)).status_code == 413
    assert sns.rows() == []


def test_a_database_failure_is_503_so_sns_retries(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(NOTIFICATION), migrate=False)  # no tables: every insert fails
    with structlog.testing.capture_logs() as logs:
        response = sns.post(_fixture(NOTIFICATION))
    assert response.status_code == 503
    assert any(entry["event"] == "sns_store_failed" for entry in logs)


# --- subscriptions -------------------------------------------------------------------------------


def test_an_allow_listed_subscription_is_confirmed(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(SUBSCRIBE))
    response = sns.post(_fixture(SUBSCRIBE))
    assert response.status_code == 200, response.text
    assert sns.confirmed == [json.loads(_fixture(SUBSCRIBE))["SubscribeURL"]]
    assert sns.rows() == []


def test_a_subscription_to_another_topic_is_refused_and_not_confirmed(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(SUBSCRIBE), topics=(OTHER_TOPIC,))
    with structlog.testing.capture_logs() as logs:
        response = sns.post(_fixture(SUBSCRIBE))
    assert response.status_code == 403 and "not in SNS_TOPIC_ARNS" in response.text
    assert sns.confirmed == []
    assert any(entry["event"] == "sns_refused" and entry["status"] == 403 for entry in logs)


def test_a_forged_subscription_is_never_confirmed(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(SUBSCRIBE))
    data = json.loads(_fixture(SUBSCRIBE))
    data["SubscribeURL"] = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&evil=1"
    assert sns.post(json.dumps(data)).status_code == 403
    assert sns.confirmed == []


def test_an_unsubscribe_confirmation_is_stored(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(UNSUBSCRIBE))
    assert sns.post(_fixture(UNSUBSCRIBE)).status_code == 200
    [row] = sns.rows()
    assert row.type == "UnsubscribeConfirmation"
    assert sns.confirmed == []


# --- the inbox itself ------------------------------------------------------------------------------

RECEIVED = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)


def test_inbox_stores_once_lists_pending_and_marks(db: Database) -> None:
    inbox = Inbox(db)
    first, second = parse(_fixture(NOTIFICATION)), parse(_fixture("test-notification-no-subject.json"))
    assert inbox.store(msg=first, source=HTTP, received_at=RECEIVED) is True
    assert inbox.store(msg=first, source="sqs", received_at=RECEIVED) is False
    assert inbox.store(msg=second, source="sqs", received_at=RECEIVED) is True
    pending = inbox.pending(10)
    assert [row.message_id for row in pending] == [first.message_id, second.message_id]
    assert pending[1].subject is None and json.loads(pending[1].body) == second.raw
    assert inbox.mark(id=pending[0].id, outcome="posted", processed_at=RECEIVED) is True
    assert inbox.mark(id=pending[0].id, outcome="posted", processed_at=RECEIVED) is False  # once
    assert [row.message_id for row in inbox.pending(10)] == [second.message_id]
    assert inbox.pending(0) == []


def test_inbox_refuses_an_unknown_source(db: Database) -> None:
    with pytest.raises(ValueError, match="unknown inbox source"):
        Inbox(db).store(msg=parse(_fixture(NOTIFICATION)), source="email", received_at=RECEIVED)


def test_concurrent_duplicate_deliveries_store_exactly_one(db: Database) -> None:
    """Eight replicas receive the same MessageId at the same moment: one wins, none fails."""
    inbox, msg = Inbox(db), parse(_fixture(NOTIFICATION))
    start = threading.Barrier(8)
    results: list[bool] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        start.wait()
        try:
            results.append(inbox.store(msg=msg, source=HTTP, received_at=RECEIVED))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and sorted(results) == [False] * 7 + [True]
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(SnsInboxMessage)) == 1


def test_group_commit_stores_each_message_once_even_within_one_batch(db: Database) -> None:
    """The endpoint's writer: 40 messages delivered three times each from many threads at once;
    each request learns whether its copy was the new one, and exactly one copy of each was."""
    base = parse(_fixture(NOTIFICATION))
    writer = InboxWriter(db, max_batch=50)
    futures = []
    for _copy in range(3):
        for n in range(40):
            msg = dataclasses.replace(base, message_id=f"{base.message_id}-{n}")
            futures.append(
                (msg.message_id, writer.submit(row_values(msg=msg, source=HTTP, received_at=RECEIVED)))
            )
    results: dict[str, list[bool]] = {}
    for message_id, future in futures:
        results.setdefault(message_id, []).append(future.result(timeout=30))
    writer.stop()
    assert all(sorted(answers) == [False, False, True] for answers in results.values()) and len(results) == 40
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(SnsInboxMessage)) == 40


def test_with_an_allow_list_other_topics_notifications_are_refused(make_endpoint: Any) -> None:
    refused = make_endpoint(at=_sent(NOTIFICATION) + timedelta(seconds=2), topics=(OTHER_TOPIC,))
    response = refused.post(_fixture(NOTIFICATION))
    assert response.status_code == 403 and "not in SNS_TOPIC_ARNS" in response.text
    assert refused.rows() == []


def test_a_request_that_gave_up_waiting_does_not_kill_the_group_commit_writer(db: Database) -> None:
    """A request cancelled while its row waits (client gone, shutdown) cancels its future; the
    writer still stores the row and keeps answering everyone else, then and afterwards."""
    base = parse(_fixture(NOTIFICATION))
    writer = InboxWriter(db, max_batch=50)
    gone_values = row_values(
        msg=dataclasses.replace(base, message_id="gone"), source=HTTP, received_at=RECEIVED
    )
    kept_values = row_values(
        msg=dataclasses.replace(base, message_id="kept"), source=HTTP, received_at=RECEIVED
    )
    gone, kept = Future(), Future()
    assert gone.cancel()  # what asyncio.wrap_future does when the awaiting request is cancelled
    writer._write([(gone_values, gone), (kept_values, kept)])  # one batch, as the thread would take it
    assert kept.result(timeout=5) is True
    later = writer.submit(
        row_values(msg=dataclasses.replace(base, message_id="later"), source=HTTP, received_at=RECEIVED)
    )
    assert later.result(timeout=10) is True  # the writer thread is alive
    writer.stop()
    with db.session(write=False) as session:
        assert sorted(session.scalars(select(SnsInboxMessage.message_id))) == ["gone", "kept", "later"]
