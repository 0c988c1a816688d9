"""`jobs list` and `jobs run`: the scheduled jobs from the command line."""

from __future__ import annotations

import click

from bot.core import Core
from bot.logs import configure_logging
from handlers.cli.invocation import cli_actor, friendly, load_settings


@click.group("jobs")
def jobs_group() -> None:
    """Scheduled jobs: list them, run one now."""


@jobs_group.command("list")
@friendly
def jobs_list() -> None:
    """Each job's schedule, next run (PT) and last run with its outcome."""
    from bot.render import render_text
    from bot.scheduler import list_jobs
    from handlers.process import compose

    settings = load_settings()
    configure_logging(fmt="console", level="WARNING")
    core = compose(settings, mode="core", migrate_schema=True).core
    try:
        click.echo(render_text(list_jobs(core)), nl=False)
    finally:
        core.close()


@jobs_group.command("run")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Change nothing; report what would be done.")
@click.option("--override", is_flag=True, help="Go past the job's safety caps (dev-cleanup).")
@click.option(
    "--simulate", is_flag=True, help="Run against the embedded AWS simulator (as `console --simulate`)."
)
@friendly
def jobs_run(name: str, dry_run: bool, override: bool, simulate: bool) -> None:
    """Run job NAME now and print its report; exit 1 if it failed or was refused, 2 for an unknown job
    or a bad configuration, 3 if the database cannot be reached."""
    import sys
    import tempfile
    from pathlib import Path

    from bot.demo import demo_core
    from bot.errors import BadInput
    from bot.notify import NullNotifier, SlackNotifier
    from bot.render import render_text
    from bot.scheduler import JobRunner
    from handlers.process import compose
    from handlers.slack_client import slack_client
    from jobs import all_jobs

    settings = load_settings()
    configure_logging(fmt="console", level="WARNING")
    specs = all_jobs()
    who = cli_actor()  # the run, and every change the job makes, are audited as this

    def run(core: Core) -> bool:
        try:
            view = JobRunner(core, jobs=specs).run(
                name, trigger="manual", dry_run=dry_run, override=override, requested_by=who
            )
        except BadInput as exc:
            click.echo(exc.message.replace("`", ""), err=True)
            sys.exit(2)
        if view is None:  # only a scheduled fire can have run elsewhere; a manual run always runs
            raise RuntimeError("a manual run was not recorded")
        assert view.result is not None  # the runner hands back every run it ran with what it showed
        click.echo(render_text(view.result), nl=False)
        return view.ok

    if simulate:
        from handlers.demo_jobs import extension

        with (
            tempfile.TemporaryDirectory(prefix="menotime-jobs-") as tmp,
            demo_core(
                Path(tmp),
                config_path=settings.menotime_config,
                notifier=NullNotifier(),
                extension=extension(),
            ) as (core, _sim),
        ):
            ok = run(core)
    else:
        # With Slack configured the report also lands in the ops channel, as a scheduled run's would.
        notifier = SlackNotifier(slack_client(settings)) if settings.slack_bot_token else NullNotifier()
        core = compose(settings, mode="core", migrate_schema=True, jobs=specs, notifier=notifier).core
        try:
            ok = run(core)
        finally:
            core.close()
    sys.exit(0 if ok else 1)
