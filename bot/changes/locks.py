"""The incident freeze (lock, unlock) and what `status` notes of an environment: its lock, the
change in flight and its open alarm threads."""

from __future__ import annotations

from bot.alarms import open_alarms
from bot.answers import ChangeResult
from bot.changes.context import announce_channel
from bot.dispatch import CommandContext
from bot.render import when
from bot.rich import Mention, Rich


def lock(ctx: CommandContext, *, env_name: str, reason: str) -> ChangeResult:
    env = ctx.core.config.env(env_name)
    freeze = ctx.core.stores.freezes.freeze(
        env=env_name, reason=reason, by=ctx.user_id, at=ctx.core.clock.now()
    )
    result = ChangeResult(
        headline=Rich(f"{env_name} is locked by ", Mention(freeze.locked_by), f": {freeze.reason}"),
        emoji=":lock:",
        footer="Deploys and scaling wait for `/menotime unlock " + env_name + "`; rollback still works.",
    )
    ctx.core.notifier.post(channel=announce_channel(ctx, env), result=result)
    return result


def unlock(ctx: CommandContext, *, env_name: str) -> ChangeResult:
    env = ctx.core.config.env(env_name)
    freeze = ctx.core.stores.freezes.unfreeze(env=env_name)
    result = ChangeResult(
        headline=Rich(
            f"{env_name} is unlocked by ",
            Mention(ctx.user_id),
            " (was locked by ",
            Mention(freeze.locked_by),
            f" since {when(freeze.locked_at)}: {freeze.reason})",
        ),
        emoji=":unlock:",
    )
    ctx.core.notifier.post(channel=announce_channel(ctx, env), result=result)
    return result


def env_notes(ctx: CommandContext, env_name: str) -> tuple[str, ...]:
    """Locks and changes in flight, for `status`."""
    now, notes = ctx.core.clock.now(), list[str]()
    freeze = ctx.core.stores.freezes.get(env_name)
    if freeze:
        notes.append(
            Rich(
                ":lock: locked by ",
                Mention(freeze.locked_by),
                f" since {when(freeze.locked_at)}: {freeze.reason}",
            )
        )
    lease = ctx.core.stores.leases.get(env_name, now=now)
    if lease:
        notes.append(
            Rich(
                f":hourglass_flowing_sand: {lease.action} in flight by ",
                Mention(lease.user),
                f" since {when(lease.acquired_at)}",
            )
        )
    threads = open_alarms(ctx.core, env=env_name)
    if threads:
        acked = sum(1 for t in threads if t.acknowledged_by)
        notes.append(
            f":rotating_light: {len(threads)} alarm thread(s) open, {acked} acknowledged: "
            f"`/menotime alarms {env_name}`"
        )
    return tuple(notes)
