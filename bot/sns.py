"""Verification of SNS HTTP/S messages (DESIGN §6), independent of any web framework.

``parse`` turns a request body into an ``SnsMessage`` (400 when it is not an SNS envelope),
``SnsVerifier.verify`` checks signature, certificate and age (403 when anything is off). The
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
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot.clock import Clock

log = structlog.get_logger("menotime.sns")

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"

_COMMON = ("Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion", "Signature", "SigningCertURL")
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


class SnsRejected(Exception):
    """The message is refused. ``reason`` is one line for the log and the 4xx body."""

    def __init__(self, reason: str, status: int = 403) -> None:
        # Reasons quote attacker-supplied values: keep them on one printable, bounded line.
        reason = "".join(c if c.isprintable() else "?" for c in reason)[:300]
        super().__init__(reason)
        self.reason = reason
        self.status = status


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
    unsubscribe_url: str | None
    message_attributes: dict[str, Any]
    raw: dict[str, Any]


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
    attributes = data.get("MessageAttributes")
    attributes = {} if attributes is None else attributes
    if not isinstance(attributes, dict):
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
        unsubscribe_url=data.get("UnsubscribeURL"),
        message_attributes=attributes,
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


def fetch_checked_url(url: str, *, timeout: float, limit: int) -> bytes:
    """GET a URL already checked against the SNS host rule: no redirects, HTTP 200 only, at most
    ``limit`` bytes (more is an error)."""
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(url, timeout=timeout) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        data = response.read(limit + 1)
    if len(data) > limit:
        raise OSError("response too large")
    return data


def _default_fetch(url: str) -> bytes:
    return fetch_checked_url(url, timeout=FETCH_TIMEOUT_SECONDS, limit=_MAX_CERT_BYTES)


class CertificateStore:
    """SNS signing certificates by URL: memory, then ``<cache_dir>/<sha256(url)>.pem``, then fetch.

    A file already in the cache directory is trusted as is: that is how air-gapped installs and
    tests pin certificates.
    """

    def __init__(
        self, *, host_pattern: str, cache_dir: Path | None, fetch: Callable[[str], bytes] | None = None
    ) -> None:
        self._host = re.compile(host_pattern)
        self._cache_dir = cache_dir
        self._fetch = fetch or _default_fetch
        self._memory: dict[str, x509.Certificate] = {}

    def cache_path(self, url: str) -> Path | None:
        if self._cache_dir is None:
            return None
        return self._cache_dir / f"{hashlib.sha256(url.encode('utf-8')).hexdigest()}.pem"

    def check_url(self, url: str) -> None:
        """SnsRejected(403) unless ``url`` is https, on an allowed host, port 443, ending in .pem."""
        if not url or any(not (0x21 <= ord(c) <= 0x7E) for c in url):
            raise SnsRejected("SigningCertURL has spaces or non-ASCII characters")
        try:
            parts = urlsplit(url)
            port = parts.port  # raises on a non-numeric or out-of-range port
        except ValueError:
            raise SnsRejected(f"SigningCertURL {url!r} is not a valid URL") from None
        if parts.scheme != "https":
            raise SnsRejected(f"SigningCertURL {url!r} is not https")
        # userinfo ("a@host") is where URL parsers disagree on the host: refuse it outright.
        if "@" in parts.netloc or parts.username is not None or parts.password is not None:
            raise SnsRejected(f"SigningCertURL {url!r} has user information")
        if port not in (None, 443):
            raise SnsRejected(f"SigningCertURL {url!r} uses port {port}")
        if not parts.hostname or not self._host.fullmatch(parts.hostname):
            raise SnsRejected(f"SigningCertURL host {parts.hostname!r} is not an SNS host")
        if not parts.path.endswith(".pem") or parts.query or parts.fragment:
            raise SnsRejected(f"SigningCertURL {url!r} is not a .pem file")

    def in_memory(self, url: str) -> bool:
        """Whether ``url``'s certificate is already loaded: verifying then neither reads nor fetches."""
        return url in self._memory

    def get(self, url: str) -> x509.Certificate:
        self.check_url(url)
        cert = self._memory.get(url)
        if cert is not None:
            return cert
        path = self.cache_path(url)
        if path is not None and path.is_file():
            cert = self._load(path.read_bytes(), f"cached certificate {path.name}")
        else:
            try:
                pem = self._fetch(url)
            except SnsRejected:
                raise
            except Exception as exc:  # noqa: BLE001 - any fetch failure is a refusal, said in one line
                raise SnsRejected(f"could not fetch SigningCertURL {url!r}: {type(exc).__name__}") from None
            cert = self._load(pem, f"certificate from {url!r}")
            if path is not None:
                self._store(path, pem)
        self._memory[url] = cert
        return cert

    @staticmethod
    def _load(pem: bytes, what: str) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise SnsRejected(f"{what} is not a PEM certificate") from None

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

    def may_confirm(self, msg: SnsMessage) -> bool:
        """Subscriptions are confirmed only for allow-listed topics."""
        return msg.topic_arn in self._topics
