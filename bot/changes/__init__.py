"""Guarded changes: deploy, rollback and scale, with confirmations, approvals, locks and rollouts.

A change is asked for, checked (tag rule, lock, window, soak, bounds), then — depending on the
environment — run at once, held for a confirmation click by the person who asked, or held for a
second person's approval. Whatever held it, the same checks run again when it executes, against
the parameters recorded when it was asked: the tag must still resolve to the digest that was
approved and the service must still run the revision the change was planned from, so a stale
"yes" cannot slip through.
"""

from bot.changes.asking import ask_deploy, ask_rollback, ask_scale
from bot.changes.context import announce_channel
from bot.changes.deciding import approve, cancel, confirm, deny, expire_requests
from bot.changes.execution import execute
from bot.changes.locks import env_notes, lock, unlock
from bot.changes.rollouts import finish_orphaned_rollouts

__all__ = [
    "announce_channel",
    "approve",
    "ask_deploy",
    "ask_rollback",
    "ask_scale",
    "cancel",
    "confirm",
    "deny",
    "env_notes",
    "execute",
    "expire_requests",
    "finish_orphaned_rollouts",
    "lock",
    "unlock",
]
