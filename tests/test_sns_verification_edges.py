"""SNS certificate handling at its edges: what a failed fetch answers (403 for good, 503 to be sent
again) and for how long it is remembered, how much of a certificate URL's answer is read, and the
cache that must never turn a good certificate into a refused alarm."""

from __future__ import annotations

import hashlib
import json
import socket
import tempfile
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.clock import FrozenClock
from bot.fakes.sns_signer import OWN_URL, Own
from bot.settings import DEFAULT_SNS_CERT_HOST_PATTERN
from bot.sns import (
    CertificateNeeded,
    CertificateStore,
    ResponseTooLarge,
    SnsRejected,
    SnsVerifier,
    fetch_checked_url,
    parse,
)
from bot.sns.certificates import _default_fetch

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def own() -> Own:
    return Own()


def _url(n: int) -> str:
    return f"https://sns.us-west-1.amazonaws.com/SimpleNotificationService-{n}.pem"


def _store(
    fetch: Callable[[str], bytes], clock: FrozenClock | None = None, cache: Path | None = None
) -> CertificateStore:
    return CertificateStore(
        host_pattern=DEFAULT_SNS_CERT_HOST_PATTERN,
        cache_dir=cache,
        fetch=fetch,
        clock=clock or FrozenClock(T0),
    )


def _refused(call: Callable[[], object]) -> SnsRejected:
    with pytest.raises(SnsRejected) as caught:
        call()
    return caught.value


class _Counting:
    """A fetch that fails with ``error`` and counts its calls."""

    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def __call__(self, url: str) -> bytes:
        self.calls += 1
        raise self.error


def _http_error(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError(OWN_URL, code, "x", {}, None)  # type: ignore[arg-type]


# --- what a failed fetch answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "said"),
    [
        (_http_error(404), 403, "HTTP 404"),
        (_http_error(499), 403, "HTTP 499"),
        (_http_error(500), 503, "HTTP 500"),
        (_http_error(502), 503, "HTTP 502"),
        (ResponseTooLarge("response too large"), 403, "ResponseTooLarge"),
        (TimeoutError("timed out"), 503, "TimeoutError"),
        (urllib.error.URLError("refused"), 503, "URLError"),
    ],
)
def test_a_failed_fetch_is_refused_for_good_or_to_be_sent_again(
    error: Exception, status: int, said: str
) -> None:
    rejected = _refused(lambda: _store(_Counting(error)).get(OWN_URL))
    assert rejected.status == status
    assert rejected.reason == f"could not fetch SigningCertURL {OWN_URL!r}: {said}"
    assert rejected.kind == "certificate"


def test_a_fetched_answer_that_is_not_a_certificate_is_refused_for_good(tmp_path: Path) -> None:
    rejected = _refused(lambda: _store(lambda url: b"<html>", cache=tmp_path).get(OWN_URL))
    assert (rejected.status, rejected.kind) == (403, "certificate")
    assert rejected.reason == f"certificate from {OWN_URL!r} is not a PEM certificate"


def test_a_corrupt_pinned_file_is_named_in_the_refusal(tmp_path: Path) -> None:
    name = f"{hashlib.sha256(OWN_URL.encode()).hexdigest()}.pem"
    (tmp_path / name).write_bytes(b"garbage")
    rejected = _refused(lambda: _store(_Counting(AssertionError()), cache=tmp_path).get(OWN_URL))
    assert (rejected.status, rejected.kind) == (403, "certificate")
    assert rejected.reason == f"cached certificate {name} is not a PEM certificate"


# --- how long a failure is remembered -------------------------------------------------------------


def test_a_failure_for_good_is_answered_from_memory_for_five_minutes() -> None:
    clock = FrozenClock(T0)
    fetch = _Counting(_http_error(404))
    store = _store(fetch, clock)
    first = _refused(lambda: store.get(OWN_URL))
    clock.advance(seconds=299)
    assert store.in_memory(OWN_URL)
    again = _refused(lambda: store.get(OWN_URL))
    assert fetch.calls == 1
    assert (again.status, again.reason, again.kind) == (first.status, first.reason, first.kind)
    clock.advance(seconds=1)
    assert not store.in_memory(OWN_URL)
    _refused(lambda: store.get(OWN_URL))
    assert fetch.calls == 2


