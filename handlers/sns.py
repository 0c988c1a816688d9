"""``POST /sns``: the SNS HTTP/S subscription endpoint (DESIGN §6).

Refusals are 4xx (SNS does not retry them) with a log line saying why, and have no side effect.
A notification is answered 200 only once it is committed to the inbox; a database failure is a
503, which SNS retries, and the inbox's unique MessageId drops the copies.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import urlsplit

import structlog
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.core import Core
from bot.sns import (
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    CertificateStore,
    SnsMessage,
    SnsRejected,
    SnsVerifier,
    fetch_checked_url,
    parse,
)
from bot.store.inbox import HTTP, InboxWriter, row_values

log = structlog.get_logger("menotime.sns")

MAX_BODY_BYTES = 256 * 1024  # SNS messages are at most 256 KiB
CONFIRM_TIMEOUT_SECONDS = 5.0
_MAX_CONFIRM_RESPONSE = 64 * 1024


def confirm_subscription(url: str) -> None:
    """GETs the SubscribeURL, which confirms the subscription. Raises on anything but HTTP 200."""
    fetch_checked_url(url, timeout=CONFIRM_TIMEOUT_SECONDS, limit=_MAX_CONFIRM_RESPONSE)


def build_verifier(core: Core) -> SnsVerifier:
    settings = core.settings
    certificates = CertificateStore(host_pattern=settings.sns_cert_host_pattern, cache_dir=settings.sns_cert_cache_dir)
    return SnsVerifier(certificates=certificates, max_age=timedelta(seconds=settings.sns_max_age_seconds),
                       topics=settings.sns_topic_arns, clock=core.clock)


def sns_endpoint(
    core: Core, *, confirm: Callable[[str], None] | None = None, on_stored: Callable[[], None] | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint. ``confirm`` GETs a SubscribeURL (default: ``confirm_subscription``, looked up
    at call time)."""
    verifier = build_verifier(core)
    writer = InboxWriter(core.db)  # group commit: one INSERT and one commit for a burst of messages
    host = re.compile(core.settings.sns_cert_host_pattern)

    def refuse(status: int, reason: str, msg: SnsMessage | None = None) -> Response:
        core.metrics.sns_refusals.labels(refusal_kind(status, reason)).inc()
        log.warning("sns_refused", status=status, reason=reason,
                    message_id=msg.message_id[:100] if msg else None, topic_arn=msg.topic_arn[:256] if msg else None)
        return PlainTextResponse(reason, status_code=status)

    async def endpoint(request: Request) -> Response:
        body = await _read_capped(request)
        if body is None:
            return refuse(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            msg = parse(body)
            if verifier.certificates.in_memory(msg.signing_cert_url):
                verifier.verify(msg)  # tens of microseconds: cheaper than a hop to a thread
            else:
                await run_in_threadpool(verifier.verify, msg)  # it may read or fetch the certificate
        except SnsRejected as rejected:
            return refuse(rejected.status, rejected.reason)

        if msg.type == SUBSCRIPTION_CONFIRMATION:
            if not verifier.may_confirm(msg):
                return refuse(403, f"topic {msg.topic_arn[:256]!r} is not in SNS_TOPIC_ARNS; subscription not confirmed",
                              msg)
            url = msg.subscribe_url or ""
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname or not host.fullmatch(parts.hostname):
                return refuse(403, f"SubscribeURL {url[:200]!r} is not https on an SNS host", msg)
            try:
                await run_in_threadpool(confirm or confirm_subscription, url)
            except Exception as exc:  # noqa: BLE001 - SNS retries a 5xx; the log says why
                log.error("sns_confirm_failed", topic_arn=msg.topic_arn, error=type(exc).__name__)
                return PlainTextResponse("could not confirm the subscription", status_code=503)
            log.info("sns_subscription_confirmed", topic_arn=msg.topic_arn, message_id=msg.message_id)
            return PlainTextResponse("confirmed")

        if core.settings.sns_topic_arns and not verifier.may_confirm(msg):
            # With an allow-list, only its topics are heard (defence in depth: a subscription from
            # another topic could only exist if someone confirmed it behind the bot's back).
            return refuse(403, f"topic {msg.topic_arn[:256]!r} is not in SNS_TOPIC_ARNS", msg)

        # Notification or UnsubscribeConfirmation: stored first, answered after the commit.
        try:
            new = await asyncio.wrap_future(writer.submit(row_values(
                msg=msg, source=HTTP, received_at=core.clock.now(), body=body.decode("utf-8"))))
        except SQLAlchemyError as exc:
            log.error("sns_store_failed", message_id=msg.message_id, error=type(exc).__name__)
            return PlainTextResponse("could not store the message; retry", status_code=503)
        if not new:
            log.info("sns_duplicate_dropped", message_id=msg.message_id, topic_arn=msg.topic_arn)
            return PlainTextResponse("duplicate")
        if msg.type == NOTIFICATION:
            log.info("sns_stored", message_id=msg.message_id, topic_arn=msg.topic_arn)
            if on_stored:
                on_stored()  # wake the worker that posts it to Slack
        else:
            log.warning("sns_unsubscribed", message_id=msg.message_id, topic_arn=msg.topic_arn)
        return PlainTextResponse("stored")

    return endpoint


async def _read_capped(request: Request) -> bytes | None:
    """The body, or None when it is larger than MAX_BODY_BYTES (without reading more than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# Bounded labels for the refusals metric (the reasons themselves are free text, for the log).
_REFUSAL_KINDS = (
    ("larger than", "oversize"), ("signature", "signature"), ("certificate", "certificate"),
    ("signingcerturl", "certificate"), ("old", "too_old"), ("future", "clock_skew"), ("raw", "raw_delivery"),
    ("sns_topic_arns", "topic_not_allowed"), ("subscribeurl", "subscribe_url"), ("json", "malformed"),
    ("message type", "message_type"), ("x-amz-sns", "message_type"),
)


def refusal_kind(status: int, reason: str) -> str:
    lowered = reason.lower()
    for needle, kind in _REFUSAL_KINDS:
        if needle in lowered:
            return kind
    return "malformed" if status == 400 else "other"
