"""The background workers of `serve` and `socket`, started and stopped together.

- the outbox worker sends queued Slack messages (channel posts go through the outbox);
- the inbox worker turns stored SNS messages into alarm threads and posts reminders;
- with SNS_QUEUE_URL, the SQS consumer stores the SNS messages it long-polls;
- with AUDIT_ANCHOR_BUCKET, the audit anchor writes the audit trail's verified head to S3 under
  Object Lock every AUDIT_ANCHOR_INTERVAL_SECONDS (bot.audit_anchor);
- housekeeping expires the change requests nobody decided in time (their buttons go), records the
  deployments and scalings other actors made, starts and ends the post-deploy alarm watches, and
  ends the bot's rollouts nobody follows any more (their lease expired unrenewed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Self

from bot import watch
from bot.audit_anchor import AnchorStore, anchor_round
from bot.changes import expire_requests, finish_orphaned_rollouts
from bot.core import Core
from bot.outbox import OutboxSender
from bot.store.replays import SlackReplays
from handlers.inbox_worker import InboxWorker
from handlers.loop import WorkerLoop
from handlers.outbox_worker import OutboxWorker
from handlers.slack_client import slack_client
from handlers.sqs import SqsConsumer

HOUSEKEEPING_SECONDS = 60.0


@dataclass
class Workers:
    inbox: InboxWorker
    outbox: OutboxWorker | None
    sqs: SqsConsumer | None
    housekeeping: WorkerLoop
    anchoring: WorkerLoop | None = None  # the audit trail's head to S3 (AUDIT_ANCHOR_BUCKET)

    def start(self) -> Self:
        for worker in (self.outbox, self.inbox, self.sqs, self.housekeeping, self.anchoring):
            if worker is not None:
                worker.start()
        return self

    def stop(self) -> None:
        for worker in (self.anchoring, self.sqs, self.housekeeping, self.inbox, self.outbox):
            if worker is not None:
                worker.stop()


def housekeeping_round(core: Core) -> None:
    expire_requests(core)
    watch.housekeep(core)  # deployments made by others, and the post-deploy watches
    SlackReplays(core.db).prune(now=core.clock.now())  # requests whose signature has expired
    # Rollouts whose follower died or gave up on the database: ended once their lease expired.
    finish_orphaned_rollouts(core, why="by housekeeping after its change lock expired unrenewed")


def build_workers(core: Core, *, outbox_wake: threading.Event | None) -> Workers:
    """The workers, not started. ``outbox_wake``: the event the core's outbox notifier sets when it
    queues a post (None: the core posts through another notifier, and there is no outbox to send)."""
    outbox = None
    if outbox_wake is not None:
        sender = OutboxSender(
            db=core.db,
            client=slack_client(core.settings, retries=False),
            clock=core.clock,
            metrics=core.metrics,
        )
        outbox = OutboxWorker(sender, core.clock, wake=outbox_wake)
    inbox = InboxWorker(core)
    queue_url = core.settings.sns_queue_url
    anchors = AnchorStore.from_settings(core.settings, aws=core.aws, clock=core.clock)
    return Workers(
        inbox=inbox,
        outbox=outbox,
        sqs=SqsConsumer(core, queue_url=queue_url, on_stored=inbox.poke) if queue_url else None,
        housekeeping=WorkerLoop(
            "housekeeping", lambda: housekeeping_round(core), idle_seconds=HOUSEKEEPING_SECONDS
        ),
        anchoring=WorkerLoop(
            "audit-anchor",
            lambda: anchor_round(audit=core.audit, anchors=anchors),
            idle_seconds=core.settings.audit_anchor_interval_seconds,
        )
        if anchors
        else None,
    )
