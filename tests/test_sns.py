"""SNS message verification (DESIGN §6) against real AWS-signed messages and our own signed ones.

The real fixtures live in ``shared/fixtures`` beside the repository (a sibling of the repo root,
in development and in CI). Their certificates have expired, so each is pinned in a temporary
certificate cache (``<sha256 of SigningCertURL>.pem``, the air-gapped mechanism) and verified
with the clock frozen at the message's own Timestamp. No test touches the network: every store
gets a ``fetch`` that fails the test when called, unless the test is about fetching.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

from bot.clock import FrozenClock
from bot.fakes.fixture_files import FIXTURES
from bot.fakes.sns_signer import NOT_AFTER, NOT_BEFORE, OWN_URL, TOPIC, Own
from bot.fakes.sns_signer import pin_certificate as _pin
from bot.settings import DEFAULT_SNS_CERT_HOST_PATTERN
from bot.sns import (
    CertificateStore,
    SnsMessage,
    SnsRejected,
    SnsVerifier,
    parse,
    string_to_sign,
)

MAX_AGE = timedelta(seconds=3600)  # the shipped SNS_MAX_AGE_SECONDS


def _real_fixtures(wanted: Callable[[dict[str, Any]], bool] = lambda data: True) -> list[Any]:
    """Every SNS envelope under shared/fixtures (that ``wanted`` picks), with its folder's certificate."""
    if not FIXTURES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"SNS fixtures not found at {FIXTURES}"))]
    found = []
    for path in sorted(FIXTURES.rglob("*.json")):
        data = json.loads(path.read_bytes())
        if isinstance(data, dict) and "Signature" in data and "SigningCertURL" in data and wanted(data):
            pems = sorted(path.parent.glob("*.pem"))
            assert len(pems) == 1, f"{path.parent} should hold exactly one signing certificate"
            found.append(pytest.param((path, pems[0]), id=str(path.relative_to(FIXTURES))))
    return found


REAL = _real_fixtures()
REAL_WITH_SUBJECT = _real_fixtures(lambda data: "Subject" in data)
REAL_NOTIFICATIONS_WITHOUT_SUBJECT = _real_fixtures(
    lambda data: data["Type"] == "Notification" and "Subject" not in data
)


def _no_fetch(url: str) -> bytes:
    pytest.fail(f"the certificate store fetched {url}; it must use the pinned cache or refuse first")


def _store(cache: Path | None, fetch: Callable[[str], bytes] = _no_fetch) -> CertificateStore:
    return CertificateStore(host_pattern=DEFAULT_SNS_CERT_HOST_PATTERN, cache_dir=cache, fetch=fetch)


def _verifier(
    store: CertificateStore, at: datetime, max_age: timedelta | None = MAX_AGE, **kw: Any
) -> SnsVerifier:
    return SnsVerifier(certificates=store, max_age=max_age, clock=FrozenClock(at), **kw)


def _reject(call: Callable[[], object], status: int = 403) -> SnsRejected:
    with pytest.raises(SnsRejected) as caught:
        call()
    assert caught.value.status == status, caught.value.reason
    assert "\n" not in caught.value.reason
    return caught.value


class Real:
    """One real fixture: its envelope as a dict, and a verifier pinned to its certificate."""

    def __init__(self, pair: tuple[Path, Path], cache: Path) -> None:
        path, pem = pair
        self.body = path.read_bytes()
        self.data: dict[str, Any] = json.loads(self.body)
        self.pem = pem.read_bytes()
        _pin(cache, self.data["SigningCertURL"], self.pem)
        self.store = _store(cache)
        self.sent = parse(self.body).timestamp

    def verify(self, data: dict[str, Any] | None = None, *, at: datetime | None = None, **kw: Any) -> None:
        msg = parse(json.dumps(data if data is not None else self.data))
        _verifier(self.store, at or self.sent, **kw).verify(msg)


@pytest.fixture(params=REAL)
def real(request: pytest.FixtureRequest, tmp_path: Path) -> Real:
    return Real(request.param, tmp_path)


@pytest.fixture(params=REAL_WITH_SUBJECT)
def real_with_subject(request: pytest.FixtureRequest, tmp_path: Path) -> Real:
    return Real(request.param, tmp_path)


@pytest.fixture(params=REAL_NOTIFICATIONS_WITHOUT_SUBJECT)
def real_without_subject(request: pytest.FixtureRequest, tmp_path: Path) -> Real:
    return Real(request.param, tmp_path)


# --- every real message verifies ---------------------------------------------------------------


