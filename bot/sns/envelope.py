"""The SNS envelope: ``parse`` reads a request body into an ``SnsMessage`` (400 when it is not one),
``string_to_sign`` gives the bytes SNS signed; ``SnsRejected`` is the refusal every check raises."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

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


# Why a message was refused, as the refusals metric counts it (a bounded label; the reason is free text).
RefusalKind = Literal[
    "oversize",
    "malformed",
    "message_type",
    "raw_delivery",
    "topic_not_allowed",
    "too_old",
    "clock_skew",
    "signature",
    "certificate",
    "subscribe_url",
]


class SnsRejected(Exception):
    """The message is refused. ``reason`` is one line for the log and the 4xx body; ``kind`` is what
    the refusals metric counts."""

    def __init__(self, reason: str, status: int = 403, *, kind: RefusalKind) -> None:
        # Reasons quote attacker-supplied values: keep them on one printable, bounded line.
        reason = "".join(c if c.isprintable() else "?" for c in reason)[:300]
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.kind: RefusalKind = kind
        # The message's own ids, once it parsed: who sent what, for the log.
        self.message_id: str | None = None
        self.topic_arn: str | None = None


def _malformed(reason: str, kind: RefusalKind = "malformed") -> SnsRejected:
    return SnsRejected(reason, status=400, kind=kind)


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
            raise _malformed("not an SNS envelope (raw message delivery is not accepted)", "raw_delivery")
        raise _malformed(f"unknown SNS message Type {str(kind)[:60]!r}", "message_type")
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