@pytest.mark.parametrize("error", [TimeoutError(), _http_error(500)], ids=["timeout", "http-500"])
def test_a_failure_that_may_pass_is_remembered_for_fifteen_seconds_only(error: Exception) -> None:
    clock = FrozenClock(T0)
    fetch = _Counting(error)
    store = _store(fetch, clock)
    assert _refused(lambda: store.get(OWN_URL)).status == 503
    clock.advance(seconds=14)
    assert _refused(lambda: store.get(OWN_URL)).status == 503
    assert fetch.calls == 1
    clock.advance(seconds=1)
    _refused(lambda: store.get(OWN_URL))
    assert fetch.calls == 2


def test_remembered_failures_are_bounded_and_the_oldest_is_forgotten_first() -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        raise _http_error(404)

    store = _store(fetch)
    for n in range(1024):
        _refused(lambda n=n: store.get(_url(n)))
    # 1024 are remembered: none is fetched again.
    _refused(lambda: store.get(_url(0)))
    assert len(fetched) == 1024
    # The 1025th pushes out the oldest (0), and is itself remembered.
    _refused(lambda: store.get(_url(1024)))
    _refused(lambda: store.get(_url(1024)))
    _refused(lambda: store.get(_url(1)))
    assert len(fetched) == 1025
    _refused(lambda: store.get(_url(0)))
    assert fetched[-1] == _url(0) and len(fetched) == 1026


# --- the cache never costs a good certificate ------------------------------------------------------


def test_a_fetched_certificate_is_cached_even_under_a_directory_not_made_yet(
    own: Own, tmp_path: Path
) -> None:
    cache = tmp_path / "a" / "b" / "certs"
    _store(lambda url: own.pem, cache=cache).get(OWN_URL)
    path = cache / f"{hashlib.sha256(OWN_URL.encode()).hexdigest()}.pem"
    assert path.read_bytes() == own.pem


def test_a_fetched_certificate_is_cached_in_a_directory_that_already_exists(own: Own, tmp_path: Path) -> None:
    _store(lambda url: own.pem, cache=tmp_path).get(OWN_URL)
    path = tmp_path / f"{hashlib.sha256(OWN_URL.encode()).hexdigest()}.pem"
    assert path.read_bytes() == own.pem
    # A restart reads it from there: no fetch.
    _store(_Counting(AssertionError("fetched again")), cache=tmp_path).get(OWN_URL)


def test_a_cache_that_cannot_be_written_still_verifies_and_leaves_nothing_behind(
    own: Own, tmp_path: Path
) -> None:
    # Where the certificate's file would go there is a directory: the rename fails.
    (tmp_path / f"{hashlib.sha256(OWN_URL.encode()).hexdigest()}.pem").mkdir()
    calls: list[str] = []
    store = _store(lambda url: calls.append(url) or own.pem, cache=tmp_path)
    data = own.message()
    msg = parse(json.dumps(data))
    SnsVerifier(certificates=store, max_age=None, clock=FrozenClock(msg.timestamp)).verify(msg)
    assert calls == [OWN_URL]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_a_refused_subscribe_url_is_named_and_counted_as_such(own: Own, tmp_path: Path) -> None:
    data = own.message(kind="SubscriptionConfirmation", SubscribeURL="https://evil.example.com/confirm")
    store = _store(lambda url: own.pem, cache=tmp_path)
    verifier = SnsVerifier(certificates=store, max_age=None, clock=FrozenClock(T0))
    rejected = _refused(lambda: verifier.check_subscribe_url(parse(json.dumps(data))))
    assert (rejected.status, rejected.kind) == (403, "subscribe_url")
    assert rejected.reason == "SubscribeURL host 'evil.example.com' is not an SNS host"


# --- what a refused certificate URL says --------------------------------------------------------------


SNS_HOST = "https://sns.us-west-1.amazonaws.com"


