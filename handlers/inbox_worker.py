"""The inbox worker: turns stored SNS messages into Slack alarm threads, off the request path.

`POST /sns` stores and answers; it then pokes this worker, which also wakes on its own every few
seconds so that messages left pending by a Slack outage (or stored by another replica) go out, and
reminders for acknowledged alarms still in ALARM are posted when due.
"""

from __future__ import annotations

from bot.alarms import process_inbox, remind_due
from bot.core import Core
from handlers.loop import WorkerLoop


class InboxWorker(WorkerLoop):
    def __init__(self, core: Core, *, interval: float = 5.0) -> None:
        super().__init__("inbox-worker", self._round, idle_seconds=interval)
        self._core = core

    def _round(self) -> None:
        while process_inbox(core=self._core) and not self.stopping:
            pass  # a full batch: there may be more
        remind_due(self._core)
