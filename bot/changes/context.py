"""What the change path takes from the command context: its stores and the announce channel."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import EnvironmentConfig
from bot.dispatch import CommandContext
from bot.store.changes import Freezes, Leases, Requests
from bot.store.deploys import DeployLog


def announce_channel(ctx: CommandContext, env: EnvironmentConfig) -> str:
    return ctx.core.config.announce_channel(env)


@dataclass(frozen=True)
class _Parts:
    freezes: Freezes
    leases: Leases
    requests: Requests
    deploys: DeployLog


def _parts(ctx: CommandContext) -> _Parts:
    db = ctx.core.db
    return _Parts(Freezes(db), Leases(db), Requests(db), DeployLog(db))
