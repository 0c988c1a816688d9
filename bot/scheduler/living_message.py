"""A job's progress in the ops channel: one message, posted once and then edited."""

from __future__ import annotations

import threading

import structlog

from bot.notify import MessageRef, Notifier
from bot.render import Renderable

log = structlog.get_logger("menotime.jobs")


class _LivingMessage:
    """JobContext.progress: the first call posts to the ops channel, later calls edit that message."""

    def __init__(self, notifier: Notifier, channel: str) -> None:
        self._notifier, self._channel = notifier, channel
        self._ref: MessageRef | None = None
        self._lock = threading.Lock()

    def __call__(self, result: Renderable) -> MessageRef | None:
        with self._lock:
            try:
                if self._ref is None:
                    self._ref = self._notifier.post(channel=self._channel, result=result)
                else:
                    self._notifier.update(ref=self._ref, result=result)
            except Exception as exc:  # noqa: BLE001 - a progress message must never stop the job
                log.warning("job_progress_post_failed", error=type(exc).__name__)
            return self._ref
