"""``POST /sns``: the SNS HTTP/S subscription endpoint (DESIGN §6).

Refusals are 4xx (SNS does not retry them) with a log line saying why, and have no side effect.
Only allow-listed topics are heard (``bot.sns.allowed_topics``); with none, every message is refused.
A notification is answered 200 only once it is committed to the inbox; a database failure is a
503, which SNS retries, and the inbox's unique MessageId drops the copies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.core import Core
from bot.sns import (
    ALARM_PATH_CLOSED,
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    CertificateNeeded,
    CertificateStore,
    SnsRejected,
    SnsVerifier,
    allowed_topics,
    fetch_checked_url,
)
from bot.store.inbox import HTTP, InboxWriter, row_values
from handlers.bodies import read_capped

log = structlog.get_logger("menotime.sns")

MAX_BODY_BYTES = 256 * 1024  # SNS messages are at most 256 KiB
CONFIRM_TIMEOUT_SECONDS = 5.0
_MAX_CONFIRM_RESPONSE = 64 * 1024


def confirm_subscription(url: str) -> None:
    """GETs the SubscribeURL, which confirms the subscription. Raises on anything but HTTP 200."""
    fetch_checked_url(url, timeout=CONFIRM_TIMEOUT_SECONDS, limit=_MAX_CONFIRM_RESPONSE)


def build_verifier(core: Core, *, age_limit: bool = True) -> SnsVerifier:
    """The verifier of both SNS paths: the allow-listed topics, the certificate rules, and (for
    ``POST /sns``, not for the queue, where messages may wait) the age limit."""
    settings = core.settings
    certificates = CertificateStore(
        host_pattern=settings.sns_cert_host_pattern, cache_dir=settings.sns_cert_cache_dir, clock=core.clock
    )
    max_age = timedelta(seconds=settings.sns_max_age_seconds) if age_limit else None
    return SnsVerifier(
        certificates=certificates,
        max_age=max_age,
        topics=allowed_topics(settings=settings, config=core.config),
        clock=core.clock,
    )


def warn_if_closed(core: Core) -> bool:
    """At start-up: one warning line when no topic is allow-listed (every notification will be
    refused). True when the alarm path is open."""
    if allowed_topics(settings=core.settings, config=core.config):
        return True
    log.warning("sns_alarm_path_closed", detail=ALARM_PATH_CLOSED)
    return False


def sns_endpoint(
    core: Core, *, confirm: Callable[[str], None] | None = None, on_stored: Callable[[], None] | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint. ``confirm`` GETs a SubscribeURL (default: ``confirm_subscription``, looked up
    at call time)."""
    verifier = build_verifier(core)
    writer = InboxWriter(core.db)  # group commit: one INSERT and one commit for a burst of messages

    def refuse(rejected: SnsRejected) -> Response:
        core.metrics.sns_refusals.labels(rejected.kind).inc()
        log.warning(
            "sns_refused",
            status=rejected.status,
            reason=rejected.reason,
            kind=rejected.kind,
            message_id=rejected.message_id,
            topic_arn=rejected.topic_arn,
        )
        return PlainTextResponse(rejected.reason, status_code=rejected.status)

    async def endpoint(request: Request) -> Response:
        body = await read_capped(request, MAX_BODY_BYTES)
        if body is None:
            return refuse(SnsRejected(f"body larger than {MAX_BODY_BYTES} bytes", 413, kind="oversize"))
        try:
            try:
                msg = verifier.accept(body, may_fetch=False)  # tens of microseconds: no hop to a thread
            except CertificateNeeded:
                msg = await run_in_threadpool(verifier.accept, body)  # it may read or fetch the certificate
        except SnsRejected as rejected:
            return refuse(rejected)

        if msg.type == SUBSCRIPTION_CONFIRMATION:
            try:
                await run_in_threadpool(confirm or confirm_subscription, msg.subscribe_url or "")
            except Exception as exc:  # noqa: BLE001 - SNS retries a 5xx; the log says why
                log.error("sns_confirm_failed", topic_arn=msg.topic_arn, error=type(exc).__name__)
                return PlainTextResponse("could not confirm the subscription", status_code=503)
            log.info("sns_subscription_confirmed", topic_arn=msg.topic_arn, message_id=msg.message_id)
            return PlainTextResponse("confirmed")

        # Notification or UnsubscribeConfirmation: stored first, answered after the commit.
        try:
            new = await asyncio.wrap_future(
                writer.submit(
                    row_values(msg=msg, source=HTTP, received_at=core.clock.now(), body=body.decode("utf-8"))
                )
            )
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
