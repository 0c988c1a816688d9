"""What the change path takes from the command context: the stores and the announce channel."""

from __future__ import annotations

from bot.config import EnvironmentConfig
from bot.dispatch import CommandContext
from bot.store.stores import Stores


def announce_channel(ctx: CommandContext, env: EnvironmentConfig) -> str:
    return ctx.core.config.announce_channel(env)


def _parts(ctx: CommandContext) -> Stores:
    return ctx.core.stores
