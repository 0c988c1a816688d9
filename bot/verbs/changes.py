"""The change verbs: `deploy`, `rollback` and `scale` ask; `confirm`, `cancel`, `approve` and `deny`
answer a request; `lock` and `unlock` freeze an environment."""

from __future__ import annotations

from typing import Any

from bot import changes
from bot.answers import ChangeResult
from bot.commands import Command
from bot.dispatch import CommandContext


def _request_target(core: Any, cmd: Command) -> tuple[str, str]:
    """confirm/cancel are decided as the change they run; approve/deny as `approve` on its env."""
    request = core.stores.requests.get(cmd.args["id"])
    if cmd.verb.name in ("approve", "deny"):
        return "approve", request.env
    # A break-glass request is confirmed under the same permission it was asked with.
    return ("emergency" if request.params.get("emergency") else request.action), request.env


def _env(cmd: Command) -> str:
    """The environment of a verb whose `env` argument is required: parsing refused a line without it."""
    assert cmd.env is not None
    return cmd.env


def run_deploy(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.ask_deploy(
        ctx,
        env_name=_env(cmd),
        tag=cmd.args["tag"],
        reason=cmd.flags.get("reason"),
        plan=bool(cmd.flags.get("plan")),
        emergency=cmd.flags.get("emergency"),
    )


def run_rollback(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.ask_rollback(
        ctx,
        env_name=_env(cmd),
        spec=cmd.args.get("target"),
        reason=cmd.flags.get("reason"),
        plan=bool(cmd.flags.get("plan")),
    )


def run_scale(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.ask_scale(
        ctx, env_name=_env(cmd), count=cmd.args["count"], plan=bool(cmd.flags.get("plan"))
    )


def run_confirm(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.confirm(ctx, request_id=cmd.args["id"])


def run_cancel(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.cancel(ctx, request_id=cmd.args["id"])


def run_approve(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.approve(ctx, request_id=cmd.args["id"])


def run_deny(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.deny(ctx, request_id=cmd.args["id"], reason=cmd.flags.get("reason"))


def run_lock(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.lock(ctx, env_name=_env(cmd), reason=cmd.args["reason"])


def run_unlock(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.unlock(ctx, env_name=_env(cmd))