def test_real_fixture_verifies_from_the_pinned_cache(real: Real) -> None:
    msg = parse(real.body)  # the bytes exactly as stored, not a re-serialisation
    _verifier(real.store, real.sent).verify(msg)
    assert msg.timestamp.tzinfo is not None and msg.timestamp == real.sent
    assert msg.message_id == real.data["MessageId"] and msg.topic_arn == real.data["TopicArn"]
    assert msg.subject == real.data.get("Subject")


def test_real_fixtures_cover_every_kind() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"SNS fixtures not found at {FIXTURES}")
    kinds = set()
    for param in REAL:
        data = json.loads(param.values[0][0].read_bytes())
        kinds.add((data["Type"], data["SignatureVersion"], "Subject" in data))
    for wanted in [
        ("Notification", "1", False),
        ("Notification", "1", True),
        ("Notification", "2", False),
        ("Notification", "2", True),
    ]:
        assert wanted in kinds
    assert {kind[0] for kind in kinds} >= {"SubscriptionConfirmation", "UnsubscribeConfirmation"}


# --- tampering ---------------------------------------------------------------------------------


def _flip(value: str, index: int, alphabet: str = "xy") -> str:
    new = alphabet[1] if value[index] == alphabet[0] else alphabet[0]
    return value[:index] + new + value[index + 1 :]


def _tamper(real: Real, field: str) -> None:
    tampered = dict(real.data)
    # In the Signature, swap one base64 letter for another so the failure is the RSA check.
    tampered[field] = _flip(tampered[field], 10, "AB") if field == "Signature" else _flip(tampered[field], 0)
    assert "bad signature" in _reject(lambda: real.verify(tampered)).reason


@pytest.mark.parametrize("field", ["Message", "TopicArn", "Signature"])
def test_flipping_one_character_fails(real: Real, field: str) -> None:
    _tamper(real, field)


def test_flipping_one_character_of_the_subject_fails(real_with_subject: Real) -> None:
    _tamper(real_with_subject, "Subject")


def test_removing_the_subject_fails(real_with_subject: Real) -> None:
    stripped = {k: v for k, v in real_with_subject.data.items() if k != "Subject"}
    _reject(lambda: real_with_subject.verify(stripped))


def test_adding_a_subject_fails(real_without_subject: Real) -> None:
    _reject(lambda: real_without_subject.verify({**real_without_subject.data, "Subject": "injected"}))


def test_message_attributes_are_not_signed(real: Real) -> None:
    real.verify({**real.data, "MessageAttributes": {"x": {"Type": "String", "Value": "y"}}})


# --- certificate URL -----------------------------------------------------------------------------

BAD_CERT_URLS = [
    "https://sns.evil.com/x.pem",
    "https://sns.us-east-1.amazonaws.com.evil.com/x.pem",
    "http://sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.txt",
    "https://a@sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com@evil.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:443@evil.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:8443/x.pem",
    "https://sns.us-east-1.amazonaws.com:notaport/x.pem",
    "https://evil.com/sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.pem?redirect=evil",
    "https://sns.us-east-1.amazonaws.com/x.pem#frag",
    "https://sns.us-east-1.amazonaws.com\\@evil.com/x.pem",
    "https://sns.us-east-1.amazonaws.com/certs\\x.pem",  # a backslash, anywhere
    "https://sns.us-east-1.amazonaws.com /x.pem",
    "https://sns.us-east-1.amazonaws.com\n/x.pem",
    "https://sns.xx.amazonaws.com/x.pem",  # the pattern wants 3+ characters of region
    "file:///etc/ssl/x.pem",
    "",
]


@pytest.mark.parametrize("url", BAD_CERT_URLS)
def test_cert_url_off_the_sns_hosts_is_refused_before_cache_or_fetch(
    url: str, tmp_path: Path, own: Own
) -> None:
    # Even a pinned file under that URL's name is not consulted: the URL check comes first.
    _pin(tmp_path, url, own.pem)
    _reject(lambda: _store(tmp_path).get(url))
    msg = parse(json.dumps(own.message(SigningCertURL=url)))
    _reject(lambda: _verifier(_store(tmp_path), msg.timestamp).verify(msg))


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem",
    ],
)
def test_cert_url_on_an_sns_host_is_accepted(url: str) -> None:
    _store(None).check_url(url)


# --- age and certificate validity ----------------------------------------------------------------


def test_message_older_than_max_age_is_refused_before_fetching(real: Real) -> None:
    real.verify(at=real.sent + MAX_AGE)  # exactly at the limit: still accepted
    reason = _reject(lambda: real.verify(at=real.sent + MAX_AGE + timedelta(seconds=1))).reason
    assert "older than" in reason
    real.verify(at=real.sent + timedelta(days=3650), max_age=None)  # no age rule: only the signature counts


