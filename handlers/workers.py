"""The background workers of `serve` and `socket`, started and stopped together.

- the outbox worker sends queued Slack messages (channel posts go through the outbox);
- the inbox worker turns stored SNS messages into alarm threads and posts reminders;
- with SNS_QUEUE_URL, the SQS consumer stores the SNS messages it long-polls;
- housekeeping expires the change requests nobody decided in time (their buttons go), records the
  deployments and scalings other actors made, and starts and ends the post-deploy alarm watches.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import watch
from bot.changes import expire_requests
from bot.core import Core
from bot.outbox import OutboxNotifier, OutboxSender
from handlers.inbox_worker import InboxWorker
from handlers.loop import WorkerLoop
from handlers.outbox_worker import OutboxWorker
from handlers.sqs import SqsConsumer


HOUSEKEEPING_SECONDS = 60.0


@dataclass
class Workers:
    inbox: InboxWorker
    outbox: OutboxWorker | None
    sqs: SqsConsumer | None
    housekeeping: WorkerLoop

    def stop(self) -> None:
        if self.sqs:
            self.sqs.stop()
        self.housekeeping.stop()
        self.inbox.stop()
        if self.outbox:
            self.outbox.stop()


def start_workers(core: Core) -> Workers:
    from handlers.app import slack_client

    outbox = None
    if isinstance(core.notifier, OutboxNotifier):
        sender = OutboxSender(db=core.db, client=slack_client(core.settings, retries=False), clock=core.clock,
                              metrics=core.metrics)
        outbox = OutboxWorker(sender, core.clock).start()
        core.notifier.on_enqueue = outbox.poke
    inbox = InboxWorker(core).start()
    sqs = None
    if core.settings.sns_queue_url:
        sqs = SqsConsumer(core, queue_url=core.settings.sns_queue_url, on_stored=inbox.poke).start()
    def housekeep() -> None:
        expire_requests(core)
        watch.housekeep(core)  # deployments made by others, and the post-deploy watches

    housekeeping = WorkerLoop("housekeeping", housekeep, idle_seconds=HOUSEKEEPING_SECONDS).start()
    return Workers(inbox=inbox, outbox=outbox, sqs=sqs, housekeeping=housekeeping)
