"""The SQS consumer (DESIGN §6): SNS → SQS subscription, long-polled by the bot.

Each SQS message's Body is the SNS envelope (raw message delivery off), verified exactly as
``POST /sns`` verifies it (the same topic allow-list, closed when empty), except for the age limit:
a message may wait in the queue for longer than ``SNS_MAX_AGE_SECONDS``, and the queue (not the
network) is what delivered it.

A message is deleted from the queue only once it is committed to the inbox (or is a duplicate of
one that is). Anything that fails parsing or verification is not stored and not deleted: the
queue's redrive policy moves it to the dead-letter queue after its receive count. A database
failure also leaves the message in the queue, to be received again after its visibility timeout.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bot.core import Core
from bot.sns import NOTIFICATION, SUBSCRIPTION_CONFIRMATION, SnsRejected, SnsVerifier
from bot.store.inbox import SQS, Inbox
from handlers.sns import build_verifier

log = structlog.get_logger("menotime.sqs")

MAX_WAIT_SECONDS = 20  # SQS's longest long poll
MAX_BATCH = 10  # SQS's largest receive
RETRY_PAUSE_SECONDS = 5.0  # after an AWS (or any) failure of a poll


def build_queue_verifier(core: Core) -> SnsVerifier:
    """``handlers.sns.build_verifier`` without the age limit (queued messages may be old)."""
    return build_verifier(core, age_limit=False)


class SqsConsumer:
    def __init__(
        self,
        core: Core,
        *,
        queue_url: str,
        on_stored: Callable[[], None] | None = None,
        wait_seconds: int = MAX_WAIT_SECONDS,
        batch: int = MAX_BATCH,
        retry_pause: float = RETRY_PAUSE_SECONDS,
    ) -> None:
        self._core = core
        self._queue_url = queue_url
        self._on_stored = on_stored
        self._wait_seconds = self._bounded_wait(wait_seconds)
        self._batch = max(1, min(int(batch), MAX_BATCH))
        self._retry_pause = retry_pause
        self._verifier = build_queue_verifier(core)
        self._inbox = Inbox(core.db)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _bounded_wait(self, wait_seconds: int) -> int:
        """The long-poll wait, kept under the gateway's read timeout (else every empty poll times out)."""
        wait = max(0, min(int(wait_seconds), MAX_WAIT_SECONDS))
        read_timeout = getattr(self._core.aws.client("sqs").meta.config, "read_timeout", None)
        if isinstance(read_timeout, (int, float)) and wait >= read_timeout:
            bounded = max(0, math.ceil(read_timeout) - 1)
            log.info("sqs_wait_shortened", wait_seconds=wait, read_timeout=read_timeout, now=bounded)
            wait = bounded
        return wait

    # --- one poll ------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Receives one batch and handles it; returns how many messages were newly stored.

        AWS failures of the receive propagate (AwsUnavailable, ClientError); the loop logs and retries.
        """
        response = self._core.aws.call(
            "sqs",
            "receive_message",
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch,
            WaitTimeSeconds=self._wait_seconds,
        )
        stored = 0
        for message in response.get("Messages", []):
            if self._handle(message):
                stored += 1
        if stored and self._on_stored:
            self._on_stored()  # wake the worker that posts them to Slack
        return stored

    def _handle(self, message: dict[str, Any]) -> bool:
        """True when the message was new and is now stored."""
        sqs_id = str(message.get("MessageId", ""))[:100]
        body = message.get("Body", "")
        try:
            msg = self._verifier.accept(body)  # the same acceptance as POST /sns, without its age limit
        except SnsRejected as rejected:
            log.warning(
                "sqs_message_rejected",
                sqs_message_id=sqs_id,
                reason=rejected.reason,
                kind=rejected.kind,
                message_id=rejected.message_id,
                topic_arn=rejected.topic_arn,
                action="left in the queue for its redrive policy",
            )
            return False

        if msg.type == SUBSCRIPTION_CONFIRMATION:
            # SNS confirms same-account SQS subscriptions by itself; the bot never follows a
            # SubscribeURL from the queue. Left for the dead-letter queue, where an operator can see it.
            log.warning(
                "sqs_subscription_confirmation_not_handled",
                sqs_message_id=sqs_id,
                message_id=msg.message_id[:100],
                topic_arn=msg.topic_arn[:256],
                action="left in the queue for its redrive policy; confirm the subscription in AWS",
            )
            return False

        try:
            new = self._inbox.store(msg=msg, source=SQS, received_at=self._core.clock.now(), body=body)
        except SQLAlchemyError as exc:
            log.error(
                "sqs_store_failed",
                sqs_message_id=sqs_id,
                message_id=msg.message_id,
                error=type(exc).__name__,
                action="left in the queue; received again after its visibility timeout",
            )
            return False
        if new:
            if msg.type == NOTIFICATION:
                log.info("sqs_stored", message_id=msg.message_id, topic_arn=msg.topic_arn)
            else:
                log.warning("sns_unsubscribed", message_id=msg.message_id, topic_arn=msg.topic_arn)
        else:
            log.info("sqs_duplicate_dropped", message_id=msg.message_id, topic_arn=msg.topic_arn)
        self._delete(message, msg.message_id)
        return new

    def _delete(self, message: dict[str, Any], message_id: str) -> None:
        try:
            self._core.aws.call(
                "sqs", "delete_message", QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        except Exception as exc:  # noqa: BLE001 - stored already: a redelivery is dropped as a duplicate
            log.warning(
                "sqs_delete_failed",
                message_id=message_id,
                error=type(exc).__name__,
                action="it is stored; its redelivery will be dropped as a duplicate",
            )

    # --- the loop ------------------------------------------------------------------------------

    def start(self) -> SqsConsumer:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sqs-consumer", daemon=True)
        self._thread.start()
        log.info("sqs_consumer_started", queue_url=self._queue_url, wait_seconds=self._wait_seconds)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            # A long poll in flight finishes within wait_seconds (plus the gateway's read timeout).
            self._thread.join(timeout=self._wait_seconds + 15)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                stored = self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a failed poll must not end the consumer
                log.error(
                    "sqs_poll_failed",
                    queue_url=self._queue_url,
                    error=type(exc).__name__,
                    detail=str(exc)[:300],
                    retry_in_seconds=self._retry_pause,
                )
                self._stop.wait(self._retry_pause)
            else:
                if self._wait_seconds == 0 and not stored:
                    self._stop.wait(0.2)  # short polling of an empty queue: do not spin
