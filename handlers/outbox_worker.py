"""The outbox worker: sends queued Slack messages (bot.outbox) off every request path.

Woken when a message is queued, and on its own at the next retry time (a 429's Retry-After, a
backoff after a 5xx), or every few seconds for rows queued by another replica.
"""

from __future__ import annotations

import threading
from datetime import datetime

import structlog

from bot.clock import Clock
from bot.outbox import OutboxSender

log = structlog.get_logger("menotime.outbox")


class OutboxWorker:
    def __init__(self, sender: OutboxSender, clock: Clock, *, idle_seconds: float = 5.0) -> None:
        self._sender = sender
        self._clock = clock
        self._idle = idle_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> OutboxWorker:
        self._thread = threading.Thread(target=self._run, name="outbox-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sender.send_due()
                wait = self._wait_seconds(self._sender.next_due())
            except Exception:  # noqa: BLE001 - the database may hiccup: nothing is lost, try again
                log.exception("outbox_send_failed")
                wait = self._idle
            self._wake.wait(wait)
            self._wake.clear()

    def _wait_seconds(self, due: datetime | None) -> float:
        if due is None:
            return self._idle
        return min(self._idle, max(0.05, (due - self._clock.now()).total_seconds()))