def test_message_from_the_future_is_refused(real: Real) -> None:
    real.verify(at=real.sent - timedelta(minutes=4))
    _reject(lambda: real.verify(at=real.sent - timedelta(minutes=6)))


# --- our own key: certificate validity window and both signature versions -----------------------


@pytest.fixture(scope="module")
def own() -> Own:
    return Own()  # one key for the module: RSA key generation is the slow part


def _own_verify(own: Own, tmp_path: Path, data: dict[str, Any], **kw: Any) -> SnsMessage:
    _pin(tmp_path, OWN_URL, own.pem)
    msg = parse(json.dumps(data))
    _verifier(_store(tmp_path), msg.timestamp, **kw).verify(msg)
    return msg


@pytest.mark.parametrize("kind", ["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"])
@pytest.mark.parametrize("version", ["1", "2"])
def test_own_signed_messages_verify_with_sha1_and_sha256(
    own: Own, tmp_path: Path, kind: str, version: str
) -> None:
    _own_verify(own, tmp_path, own.message(kind=kind, version=version))
    _own_verify(own, tmp_path, own.message(kind=kind, version=version, Subject="with a subject"))


@pytest.mark.parametrize(
    ("version", "digest"),
    [("1", hashes.SHA256), ("2", hashes.SHA1), ("3", hashes.SHA256), ("", hashes.SHA256)],
)
def test_signature_version_must_match_the_hash(own: Own, tmp_path: Path, version: str, digest: Any) -> None:
    _reject(lambda: _own_verify(own, tmp_path, own.message(version=version, digest=digest)))


@pytest.mark.parametrize(
    ("at", "valid"),
    [
        (NOT_BEFORE - timedelta(seconds=1), False),
        (NOT_BEFORE, True),
        (NOT_AFTER, True),
        (NOT_AFTER + timedelta(seconds=1), False),
        (NOT_AFTER + timedelta(days=30), False),
    ],
)
def test_certificate_must_be_valid_at_the_timestamp(
    own: Own, tmp_path: Path, at: datetime, valid: bool
) -> None:
    data = own.message(at=at)  # correctly signed; the clock is at the message's time
    if valid:
        _own_verify(own, tmp_path, data)
    else:
        assert "not valid at" in _reject(lambda: _own_verify(own, tmp_path, data)).reason


def test_signature_that_is_not_base64_is_refused(own: Own, tmp_path: Path) -> None:
    data = {**own.message(), "Signature": "not base64!!"}
    assert "base64" in _reject(lambda: _own_verify(own, tmp_path, data)).reason


def test_confirmation_fields_are_signed(own: Own, tmp_path: Path) -> None:
    data = own.message(kind="SubscriptionConfirmation")
    for field in ("SubscribeURL", "Token", "Message"):
        _reject(lambda field=field: _own_verify(own, tmp_path, {**data, field: data[field] + "x"}))


def test_string_to_sign_follows_the_design_order(own: Own) -> None:
    note = parse(json.dumps(own.message(Subject="S")))
    assert (
        string_to_sign(note)
        == (
            f"Message\n{note.message}\nMessageId\n{note.message_id}\nSubject\nS\n"
            f"Timestamp\n{note.raw['Timestamp']}\nTopicArn\n{TOPIC}\nType\nNotification\n"
        ).encode()
    )
    conf = parse(json.dumps(own.message(kind="UnsubscribeConfirmation")))
    assert (
        string_to_sign(conf)
        == (
            f"Message\n{conf.message}\nMessageId\n{conf.message_id}\nSubscribeURL\n{conf.subscribe_url}\n"
            f"Timestamp\n{conf.raw['Timestamp']}\nToken\n{conf.token}\nTopicArn\n{TOPIC}\nType\nUnsubscribeConfirmation\n"
        ).encode()
    )


def test_only_allow_listed_topics_pass_and_an_empty_list_passes_none(own: Own, tmp_path: Path) -> None:
    msg = parse(json.dumps(own.message(kind="SubscriptionConfirmation")))
    _verifier(_store(tmp_path), msg.timestamp, topics=[TOPIC]).check_topic(msg)
    other = _reject(
        lambda: _verifier(_store(tmp_path), msg.timestamp, topics=[TOPIC + "-other"]).check_topic(msg)
    )
    closed = _reject(lambda: _verifier(_store(tmp_path), msg.timestamp).check_topic(msg))
    assert other.kind == closed.kind == "topic_not_allowed"
    assert "not in SNS_TOPIC_ARNS" in other.reason and "no topic is allowed" in closed.reason