def _said(url: str, why: str) -> tuple[str, str]:
    return url, f"SigningCertURL {url!r} {why}"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (f"{SNS_HOST}/a b.pem", "SigningCertURL has spaces or non-ASCII characters"),
        (f"{SNS_HOST}/a\x7f.pem", "SigningCertURL has spaces or non-ASCII characters"),  # DEL
        _said(f"{SNS_HOST}\\x.pem", "has a backslash"),
        _said(f"{SNS_HOST}:99999/x.pem", "is not a valid URL"),
        _said("http://sns.us-west-1.amazonaws.com/x.pem", "is not https"),
        _said("https://a@sns.us-west-1.amazonaws.com/x.pem", "has user information"),
        _said(f"{SNS_HOST}:8443/x.pem", "uses port 8443"),
        ("https://evil.example.com/x.pem", "SigningCertURL host 'evil.example.com' is not an SNS host"),
        _said(f"{SNS_HOST}/SimpleNotificationService-x.txt", "is not a .pem file"),
    ],
    ids=["space", "del", "backslash", "bad-port", "http", "userinfo", "port", "off-host", "not-a-pem"],
)
def test_a_refused_certificate_url_is_named_and_counted_as_a_certificate_refusal(url: str, said: str) -> None:
    fetch = _Counting(AssertionError("fetched a refused URL"))
    rejected = _refused(lambda: _store(fetch).get(url))
    assert (rejected.status, rejected.kind, rejected.reason) == (403, "certificate", said)
    assert fetch.calls == 0


def test_every_printable_ascii_character_but_the_backslash_may_appear_in_a_certificate_url() -> None:
    # "!" and "~" are the ends of the printable range (the space and DEL, just outside it, are refused).
    _store(_Counting(AssertionError())).check_url(f"{SNS_HOST}/!SimpleNotificationService~.pem")


# --- what a refusal quotes of the message ------------------------------------------------------------


def test_a_refusal_quotes_the_senders_values_cut_short_so_its_reason_is_never_cut_off(own: Own) -> None:
    long_id = "m" * 100
    long_ts = "2024-01-01T00:30:00." + "0" * 30 + "Z"  # valid ISO 8601, 51 characters
    store = _store(lambda url: own.pem)

    def refusal(at: datetime, kind: str, **fields: Any) -> str:
        msg = parse(json.dumps(own.message(MessageId=long_id, Timestamp=long_ts, **fields)))
        verifier = SnsVerifier(certificates=store, max_age=timedelta(hours=1), clock=FrozenClock(at))
        rejected = _refused(lambda: verifier.verify(msg))
        assert rejected.kind == kind  # what the refusals metric counts
        return rejected.reason

    sent = datetime(2024, 1, 1, 0, 30, tzinfo=UTC)
    assert (
        refusal(sent, "signature", SignatureVersion="9" * 30) == f"unsupported SignatureVersion {'9' * 20!r}"
    )
    assert refusal(sent + timedelta(hours=2), "too_old") == (
        f"message {'m' * 80!r} is older than 1:00:00 (sent {long_ts[:40]})"
    )
    assert refusal(sent - timedelta(minutes=10), "clock_skew") == (
        f"message {'m' * 80!r} is dated in the future (sent {long_ts[:40]})"
    )
    tampered = own.message(MessageId=long_id, Timestamp=long_ts)
    tampered["Message"] = "forged"
    verifier = SnsVerifier(certificates=store, max_age=None, clock=FrozenClock(sent))
    assert _refused(lambda: verifier.verify(parse(json.dumps(tampered)))).reason == (
        f"bad signature on message {'m' * 80!r}"
    )


def test_a_message_dated_up_to_five_minutes_ahead_is_accepted_as_clock_drift(own: Own) -> None:
    data = own.message()
    msg = parse(json.dumps(data))
    store = _store(lambda url: own.pem)
    SnsVerifier(
        certificates=store, max_age=None, clock=FrozenClock(msg.timestamp - timedelta(minutes=5))
    ).verify(msg)


def test_a_good_signature_with_anything_but_base64_slipped_into_it_is_refused(own: Own) -> None:
    data = own.message()
    data["Signature"] = "*" + data["Signature"]  # a lenient decoder would drop the "*" and accept it
    msg = parse(json.dumps(data))
    verifier = SnsVerifier(
        certificates=_store(lambda url: own.pem), max_age=None, clock=FrozenClock(msg.timestamp)
    )
    rejected = _refused(lambda: verifier.verify(msg))
    assert (rejected.status, rejected.kind, rejected.reason) == (403, "signature", "Signature is not base64")


def test_a_certificate_that_was_not_valid_when_the_message_was_sent_is_refused_saying_so(own: Own) -> None:
    late = datetime(2024, 1, 1, 2, 0, tzinfo=UTC)  # the certificate expired at 01:00
    msg = parse(json.dumps(own.message(at=late)))
    verifier = SnsVerifier(certificates=_store(lambda url: own.pem), max_age=None, clock=FrozenClock(late))
    rejected = _refused(lambda: verifier.verify(msg))
    assert (rejected.status, rejected.kind, rejected.reason) == (
        403,
        "certificate",
        "signing certificate was not valid at the message's Timestamp",
    )


