"""The outbox worker: sends queued Slack messages (bot.outbox) off every request path.

Woken when a message is queued, and on its own at the next retry time (a 429's Retry-After, a
backoff after a 5xx), or every few seconds for rows queued by another replica.
"""

from __future__ import annotations

import threading

from bot.clock import Clock
from bot.outbox import OutboxSender
from handlers.loop import WorkerLoop


class OutboxWorker(WorkerLoop):
    def __init__(
        self,
        sender: OutboxSender,
        clock: Clock,
        *,
        idle_seconds: float = 5.0,
        wake: threading.Event | None = None,
    ) -> None:
        super().__init__("outbox-worker", self._round, idle_seconds=idle_seconds, wake=wake)
        self._sender = sender
        self._clock = clock

    def _round(self) -> float | None:
        sent = self._sender.send_due().sent
        due = self._sender.next_due()
        if due is None:
            return None
        wait = (due - self._clock.now()).total_seconds()
        if wait <= 0 and not sent:
            return (
                None  # due but claimed by another replica (or lost to it): look again when idle, not at once
            )
        return max(0.05, wait)