# --- parsing -------------------------------------------------------------------------------------

CLOUDWATCH_ALARM = {
    "AlarmName": "menotime-prod-cpu-high",
    "AWSAccountId": "123456789012",
    "NewStateValue": "ALARM",
    "NewStateReason": "Threshold Crossed",
    "StateChangeTime": "2024-01-01T00:30:00.000+0000",
    "Region": "US West (N. California)",
    "AlarmArn": "arn:aws:cloudwatch:us-west-1:123456789012:alarm:menotime-prod-cpu-high",
    "OldStateValue": "OK",
    "Trigger": {"MetricName": "CPUUtilization", "Namespace": "AWS/ECS", "Threshold": 80.0},
}


def test_raw_message_delivery_is_refused_with_400() -> None:
    reason = _reject(lambda: parse(json.dumps(CLOUDWATCH_ALARM)), status=400).reason
    assert "raw message delivery" in reason


def test_lambda_records_format_is_not_an_envelope() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"SNS fixtures not found at {FIXTURES}")
    for path in sorted(FIXTURES.glob("cloudwatch/aws-lambda-go__*.json")):
        _reject(lambda path=path: parse(path.read_bytes()), status=400)


_NOT_JSON = "body is not JSON"
_NOT_AN_OBJECT = "body is not a JSON object"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", _NOT_JSON),
        (b"not json", _NOT_JSON),
        (b"{", _NOT_JSON),
        (b"\xff\xfe{}", _NOT_JSON),
        # SNS sends UTF-8; a UTF-16 body (which json.loads would read from bytes) is not its envelope.
        (json.dumps({"Type": "Notification"}).encode("utf-16"), _NOT_JSON),
        (b"[" * 100_000, _NOT_JSON),
        (b"[1, 2]", _NOT_AN_OBJECT),
        (b'"Notification"', _NOT_AN_OBJECT),
        (b"null", _NOT_AN_OBJECT),
        (b'{"type": "Notification"}', "not an SNS envelope (raw message delivery is not accepted)"),
        (
            b'{"Type": "Notification"}',
            "Notification lacks string field(s) MessageId, TopicArn, Message, Timestamp, SignatureVersion, "
            "Signature, SigningCertURL",
        ),
        (b'{"Type": "Bogus", "MessageId": "1"}', "unknown SNS message Type 'Bogus'"),
        (b'{"Type": ["Notification"]}', "unknown SNS message Type \"['Notification']\""),
        (json.dumps({"Type": "B" * 100}).encode(), f"unknown SNS message Type '{'B' * 60}'"),
    ],
)
def test_malformed_bodies_are_refused_with_400_saying_what_is_wrong(body: bytes, reason: str) -> None:
    assert _reject(lambda: parse(body), status=400).reason == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Timestamp": "yesterday"}, "Timestamp 'yesterday' is not ISO 8601"),
        ({"Timestamp": "y" * 50}, f"Timestamp '{'y' * 40}' is not ISO 8601"),
        ({"Timestamp": "2024-01-01T00:30:00"}, "Timestamp has no time zone"),
        ({"Subject": 42}, "Subject is not a string"),
        ({"SubscribeURL": 42}, "SubscribeURL is not a string"),
        ({"Token": 42}, "Token is not a string"),
        ({"UnsubscribeURL": 42}, "UnsubscribeURL is not a string"),
        ({"MessageAttributes": []}, "MessageAttributes is not an object"),
        ({"Message": {"nested": True}}, "Notification lacks string field(s) Message"),
        ({"SigningCertURL": None}, "Notification lacks string field(s) SigningCertURL"),
        ({"MessageId": None, "TopicArn": 7}, "Notification lacks string field(s) MessageId, TopicArn"),
    ],
)
def test_bad_fields_are_refused_with_400_saying_which(own: Own, change: dict[str, Any], reason: str) -> None:
    assert _reject(lambda: parse(json.dumps({**own.message(), **change})), status=400).reason == reason