def test_a_certificate_without_an_rsa_key_is_refused_saying_so(own: Own) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2024, 1, 2, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    msg = parse(json.dumps(own.message()))
    verifier = SnsVerifier(
        certificates=_store(lambda url: pem), max_age=None, clock=FrozenClock(msg.timestamp)
    )
    rejected = _refused(lambda: verifier.verify(msg))
    assert (rejected.status, rejected.kind, rejected.reason) == (
        403,
        "certificate",
        "signing certificate does not hold an RSA key",
    )


def test_a_refused_topic_is_quoted_in_the_refusal_and_a_long_one_cut_short(own: Own) -> None:
    closed = SnsVerifier(certificates=_store(lambda url: own.pem), max_age=None, clock=FrozenClock(T0))
    topic = "arn:aws:sns:us-west-1:999999999999:elsewhere"
    rejected = _refused(lambda: closed.check_topic(parse(json.dumps(own.message(TopicArn=topic)))))
    assert (rejected.status, rejected.kind) == (403, "topic_not_allowed")
    assert rejected.reason == (
        f"topic {topic!r} refused: no topic is allowed (SNS_TOPIC_ARNS and every "
        "environment's alarm_topics are empty)"
    )
    long_topic = topic + "x" * 300
    rejected = _refused(lambda: closed.check_topic(parse(json.dumps(own.message(TopicArn=long_topic)))))
    # The topic is quoted up to 256 characters, and the whole reason is one line of at most 300.
    assert (
        rejected.reason
        == (
            f"topic {long_topic[:256]!r} refused: no topic is allowed (SNS_TOPIC_ARNS and every "
            "environment's alarm_topics are empty)"
        )[:300]
    )


def test_a_refusal_is_one_printable_line_of_at_most_300_characters() -> None:
    # What the log and the 4xx body carry: a control character cannot start a new log line.
    assert (
        SnsRejected("forged\nlevel=info msg=ok\x1b[0m", kind="malformed").reason
        == "forged?level=info msg=ok?[0m"
    )
    assert SnsRejected("x" * 400, kind="malformed").reason == "x" * 300


# --- the cache is written beside the certificates -------------------------------------------------


