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

from dataclasses import dataclass

from bot import watch
from bot.audit_anchor import AnchorStore, anchor_round, start_trail
from bot.changes import expire_requests, finish_orphaned_rollouts
from bot.core import Core
from bot.outbox import OutboxNotifier, OutboxSender
from bot.store.replays import SlackReplays
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
    anchoring: WorkerLoop | None = None  # the audit trail's head to S3 (AUDIT_ANCHOR_BUCKET)

    def stop(self) -> None:
        if self.anchoring:
            self.anchoring.stop()
        if self.sqs:
            self.sqs.stop()
        self.housekeeping.stop()
        self.inbox.stop()
        if self.outbox:
            self.outbox.stop()


def start_workers(core: Core) -> Workers:
    from handlers.app import slack_client

    start_trail(audit=core.audit, settings=core.settings, clock=core.clock)  # before any worker appends

    outbox = None
    if isinstance(core.notifier, OutboxNotifier):
        sender = OutboxSender(
            db=core.db,
            client=slack_client(core.settings, retries=False),
            clock=core.clock,
            metrics=core.metrics,
        )
        outbox = OutboxWorker(sender, core.clock).start()
        core.notifier.on_enqueue = outbox.poke
    inbox = InboxWorker(core).start()
    sqs = None
    if core.settings.sns_queue_url:
        sqs = SqsConsumer(core, queue_url=core.settings.sns_queue_url, on_stored=inbox.poke).start()

    def housekeep() -> None:
        expire_requests(core)
        watch.housekeep(core)  # deployments made by others, and the post-deploy watches
        SlackReplays(core.db).prune(now=core.clock.now())  # requests whose signature has expired
        # Rollouts whose follower died or gave up on the database: ended once their lease expired.
        finish_orphaned_rollouts(core, why="by housekeeping after its change lock expired unrenewed")

    housekeeping = WorkerLoop("housekeeping", housekeep, idle_seconds=HOUSEKEEPING_SECONDS).start()
    anchors = AnchorStore.from_settings(core.settings, aws=core.aws, clock=core.clock)
    anchoring = (
        WorkerLoop(
            "audit-anchor",
            lambda: anchor_round(audit=core.audit, anchors=anchors),
            idle_seconds=core.settings.audit_anchor_interval_seconds,
        ).start()
        if anchors
        else None
    )
    return Workers(inbox=inbox, outbox=outbox, sqs=sqs, housekeeping=housekeeping, anchoring=anchoring)
