"""The Slack outbox (DESIGN §6 step 6): every post, edit and upload is written to the database
first and sent by a worker, so nothing is lost while Slack is down and each message goes out once.

``OutboxNotifier`` (:mod:`bot.outbox.notifier`) queues, ``OutboxSender`` (:mod:`bot.outbox.sender`)
sends; :mod:`bot.outbox.queue` is the table they share, :mod:`bot.outbox.retry` when to try again.
"""

from bot.outbox.notifier import OutboxNotifier
from bot.outbox.queue import DEAD, PENDING, SENT, Outbox, placeholder, queued_id
from bot.outbox.sender import OutboxSender, SendOutcome

__all__ = [
    "DEAD",
    "PENDING",
    "SENT",
    "Outbox",
    "OutboxNotifier",
    "OutboxSender",
    "SendOutcome",
    "placeholder",
    "queued_id",
]
