"""Verification of SNS HTTP/S messages (DESIGN §6), independent of any web framework.

``parse`` turns a request body into an ``SnsMessage`` (400 when it is not an SNS envelope),
``SnsVerifier.check_topic`` refuses topics outside the allow-list (``allowed_topics``: closed when
empty), ``SnsVerifier.verify`` checks signature, certificate and age (403 when anything is off). The
caller logs ``SnsRejected.reason`` and answers ``SnsRejected.status``: SNS does not retry a 4xx.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot.clock import Clock, SystemClock

if TYPE_CHECKING:
    from bot.config import Config
    from bot.settings import Settings

log = structlog.get_logger("menotime.sns")

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"

_COMMON = (
    "Type",
    "MessageId",
    "TopicArn",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
)
_REQUIRED: dict[str, tuple[str, ...]] = {
    NOTIFICATION: _COMMON,
    SUBSCRIPTION_CONFIRMATION: (*_COMMON, "SubscribeURL", "Token"),
    UNSUBSCRIBE_CONFIRMATION: (*_COMMON, "SubscribeURL", "Token"),
}
# The signed fields in the order AWS signs them (Subject only when present).
_SIGNED_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SIGNED_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}

FUTURE_SKEW = timedelta(minutes=5)  # clocks drift; an SNS timestamp further ahead than this is forged
FETCH_TIMEOUT_SECONDS = 5.0
_MAX_CERT_BYTES = 64 * 1024  # a signing certificate is ~2 KiB; never read an endless body
FAILURE_TTL = timedelta(
    minutes=5
)  # a certificate URL that failed for good is not fetched again for this long
TRANSIENT_FAILURE_TTL = timedelta(
    seconds=15
)  # after a timeout, a network error or a 5xx: 503s, then a new try
_MAX_REMEMBERED_FAILURES = 1024  # distinct failed URLs remembered (oldest forgotten first)

ALARM_PATH_CLOSED = (
    "the SNS alarm path is closed: every notification is refused until SNS_TOPIC_ARNS or an "
    "environment's alarm_topics names the topics the bot may hear"
)


def allowed_topics(*, settings: Settings, config: Config) -> frozenset[str]:
    """The SNS topics the bot hears: ``SNS_TOPIC_ARNS`` plus every environment's ``alarm_topics``.
    Empty means none: the alarm path is closed (a genuinely AWS-signed message from anyone's topic
    must not resolve an alarm thread)."""
    return frozenset(settings.sns_topic_arns).union(
        *(env.alarm_topics for env in config.environments.values())
    )


class SnsRejected(Exception):
    """The message is refused. ``reason`` is one line for the log and the 4xx body."""

    def __init__(self, reason: str, status: int = 403, *, kind: str | None = None) -> None:
        # Reasons quote attacker-supplied values: keep them on one printable, bounded line.
        reason = "".join(c if c.isprintable() else "?" for c in reason)[:300]
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.kind = kind  # the bounded metric label, when the raiser knows it


def _malformed(reason: str) -> SnsRejected:
    return SnsRejected(reason, status=400)


@dataclass(frozen=True)
class SnsMessage:
    type: str
    message_id: str
    topic_arn: str
    subject: str | None
    message: str
    timestamp: datetime  # aware, UTC
    signature_version: str
    signature: str  # base64, as sent
    signing_cert_url: str
    subscribe_url: str | None
    token: str | None
    raw: dict[str, Any]  # everything SNS sent, as sent (UnsubscribeURL, MessageAttributes: never read)


def parse(body: bytes | str) -> SnsMessage:
    """The SNS envelope in ``body``; SnsRejected(400) for anything that is not one."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise _malformed("body is not JSON") from None
    if not isinstance(data, dict):
        raise _malformed("body is not a JSON object")
    kind = data.get("Type")
    if not isinstance(kind, str) or kind not in _REQUIRED:
        # Raw message delivery posts the bare message: it carries no envelope and no signature.
        if "Type" not in data:
            raise _malformed("not an SNS envelope (raw message delivery is not accepted)")
        raise _malformed(f"unknown SNS message Type {str(kind)[:60]!r}")
    missing = [name for name in _REQUIRED[kind] if not isinstance(data.get(name), str)]
    if missing:
        raise _malformed(f"{kind} lacks string field(s) {', '.join(missing)}")
    for name in ("Subject", "SubscribeURL", "Token", "UnsubscribeURL"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise _malformed(f"{name} is not a string")
    if data.get("MessageAttributes") is not None and not isinstance(data["MessageAttributes"], dict):
        raise _malformed("MessageAttributes is not an object")
    return SnsMessage(
        type=kind,
        message_id=data["MessageId"],
        topic_arn=data["TopicArn"],
        subject=data.get("Subject"),
        message=data["Message"],
        timestamp=_timestamp(data["Timestamp"]),
        signature_version=data["SignatureVersion"],
        signature=data["Signature"],
        signing_cert_url=data["SigningCertURL"],
        subscribe_url=data.get("SubscribeURL"),
        token=data.get("Token"),
        raw=data,
    )


def _timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _malformed(f"Timestamp {value[:40]!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise _malformed("Timestamp has no time zone")
    return moment.astimezone(UTC)


def string_to_sign(msg: SnsMessage) -> bytes:
    """The bytes SNS signed: ``Name\\nValue\\n`` per signed field, in AWS's order."""
    values = {
        "Message": msg.message,
        "MessageId": msg.message_id,
        "Subject": msg.subject,
        "SubscribeURL": msg.subscribe_url,
        # The text SNS sent, not a re-rendering of the parsed datetime (precision, "Z" vs "+00:00").
        "Timestamp": msg.raw["Timestamp"],
        "Token": msg.token,
        "TopicArn": msg.topic_arn,
        "Type": msg.type,
    }
    names = _SIGNED_NOTIFICATION if msg.type == NOTIFICATION else _SIGNED_CONFIRMATION
    parts = [f"{name}\n{values[name]}\n" for name in names if values[name] is not None]
    return "".join(parts).encode("utf-8")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could lead off the allowed host: the URL we checked is the only one we fetch.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class ResponseTooLarge(OSError):
    """A fetched URL answered more than the bot reads: refused for good, not retried."""


def fetch_checked_url(url: str, *, timeout: float, limit: int) -> bytes:
    """GET a URL already checked against the SNS host rule: no redirects, HTTP 200 only, at most
    ``limit`` bytes (more is an error)."""
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(url, timeout=timeout) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        data: bytes = response.read(limit + 1)
    if len(data) > limit:
        raise ResponseTooLarge("response too large")
    return data


def check_sns_url(url: str, *, field: str, host: re.Pattern[str], kind: str) -> SplitResult:
    """SnsRejected(403) unless ``url`` is https on an SNS host (``host``), port 443 or none, with no
    user information, backslash, space or non-ASCII character: the rule for every URL the bot
    fetches because a message named it (``SigningCertURL``, ``SubscribeURL``)."""
    if not url or any(not (0x21 <= ord(c) <= 0x7E) for c in url):
        raise SnsRejected(f"{field} has spaces or non-ASCII characters", kind=kind)
    # A backslash is a path separator to some URL parsers and part of the host to others.
    if "\\" in url:
        raise SnsRejected(f"{field} {url!r} has a backslash", kind=kind)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        raise SnsRejected(f"{field} {url!r} is not a valid URL", kind=kind) from None
    if parts.scheme != "https":
        raise SnsRejected(f"{field} {url!r} is not https", kind=kind)
    # userinfo ("a@host") is where URL parsers disagree on the host: refuse it outright.
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise SnsRejected(f"{field} {url!r} has user information", kind=kind)
    if port not in (None, 443):
        raise SnsRejected(f"{field} {url!r} uses port {port}", kind=kind)
    if not parts.hostname or not host.fullmatch(parts.hostname):
        raise SnsRejected(f"{field} host {parts.hostname!r} is not an SNS host", kind=kind)
    return parts


def _fetch_refusal(url: str, exc: Exception) -> SnsRejected:
    """Why a certificate fetch failed, as a refusal: 403 for good (HTTP 4xx, not a certificate, too
    large), 503 for what may pass (timeouts, network errors, HTTP 5xx), so SNS sends it again."""
    if isinstance(exc, SnsRejected):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        status = 503 if exc.code >= 500 else 403
        return SnsRejected(
            f"could not fetch SigningCertURL {url!r}: HTTP {exc.code}", status, kind="certificate"
        )
    definitive = isinstance(exc, ResponseTooLarge)
    return SnsRejected(
        f"could not fetch SigningCertURL {url!r}: {type(exc).__name__}",
        403 if definitive else 503,
        kind="certificate",
    )


def _default_fetch(url: str) -> bytes:
    return fetch_checked_url(url, timeout=FETCH_TIMEOUT_SECONDS, limit=_MAX_CERT_BYTES)


class CertificateStore:
    """SNS signing certificates by URL: memory, then ``<cache_dir>/<sha256(url)>.pem``, then fetch.

    A file already in the cache directory is trusted as is: that is how air-gapped installs and
    tests pin certificates. A URL whose fetch failed for good (HTTP 4xx, not a certificate) is
    refused (403) from memory for ``failure_ttl``: a flood of forged messages naming it costs one
    fetch, not one each. A failure that may pass (a timeout, a network error, HTTP 5xx) answers 503,
    which SNS retries, and is remembered only for ``transient_ttl``: a blip on AWS's real
    certificate URL must not cost genuine alarms, nor let a forged message poison that URL for long.
    """

    def __init__(
        self,
        *,
        host_pattern: str,
        cache_dir: Path | None,
        fetch: Callable[[str], bytes] | None = None,
        clock: Clock | None = None,
        failure_ttl: timedelta = FAILURE_TTL,
        transient_ttl: timedelta = TRANSIENT_FAILURE_TTL,
    ) -> None:
        self.host = re.compile(host_pattern)
        self._cache_dir = cache_dir
        self._fetch = fetch or _default_fetch
        self._clock = clock or SystemClock()
        self._failure_ttl, self._transient_ttl = failure_ttl, transient_ttl
        self._memory: dict[str, x509.Certificate] = {}
        self._failures: OrderedDict[str, tuple[datetime, SnsRejected]] = OrderedDict()

    def cache_path(self, url: str) -> Path | None:
        if self._cache_dir is None:
            return None
        return self._cache_dir / f"{hashlib.sha256(url.encode('utf-8')).hexdigest()}.pem"

    def check_url(self, url: str) -> None:
        """SnsRejected(403) unless ``url`` passes ``check_sns_url`` and names a .pem file."""
        parts = check_sns_url(url, field="SigningCertURL", host=self.host, kind="certificate")
        if not parts.path.endswith(".pem") or parts.query or parts.fragment:
            raise SnsRejected(f"SigningCertURL {url!r} is not a .pem file", kind="certificate")

    def in_memory(self, url: str) -> bool:
        """Whether ``url`` is answered from memory (its certificate, or its recent failure): verifying
        then neither reads nor fetches."""
        return url in self._memory or self._recent_failure(url) is not None

    def get(self, url: str) -> x509.Certificate:
        self.check_url(url)
        cert = self._memory.get(url)
        if cert is not None:
            return cert
        failed = self._recent_failure(url)
        if failed is not None:
            # A new exception each time: re-raising one instance would grow its traceback forever.
            raise SnsRejected(failed.reason, failed.status, kind=failed.kind)
        path = self.cache_path(url)
        if path is not None and path.is_file():
            cert = self._load(path.read_bytes(), f"cached certificate {path.name}")
        else:
            try:
                pem = self._fetch(url)
                cert = self._load(pem, f"certificate from {url!r}")
            except Exception as exc:  # noqa: BLE001 - any fetch failure is a refusal, said in one line
                rejected = _fetch_refusal(url, exc)
                self._remember_failure(url, rejected)
                raise rejected from None
            if path is not None:
                self._store(path, pem)
        self._memory[url] = cert
        return cert

    def _recent_failure(self, url: str) -> SnsRejected | None:
        entry = self._failures.get(url)
        if entry is None:
            return None
        until, rejected = entry
        if self._clock.now() >= until:
            self._failures.pop(url, None)
            return None
        return rejected

    def _remember_failure(self, url: str, rejected: SnsRejected) -> None:
        ttl = self._transient_ttl if rejected.status >= 500 else self._failure_ttl
        self._failures.pop(url, None)
        self._failures[url] = (self._clock.now() + ttl, rejected)
        while len(self._failures) > _MAX_REMEMBERED_FAILURES:
            self._failures.popitem(last=False)  # bounded: URLs are attacker-chosen
        log.warning(
            "sns_cert_fetch_failed",
            url=url[:200],
            reason=rejected.reason,
            status=rejected.status,
            refused_for_seconds=int(ttl.total_seconds()),
        )

    @staticmethod
    def _load(pem: bytes, what: str) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise SnsRejected(f"{what} is not a PEM certificate", kind="certificate") from None

    @staticmethod
    def _store(path: Path, pem: bytes) -> None:
        # Write-then-rename: a concurrent reader sees the whole certificate or none of it.
        # A cache that cannot be written costs a fetch next time, never a refused message.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pem")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(pem)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("sns_cert_cache_write_failed", path=str(path), error=str(exc))


class SnsVerifier:
    def __init__(
        self,
        *,
        certificates: CertificateStore,
        max_age: timedelta | None,
        topics: Collection[str] = (),
        clock: Clock,
    ) -> None:
        self._certificates = certificates
        self.certificates = certificates
        self._max_age = max_age
        self._topics = frozenset(topics)
        self._clock = clock

    def verify(self, msg: SnsMessage) -> None:
        """Returns when SNS signed ``msg``; SnsRejected(403) otherwise."""
        algorithm = _HASHES.get(msg.signature_version)
        if algorithm is None:
            raise SnsRejected(f"unsupported SignatureVersion {msg.signature_version[:20]!r}")
        # Cheap checks first: a stale or future message never costs a certificate fetch.
        now, sent = self._clock.now(), msg.raw["Timestamp"][:40]
        if self._max_age is not None and now - msg.timestamp > self._max_age:
            raise SnsRejected(f"message {msg.message_id[:80]!r} is older than {self._max_age} (sent {sent})")
        if msg.timestamp - now > FUTURE_SKEW:
            raise SnsRejected(f"message {msg.message_id[:80]!r} is dated in the future (sent {sent})")
        try:
            signature = base64.b64decode(msg.signature, validate=True)
        except (binascii.Error, ValueError):
            raise SnsRejected("Signature is not base64") from None
        cert = self._certificates.get(msg.signing_cert_url)
        if not cert.not_valid_before_utc <= msg.timestamp <= cert.not_valid_after_utc:
            raise SnsRejected("signing certificate was not valid at the message's Timestamp")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRejected("signing certificate does not hold an RSA key")
        try:
            key.verify(signature, string_to_sign(msg), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsRejected(f"bad signature on message {msg.message_id[:80]!r}") from None

    def check_topic(self, msg: SnsMessage) -> None:
        """SnsRejected(403) unless ``msg``'s topic is allow-listed; an empty allow-list refuses all.
        Checked before the signature: a refused topic never costs a certificate fetch."""
        if msg.topic_arn in self._topics:
            return
        topic = msg.topic_arn[:256]
        if not self._topics:
            raise SnsRejected(
                f"topic {topic!r} refused: no topic is allowed (SNS_TOPIC_ARNS and every "
                "environment's alarm_topics are empty)",
                kind="topic_not_allowed",
            )
        raise SnsRejected(
            f"topic {topic!r} is not in SNS_TOPIC_ARNS or an environment's alarm_topics",
            kind="topic_not_allowed",
        )

    def check_subscribe_url(self, msg: SnsMessage) -> str:
        """The SubscribeURL, once it passes the same rule as SigningCertURL; SnsRejected(403) otherwise."""
        url = msg.subscribe_url or ""
        check_sns_url(url, field="SubscribeURL", host=self._certificates.host, kind="subscribe_url")
        return url
