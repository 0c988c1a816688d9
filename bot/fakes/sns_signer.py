"""SNS messages signed as AWS signs them, with a key and a self-signed certificate made on the spot.

The certificate is pinned where :class:`bot.sns.CertificateStore` looks before fetching (the
air-gapped mechanism: ``<sha256 of SigningCertURL>.pem`` in ``SNS_CERT_CACHE_DIR``), so the bot
verifies these messages exactly as it verifies AWS's, offline::

    own = Own(not_before=now - timedelta(hours=1), not_after=now + timedelta(hours=1))
    pin_certificate(cache_dir, OWN_URL, own.pem)
    envelope = own.message(TopicArn=topic, Message=json.dumps(alarm), at=now)
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from bot.sns import parse, string_to_sign

__all__ = ["NOT_AFTER", "NOT_BEFORE", "OWN_URL", "TOPIC", "Own", "pin_certificate", "sns_timestamp"]

OWN_URL = "https://sns.us-west-1.amazonaws.com/SimpleNotificationService-test.pem"
"""The SigningCertURL of :class:`Own`'s messages: on an SNS host, so the URL rule lets it through."""
TOPIC = "arn:aws:sns:us-west-1:123456789012:menotime-alarms"
NOT_BEFORE = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
NOT_AFTER = datetime(2024, 1, 1, 1, 0, tzinfo=UTC)  # a one-hour certificate by default


def sns_timestamp(moment: datetime) -> str:
    """``moment`` as SNS writes a Timestamp: ISO 8601 in UTC, milliseconds, ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def pin_certificate(cache: Path, url: str, pem: bytes) -> Path:
    """Put ``pem`` in the certificate cache ``cache`` under the name CertificateStore gives ``url``."""
    path = cache / f"{hashlib.sha256(url.encode()).hexdigest()}.pem"
    path.write_bytes(pem)
    return path


class Own:
    """A self-signed certificate (one hour by default) and a key to sign messages with.

    Making the RSA key is the slow part (a good fraction of a second): make one and reuse it.
    """

    def __init__(self, *, not_before: datetime = NOT_BEFORE, not_after: datetime = NOT_AFTER) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = cert.public_bytes(serialization.Encoding.PEM)

    def message(
        self,
        *,
        kind: str = "Notification",
        version: str = "2",
        at: datetime = NOT_BEFORE + timedelta(minutes=30),
        digest: type[hashes.HashAlgorithm] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """An SNS envelope of ``kind`` sent ``at``, ``fields`` merged in before it is signed with
        SignatureVersion ``version`` (``digest`` overrides the hash that version calls for)."""
        data: dict[str, Any] = {
            "Type": kind,
            "MessageId": "7f1c8e2a-0000-4000-8000-000000000001",
            "TopicArn": TOPIC,
            "Message": '{"AlarmName":"menotime-prod-cpu-high","NewStateValue":"ALARM"}',
            "Timestamp": sns_timestamp(at),
            "SignatureVersion": version,
            "Signature": "",
            "SigningCertURL": OWN_URL,
        }
        if kind != "Notification":
            data["Token"] = "2336412f37fb687f5d51e6e2"
            data["SubscribeURL"] = (
                f"https://sns.us-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}"
            )
        data.update(fields)
        digest = digest or (hashes.SHA1 if version == "1" else hashes.SHA256)
        signed = self.key.sign(string_to_sign(parse(json.dumps(data))), padding.PKCS1v15(), digest())
        data["Signature"] = base64.b64encode(signed).decode()
        return data
