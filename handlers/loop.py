"""A background thread that does a round of work, then sleeps until poked or until its next round
is due: the inbox and outbox workers are each one of these."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Self

import structlog

log = structlog.get_logger("menotime.workers")


class WorkerLoop:
    def __init__(
        self,
        name: str,
        work: Callable[[], float | None],
        *,
        idle_seconds: float,
        wake: threading.Event | None = None,
    ) -> None:
        """``work`` does one round and says how long to wait before the next (None: ``idle_seconds``).
        ``wake``: the event that pokes it, when another part (the outbox notifier) holds it too."""
        self._name = name
        self._work = work
        self._idle = idle_seconds
        self._wake = wake or threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the round: a poke during it means "look again", not lost
            try:
                wait = self._work()
            except Exception:
                log.exception("worker_round_failed", worker=self._name)
                wait = None
            self._wake.wait(self._idle if wait is None else min(wait, self._idle))