def test_the_cache_is_written_in_its_own_directory_whatever_the_system_temp_dir(
    own: Own, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /tmp is often another filesystem (a tmpfs) than the cache volume, where a rename cannot land:
    # the certificate must be written and renamed inside the cache directory itself.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "elsewhere-that-does-not-exist"))
    cache = tmp_path / "certs"
    _store(lambda url: own.pem, cache=cache).get(OWN_URL)
    path = cache / f"{hashlib.sha256(OWN_URL.encode()).hexdigest()}.pem"
    assert path.read_bytes() == own.pem
    assert [p.name for p in cache.iterdir()] == [path.name]


# --- fetching: no redirect, 200 only, bounded ---------------------------------------------------------


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/endless":  # a body that never ends: only what is asked for may be read
            self.send_response(200)
            self.end_headers()
            deadline = time.monotonic() + 30
            try:
                while time.monotonic() < deadline:
                    self.wfile.write(b"x" * 1024)
                    self.wfile.flush()
                    time.sleep(0.01)
            except OSError:
                pass
            return
        if path == "/empty":
            self.send_response(204)
            self.end_headers()
            return
        size = int(path.rsplit("/", 1)[1]) if path.startswith("/size/") else 5
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(b"x" * size)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_fetch_reads_up_to_its_limit_and_refuses_more(server: str) -> None:
    assert fetch_checked_url(f"{server}/size/10", timeout=5, limit=10) == b"x" * 10
    with pytest.raises(ResponseTooLarge):
        fetch_checked_url(f"{server}/size/11", timeout=5, limit=10)


def test_a_fetch_follows_no_redirect_and_takes_only_a_200(server: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        fetch_checked_url(f"{server}/redirect", timeout=5, limit=100)
    assert caught.value.code == 302
    with pytest.raises(OSError, match="HTTP 204"):
        fetch_checked_url(f"{server}/empty", timeout=5, limit=100)


def test_the_certificate_fetch_reads_at_most_64_kib(server: str) -> None:
    assert len(_default_fetch(f"{server}/size/65536")) == 65536
    with pytest.raises(ResponseTooLarge):
        _default_fetch(f"{server}/size/65537")


def test_an_endless_answer_is_refused_once_past_the_limit(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(ResponseTooLarge):
        fetch_checked_url(f"{server}/endless", timeout=5, limit=4096)
    assert time.monotonic() - started < 10


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that accepts the connection and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/cert.pem"
    done.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_certificate_host_that_never_answers_is_given_up_after_five_seconds(silent: str) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        _default_fetch(silent)
    assert 4 <= time.monotonic() - started < 15
    with pytest.raises(TimeoutError):
        fetch_checked_url(silent, timeout=0.5, limit=10)


@pytest.mark.parametrize(
    ("body", "kind", "status"),
    [
        (b"not json", "malformed", 400),
        (b'{"Type": "Gossip"}', "message_type", 400),
        (b'{"AlarmName": "raw delivery"}', "raw_delivery", 400),
        (
            json.dumps(
                {
                    "Type": "Notification",
                    "MessageId": "m-1",
                    "TopicArn": "arn:aws:sns:us-west-1:999999999999:someone-else",
                    "Message": "{}",
                    "Timestamp": "2026-11-24T18:00:00.000Z",
                    "SignatureVersion": "1",
                    "Signature": "AAAA",
                    "SigningCertURL": "https://sns.us-west-1.amazonaws.com/SimpleNotificationService-x.pem",
                }
            ).encode(),
            "topic_not_allowed",
            403,
        ),
    ],
)
def test_every_refusal_of_the_one_acceptance_function_says_its_kind(
    tmp_path: Path, body: bytes, kind: str, status: int
) -> None:
    """What /sns and the SQS consumer both call: the metric counts the kind the refusal names,
    never a guess from the wording of its reason."""
    from bot.clock import FrozenClock
    from bot.settings import DEFAULT_SNS_CERT_HOST_PATTERN
    from bot.sns import CertificateStore, SnsVerifier

    clock = FrozenClock(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))
    verifier = SnsVerifier(
        certificates=CertificateStore(
            host_pattern=DEFAULT_SNS_CERT_HOST_PATTERN, cache_dir=tmp_path, clock=clock
        ),
        max_age=None,
        topics=("arn:aws:sns:us-west-1:123456789012:menotime-prod-alarms",),
        clock=clock,
    )
    with pytest.raises(SnsRejected) as refused:
        verifier.accept(body)
    assert (refused.value.kind, refused.value.status) == (kind, status)
    if kind == "topic_not_allowed":
        assert refused.value.topic_arn == "arn:aws:sns:us-west-1:999999999999:someone-else"


def test_accept_verifies_without_a_thread_only_a_certificate_already_in_memory(own: Own) -> None:
    """The HTTP path asks first without fetching; only a certificate not in memory sends it off its
    event loop. Once in memory, the same message is accepted at once."""
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return own.pem

    data = own.message()
    verifier = SnsVerifier(
        certificates=_store(fetch),
        max_age=None,
        topics=(data["TopicArn"],),
        clock=FrozenClock(parse(json.dumps(data)).timestamp),
    )
    body = json.dumps(data).encode()
    with pytest.raises(CertificateNeeded) as needed:
        verifier.accept(body, may_fetch=False)
    assert str(needed.value) == data["SigningCertURL"] and fetched == []
    assert verifier.accept(body).message_id == data["MessageId"] and len(fetched) == 1
    assert verifier.accept(body, may_fetch=False).message_id == data["MessageId"] and len(fetched) == 1


def test_a_refusal_after_parsing_names_the_message_and_topic_cut_short(own: Own) -> None:
    data = own.message(MessageId="m" * 150)
    data["TopicArn"] = "arn:aws:sns:us-west-1:999999999999:" + "t" * 300
    verifier = SnsVerifier(
        certificates=_store(lambda url: own.pem), max_age=None, topics=("x",), clock=FrozenClock(T0)
    )
    rejected = _refused(lambda: verifier.accept(json.dumps(data)))
    assert rejected.kind == "topic_not_allowed"
    assert rejected.message_id == "m" * 100 and rejected.topic_arn == data["TopicArn"][:256]
    unparsed = _refused(lambda: verifier.accept(b"[]"))
    assert (unparsed.message_id, unparsed.topic_arn) == (None, None)  # nothing to name
