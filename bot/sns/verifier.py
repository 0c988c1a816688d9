"""Whether SNS signed a message, and whether its topic is one the bot hears."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot.clock import Clock
from bot.sns.certificates import CertificateStore, check_sns_url
from bot.sns.envelope import SUBSCRIPTION_CONFIRMATION, SnsMessage, SnsRejected, parse, string_to_sign

if TYPE_CHECKING:
    from bot.config import Config
    from bot.settings import Settings


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}

FUTURE_SKEW = timedelta(minutes=5)  # clocks drift; an SNS timestamp further ahead than this is forged

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


class CertificateNeeded(Exception):
    """Verifying the message would read or fetch its signing certificate."""


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

    def accept(self, body: bytes | str, *, may_fetch: bool = True) -> SnsMessage:
        """The one way a message gets in, over HTTP or from the queue: an SNS envelope, from a topic the
        bot hears (checked first: a refused topic costs no certificate fetch), signed by SNS, and for a
        subscription confirmation a SubscribeURL that passes the SigningCertURL rule. SnsRejected with
        its kind otherwise. ``may_fetch=False``: CertificateNeeded instead of reading or fetching a
        certificate not in memory (the HTTP path then verifies off its event loop)."""
        msg = parse(body)
        try:
            self.check_topic(msg)
            if not may_fetch and not self.certificates.in_memory(msg.signing_cert_url):
                raise CertificateNeeded(msg.signing_cert_url)
            self.verify(msg)
            if msg.type == SUBSCRIPTION_CONFIRMATION:
                self.check_subscribe_url(msg)
        except SnsRejected as rejected:
            rejected.message_id, rejected.topic_arn = msg.message_id[:100], msg.topic_arn[:256]
            raise
        return msg

    def verify(self, msg: SnsMessage) -> None:
        """Returns when SNS signed ``msg``; SnsRejected(403) otherwise."""
        algorithm = _HASHES.get(msg.signature_version)
        if algorithm is None:
            raise SnsRejected(
                f"unsupported SignatureVersion {msg.signature_version[:20]!r}", kind="signature"
            )
        # Cheap checks first: a stale or future message never costs a certificate fetch.
        now, sent = self._clock.now(), msg.raw["Timestamp"][:40]
        if self._max_age is not None and now - msg.timestamp > self._max_age:
            raise SnsRejected(
                f"message {msg.message_id[:80]!r} is older than {self._max_age} (sent {sent})", kind="too_old"
            )
        if msg.timestamp - now > FUTURE_SKEW:
            raise SnsRejected(
                f"message {msg.message_id[:80]!r} is dated in the future (sent {sent})", kind="clock_skew"
            )
        try:
            signature = base64.b64decode(msg.signature, validate=True)
        except (binascii.Error, ValueError):
            raise SnsRejected("Signature is not base64", kind="signature") from None
        cert = self._certificates.get(msg.signing_cert_url)
        if not cert.not_valid_before_utc <= msg.timestamp <= cert.not_valid_after_utc:
            raise SnsRejected(
                "signing certificate was not valid at the message's Timestamp", kind="certificate"
            )
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRejected("signing certificate does not hold an RSA key", kind="certificate")
        try:
            key.verify(signature, string_to_sign(msg), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsRejected(f"bad signature on message {msg.message_id[:80]!r}", kind="signature") from None

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