def test_a_timestamp_with_an_offset_is_read_as_the_same_moment_in_utc_whatever_the_hosts_zone(
    own: Own, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        msg = parse(json.dumps(own.message(Timestamp="2026-05-01T14:30:00.000+02:00")))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert msg.timestamp == datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    assert msg.timestamp.utcoffset() == timedelta(0) and msg.timestamp.tzname() == "UTC"


def test_confirmation_without_token_is_refused_with_400(own: Own) -> None:
    data = own.message(kind="SubscriptionConfirmation")
    del data["Token"]
    _reject(lambda: parse(json.dumps(data)), status=400)


def test_parse_accepts_str_and_bytes(own: Own) -> None:
    text = json.dumps(own.message())
    assert parse(text) == parse(text.encode())


# --- the certificate cache -----------------------------------------------------------------------


def test_pinned_file_is_used_without_fetching_and_kept_in_memory(own: Own, tmp_path: Path) -> None:
    path = _pin(tmp_path, OWN_URL, own.pem)
    store = _store(tmp_path)
    first = store.get(OWN_URL)
    path.unlink()  # the second lookup is answered from memory
    assert store.get(OWN_URL) is first


def test_fetched_certificate_is_written_under_the_sha256_name(own: Own, tmp_path: Path) -> None:
    cache = tmp_path / "certs"  # does not exist yet
    calls: list[str] = []

    def fetch(url: str) -> bytes:
        calls.append(url)
        return own.pem

    data = own.message()
    msg = parse(json.dumps(data))
    _verifier(_store(cache, fetch), msg.timestamp).verify(msg)
    assert calls == [OWN_URL]
    expected = cache / f"{hashlib.sha256(OWN_URL.encode()).hexdigest()}.pem"
    assert expected.read_bytes() == own.pem
    assert [p.name for p in cache.iterdir()] == [expected.name]  # no temporary file left behind
    _verifier(_store(cache), msg.timestamp).verify(msg)  # a new store (a restart) reads the file


def test_fetch_failures_are_refused_and_not_cached(own: Own, tmp_path: Path) -> None:
    def broken(url: str) -> bytes:
        raise OSError("connection refused")

    _reject(lambda: _store(tmp_path, broken).get(OWN_URL), status=503)  # may pass: SNS sends it again
    _reject(lambda: _store(tmp_path, lambda url: b"<html>not a cert</html>").get(OWN_URL))
    assert list(tmp_path.iterdir()) == []


def test_without_a_cache_dir_the_certificate_is_fetched_once_per_store(own: Own) -> None:
    calls: list[str] = []
    store = _store(None, lambda url: calls.append(url) or own.pem)
    store.get(OWN_URL)
    store.get(OWN_URL)
    assert calls == [OWN_URL]


def test_a_corrupt_pinned_file_is_refused(tmp_path: Path) -> None:
    _pin(tmp_path, OWN_URL, b"garbage")
    _reject(lambda: _store(tmp_path).get(OWN_URL))


# --- POST /sns in-process, with our own key: a certificate in memory never stands in for a signature


def test_a_bad_signature_is_refused_after_its_certificate_was_loaded_by_a_good_message(
    own: Own, tmp_path: Path, database_url: str
) -> None:
    from sqlalchemy import select
    from starlette.testclient import TestClient

    from bot.compose import build_core
    from bot.settings import Settings
    from bot.store.models import SnsInboxMessage
    from handlers.web import create_web_app

    at = NOT_BEFORE + timedelta(minutes=30)
    _pin(tmp_path, OWN_URL, own.pem)
    settings = Settings(database_url=database_url, sns_cert_cache_dir=tmp_path, sns_topic_arns=(TOPIC,))
    core = build_core(settings, clock=FrozenClock(at), migrate_schema=True)
    client = TestClient(create_web_app(core, None))

    def post(data: dict[str, Any]) -> Any:
        return client.post(
            "/sns", content=json.dumps(data), headers={"Content-Type": "text/plain; charset=UTF-8"}
        )

    def stored() -> list[str]:
        with core.db.session(write=False) as session:
            return list(session.scalars(select(SnsInboxMessage.message_id).order_by(SnsInboxMessage.id)))

    try:
        genuine = own.message(at=at, MessageId="7f1c8e2a-0000-4000-8000-00000000000a")
        first = post(genuine)  # verified; its certificate is now held in memory
        assert first.status_code == 200, first.text
        assert stored() == [genuine["MessageId"]]

        forged = own.message(at=at, MessageId="7f1c8e2a-0000-4000-8000-00000000000b")  # same SigningCertURL
        forged["Message"] = '{"AlarmName":"menotime-prod-db-down","NewStateValue":"OK"}'  # after signing
        second = post(forged)

        assert second.status_code == 403 and "bad signature" in second.text
        assert stored() == [genuine["MessageId"]]  # nothing recorded for the forgery
        refusals = core.metrics.registry.get_sample_value(
            "menotime_sns_refusals_total", {"reason": "signature"}
        )
        assert refusals == 1
    finally:
        core.close()
