"""The inbox worker: turns stored SNS messages into Slack alarm threads, off the request path.

`POST /sns` stores and answers; it then pokes this worker, which also wakes on its own every few
seconds so that messages left pending by a Slack outage (or stored by another replica) go out, and
reminders for acknowledged alarms still in ALARM are posted when due.
"""

from __future__ import annotations

import threading

import structlog

from bot.alarms import process_inbox, remind_due
from bot.core import Core

log = structlog.get_logger("menotime.inbox")


class InboxWorker:
    def __init__(self, core: Core, *, interval: float = 5.0) -> None:
        self._core = core
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> InboxWorker:
        self._thread = threading.Thread(target=self._run, name="inbox-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                while process_inbox(core=self._core) and not self._stop.is_set():
                    pass  # a full batch: there may be more
                remind_due(self._core)
            except Exception:  # noqa: BLE001 - a bad run must not end the worker; rows stay pending
                log.exception("inbox_processing_failed")
