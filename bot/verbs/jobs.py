"""The `jobs` verb: list the scheduled jobs, or run one now."""

from __future__ import annotations

from typing import Any

from bot.commands import Command
from bot.dispatch import CommandContext
from bot.errors import BadInput


def _jobs_target(core: Any, cmd: Command) -> tuple[str, str | None]:
    """Listing jobs is for every role (decided as `status`); running one needs `jobs_run` on its env."""
    from bot.scheduler import find_job

    sub, name = cmd.args.get("run"), cmd.args.get("job")
    if sub is None:
        if cmd.flags:
            raise BadInput("`--dry-run` and `--override` go with `/menotime jobs run <name>`.")
        return "status", None
    if sub.lower() != "run":
        raise BadInput(
            f"`jobs {sub[:40]}` is not a jobs command: `/menotime jobs` lists the jobs, "
            f"`/menotime jobs run <name>` runs one."
        )
    if not name:
        raise BadInput(
            f"`jobs run` needs a job name: {', '.join(f'`{s.name}`' for s in core.jobs) or 'none'}."
        )
    return "jobs_run", find_job(core.jobs, name).env


def run_jobs(ctx: CommandContext, cmd: Command) -> Any:
    from bot.scheduler import list_jobs, start_job

    if cmd.args.get("run") is None:
        return list_jobs(ctx.core)
    return start_job(
        ctx.core,
        name=cmd.args["job"],
        requested_by=ctx.user_id,
        dry_run=bool(cmd.flags.get("dry-run")),
        override=bool(cmd.flags.get("override")),
    )
