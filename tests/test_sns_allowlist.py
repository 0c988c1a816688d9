"""The SNS alarm path is closed by default (issue 12, item 2), through the real ``POST /sns``.

Only topics in ``SNS_TOPIC_ARNS`` or an environment's ``alarm_topics`` are heard; with neither,
a genuinely AWS-signed notification is refused 403 and nothing is stored. A certificate URL that
failed is not fetched again for a while, and ``SubscribeURL`` passes the same URL rule as
``SigningCertURL``. Real AWS-signed fixtures (``make_endpoint``) and our own signing key (``Own``,
for messages whose signed fields the test chooses) keep every refusal behind a valid signature.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner
from sqlalchemy import func, select

import bot.sns
import bot.sns.certificates
from bot.alarms import process_inbox
from bot.clock import FrozenClock
from bot.config import load_config
from bot.fakes.sns_signer import NOT_BEFORE, OWN_URL, Own
from bot.fakes.sns_signer import TOPIC as OWN_TOPIC
from bot.fakes.sns_signer import pin_certificate as _pin
from bot.settings import DEFAULT_SNS_CERT_HOST_PATTERN
from bot.sns import CertificateStore, SnsRejected
from bot.store.models import AlarmThread
from handlers.cli import cli
from tests.test_sns_endpoint import (  # noqa: F401 - make_endpoint is the fixture these tests share
    NOTIFICATION,
    OTHER_TOPIC,
    SUBSCRIBE,
    Endpoint,
    _fixture,
    _sent,
    make_endpoint,
    pytestmark,
)

OWN_AT = NOT_BEFORE + timedelta(minutes=30)  # inside Own's one-hour certificate
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def own() -> Own:
    return Own()


def _refusals(sns: Endpoint, kind: str) -> float:
    value = sns.core.metrics.registry.get_sample_value("menotime_sns_refusals_total", {"reason": kind})
    return value or 0.0


def _threads(sns: Endpoint) -> int:
    with sns.core.db.session(write=False) as session:
        return session.scalar(select(func.count()).select_from(AlarmThread)) or 0


# --- closed by default ----------------------------------------------------------------------------


def test_with_no_allow_list_a_signed_notification_is_refused_and_opens_no_thread(make_endpoint: Any) -> None:
    sns = make_endpoint(
        at=_sent(NOTIFICATION) + timedelta(seconds=2), topics=()
    )  # shipped defaults: no alarm_topics
    with structlog.testing.capture_logs() as logs:
        response = sns.post(_fixture(NOTIFICATION))
    assert response.status_code == 403 and "no topic is allowed" in response.text
    assert sns.rows() == []
    process_inbox(core=sns.core)
    assert _threads(sns) == 0
    assert _refusals(sns, "topic_not_allowed") == 1
    [line] = [entry for entry in logs if entry["log_level"] in ("warning", "error")]  # one line says why
    assert (
        line["event"] == "sns_refused" and line["topic_arn"] == json.loads(_fixture(NOTIFICATION))["TopicArn"]
    )


def test_with_no_allow_list_a_subscription_is_not_confirmed(make_endpoint: Any) -> None:
    sns = make_endpoint(at=_sent(SUBSCRIBE), topics=())
    response = sns.post(_fixture(SUBSCRIBE))
    assert response.status_code == 403 and "no topic is allowed" in response.text
    assert sns.confirmed == [] and sns.rows() == []


def test_an_environments_alarm_topics_opens_the_path_for_that_topic_only(make_endpoint: Any) -> None:
    topic = json.loads(_fixture(NOTIFICATION))["TopicArn"]
    at = _sent(NOTIFICATION) + timedelta(seconds=2)
    heard = make_endpoint(
        at=at, topics=(), config=load_config(overrides={"environments": {"prod": {"alarm_topics": [topic]}}})
    )
    assert heard.post(_fixture(NOTIFICATION)).status_code == 200
    assert len(heard.rows()) == 1
    other = make_endpoint(
        at=at,
        topics=(),
        config=load_config(overrides={"environments": {"prod": {"alarm_topics": [OTHER_TOPIC]}}}),
    )
    response = other.post(_fixture(NOTIFICATION))
    assert response.status_code == 403 and "alarm_topics" in response.text


def test_config_check_says_the_alarm_path_is_closed_until_a_topic_is_set(tmp_path: Path) -> None:
    runner, path = CliRunner(), tmp_path / "menotime.yaml"
    path.write_text("{}\n")
    closed = runner.invoke(cli, ["config", "check"], env={"MENOTIME_CONFIG": str(path), "SNS_TOPIC_ARNS": ""})
    assert closed.exit_code == 0, closed.output
    assert "CLOSED: the SNS alarm path is closed" in closed.output and "SNS_TOPIC_ARNS" in closed.output

    path.write_text(f"environments:\n  prod:\n    alarm_topics: [{OWN_TOPIC}]\n")
    listed = runner.invoke(
        cli, ["config", "check"], env={"MENOTIME_CONFIG": str(path), "SNS_TOPIC_ARNS": OTHER_TOPIC}
    )
    assert listed.exit_code == 0, listed.output
    assert "CLOSED" not in listed.output
    assert f"  {OWN_TOPIC}\n" in listed.output and f"  {OTHER_TOPIC}\n" in listed.output


# --- certificate fetch failures are remembered ----------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (OSError("connection refused"), 503),  # may pass: SNS is asked to send it again
        (urllib.error.HTTPError(OWN_URL, 503, "Service Unavailable", None, None), 503),  # type: ignore[arg-type]
        (urllib.error.HTTPError(OWN_URL, 404, "Not Found", None, None), 403),  # type: ignore[arg-type]  # for good
    ],
)
def test_forged_messages_naming_a_failing_certificate_cost_one_fetch(
    make_endpoint: Any, own: Own, monkeypatch: pytest.MonkeyPatch, failure: Exception, status: int
) -> None:
    fetches: list[str] = []

    def unreachable(url: str) -> bytes:
        fetches.append(url)
        raise failure

    monkeypatch.setattr(bot.sns.certificates, "_default_fetch", unreachable)
    sns = make_endpoint(at=OWN_AT, topics=(OWN_TOPIC,))  # OWN_URL is not pinned: it would be fetched
    for _ in range(20):
        forged = own.message(at=OWN_AT, MessageId=f"forged-{next(_ids)}")
        response = sns.post(json.dumps(forged))
        assert response.status_code == status and "could not fetch SigningCertURL" in response.text
    assert fetches == [OWN_URL]
    assert sns.rows() == []


def test_a_failed_certificate_url_is_fetched_again_after_the_failure_ttl(own: Own) -> None:
    clock, fetches = FrozenClock(OWN_AT), []
    answers = iter([OSError("down"), b"<html>not a certificate</html>", own.pem])

    def fetch(url: str) -> bytes:
        fetches.append(url)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    store = CertificateStore(
        host_pattern=DEFAULT_SNS_CERT_HOST_PATTERN, cache_dir=None, fetch=fetch, clock=clock
    )
    for _ in range(5):
        with pytest.raises(SnsRejected, match="could not fetch") as refused:
            store.get(OWN_URL)
        assert refused.value.status == 503  # a network blip: SNS retries, the alarm is not lost
    assert len(fetches) == 1 and store.in_memory(OWN_URL)  # refused from memory, no thread hop needed
    clock.advance(seconds=bot.sns.TRANSIENT_FAILURE_TTL.total_seconds())  # a blip is retried soon
    for _ in range(3):
        with pytest.raises(SnsRejected, match="not a PEM certificate") as refused:
            store.get(OWN_URL)
        assert refused.value.status == 403
    assert len(fetches) == 2
    clock.advance(seconds=bot.sns.FAILURE_TTL.total_seconds() - 1)  # a failure for good is kept longer
    with pytest.raises(SnsRejected):
        store.get(OWN_URL)
    assert len(fetches) == 2
    clock.advance(seconds=1)
    assert store.get(OWN_URL) is store.get(OWN_URL)  # fetched once more, then kept
    assert len(fetches) == 3


# --- SubscribeURL: the SigningCertURL rule --------------------------------------------------------

CONFIRM = "/?Action=ConfirmSubscription&TopicArn=" + OWN_TOPIC + "&Token=2336412f"
BAD_SUBSCRIBE_URLS = [
    ("http://sns.us-west-1.amazonaws.com" + CONFIRM, "is not https"),
    ("https://sns.us-west-1.amazonaws.com:8443" + CONFIRM, "uses port 8443"),
    ("https://user@sns.us-west-1.amazonaws.com" + CONFIRM, "user information"),
    ("https://sns.us-west-1.amazonaws.com/\\evil.example" + CONFIRM, "backslash"),
    ("https://sns.us-west-1.amazonaws.com\\@evil.example" + CONFIRM, "backslash"),
    ("https://sns.us-west-1.amazonaws.com.evil.example" + CONFIRM, "not an SNS host"),
    ("https://evil.example" + CONFIRM, "not an SNS host"),
    ("https://sns.us-west-1.amazonaws.com/?Action=Confirm Subscription", "spaces or non-ASCII"),
    ("", "spaces or non-ASCII"),
]


@pytest.mark.parametrize(("url", "why"), BAD_SUBSCRIBE_URLS)
def test_a_signed_subscription_with_a_bad_subscribe_url_is_not_confirmed(
    make_endpoint: Any, own: Own, tmp_path: Path, url: str, why: str
) -> None:
    sns = make_endpoint(at=OWN_AT, topics=(OWN_TOPIC,))
    _pin(tmp_path / "certs", OWN_URL, own.pem)  # the signature verifies: only the URL is wrong
    response = sns.post(json.dumps(own.message(kind="SubscriptionConfirmation", at=OWN_AT, SubscribeURL=url)))
    assert response.status_code == 403 and "SubscribeURL" in response.text and why in response.text
    assert sns.confirmed == []
    assert _refusals(sns, "subscribe_url") == 1


def test_a_signed_subscription_with_a_good_subscribe_url_is_confirmed(
    make_endpoint: Any, own: Own, tmp_path: Path
) -> None:
    sns = make_endpoint(at=OWN_AT, topics=(OWN_TOPIC,))
    _pin(tmp_path / "certs", OWN_URL, own.pem)
    url = "https://sns.us-west-1.amazonaws.com:443" + CONFIRM
    response = sns.post(json.dumps(own.message(kind="SubscriptionConfirmation", at=OWN_AT, SubscribeURL=url)))
    assert response.status_code == 200, response.text
    assert sns.confirmed == [url]
