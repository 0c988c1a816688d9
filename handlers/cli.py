"""`menotime-bot`: the core's CLI plus the servers that talk to Slack."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import click
import structlog

from bot.cli import cli, cli_actor, friendly, load_settings, os_user
from bot.core import Core
from bot.logs import configure_logging
from bot.scheduler import JobScheduler
from handlers.sns import warn_if_closed
from handlers.workers import Workers, start_workers

if TYPE_CHECKING:
    import uvicorn

log = structlog.get_logger("menotime.cli")

# Connections `serve` holds at once (beyond it: 503). Each may hold a body of up to 1 MiB for up to
# 10 s (handlers/bodies.py), so this bounds what slow or large requests can make the process hold.
MAX_CONNECTIONS = 256


@cli.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=None, help="Port (default: PORT, else 3000).")
@friendly
def serve(host: str, port: int | None) -> None:
    """HTTP server: POST /slack/events, GET /healthz, /readyz, /metrics (on METRICS_PORT when set)."""
    import uvicorn

    from handlers.app import create_app
    from handlers.web import create_web_app

    settings = load_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    port = port or settings.port
    slack_app, core = create_app(settings, migrate_schema=settings.migrate_on_start)
    warn_if_closed(core)  # no SNS topic allow-listed: every alarm is refused until one is
    metrics_server = (
        _serve_metrics(core, host=host, port=settings.metrics_port, main_port=port)
        if settings.metrics_port
        else None
    )
    scheduler = JobScheduler(core)  # checks schedules and job options before anything starts
    workers = start_workers(core)
    scheduler.start()  # runs jobs only while this replica holds the leader lease
    _exit_on_sigterm()
    try:
        # log_config=None: uvicorn keeps our logging set-up (JSON lines) instead of installing its own.
        uvicorn.run(
            create_web_app(
                core, slack_app, on_sns_stored=workers.inbox.poke, serve_metrics=metrics_server is None
            ),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            access_log=False,
            log_config=None,
            limit_concurrency=MAX_CONNECTIONS,
        )
    finally:
        if metrics_server is not None:
            metrics_server.should_exit = True
        _shut_down(core, scheduler, workers)


def _serve_metrics(core: Core, *, host: str, port: int, main_port: int) -> uvicorn.Server:
    """/metrics alone on METRICS_PORT, in a thread of its own, so the public port need not expose it."""
    import time

    import uvicorn

    from bot.errors import ConfigError
    from handlers.web import create_metrics_app

    if port == main_port:
        raise ConfigError(f"METRICS_PORT ({port}) must differ from the port Slack is served on.")
    server = uvicorn.Server(
        uvicorn.Config(
            create_metrics_app(core.metrics),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            log_config=None,
        )
    )
    thread = threading.Thread(target=server.run, name="metrics-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigError(f"could not serve /metrics on METRICS_PORT {port} (is the port taken?)")
        time.sleep(0.01)
    log.info("metrics_served", port=port)
    return server


@cli.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface for /healthz and /metrics.")
@friendly
def socket(host: str) -> None:
    """Slack over Socket Mode (no public URL); health and metrics still served on PORT."""
    import uvicorn
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.errors import ConfigError
    from handlers.app import create_app
    from handlers.web import create_web_app

    settings = load_settings()
    if not settings.slack_app_token:
        raise ConfigError("SLACK_APP_TOKEN (xapp-…) must be set for Socket Mode.")
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    slack_app, core = create_app(settings, socket_mode=True, migrate_schema=settings.migrate_on_start)
    warn_if_closed(core)  # the queue hears the same topics as POST /sns
    if not settings.sns_queue_url:
        log.warning(
            "socket_mode_without_sqs",
            hint="with no public URL, alarms reach the bot through SQS: set SNS_QUEUE_URL",
        )
    metrics_server = (
        _serve_metrics(core, host=host, port=settings.metrics_port, main_port=settings.port)
        if settings.metrics_port
        else None
    )
    scheduler = JobScheduler(core)
    workers = start_workers(core)  # with no public URL, SNS reaches the bot through SQS (SNS_QUEUE_URL)
    scheduler.start()
    health = uvicorn.Server(
        uvicorn.Config(
            create_web_app(
                core, None, on_sns_stored=workers.inbox.poke, serve_metrics=metrics_server is None
            ),
            host=host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            log_config=None,
        )
    )
    threading.Thread(target=health.run, name="health-http", daemon=True).start()
    handler = SocketModeHandler(slack_app, settings.slack_app_token.get_secret_value())
    _exit_on_sigterm()
    try:
        handler.start()
    finally:
        handler.close()
        health.should_exit = True
        if metrics_server is not None:
            metrics_server.should_exit = True
        _shut_down(core, scheduler, workers)


def _exit_on_sigterm() -> None:
    """ECS stops a task with SIGTERM: leave through the ``finally`` blocks (uvicorn re-raises the
    signal after its own graceful shutdown), so the leader lease is released and workers stop."""
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def _shut_down(core: Core, scheduler: JobScheduler, workers: Workers) -> None:
    scheduler.stop()
    workers.stop()
    core.close()
    log.info("shutdown_complete")


@cli.command()
@click.option("--interactive", is_flag=True, help="Leave a /menotime prompt open after the tour.")
@friendly
def demo(interactive: bool) -> None:
    """Guided tour on simulated AWS, SQLite and a console for Slack. No credentials needed."""
    import sys

    from bot.demo import run_demo
    from handlers.demo_jobs import extension

    configure_logging(fmt="console", level="WARNING")
    sys.exit(run_demo(interactive=interactive, extension=extension()))


@cli.command()
@click.option("--simulate", is_flag=True, help="Use the embedded AWS simulator instead of configured AWS.")
@click.option(
    "--user",
    default=None,
    help="Slack user ID to act as (default: the simulator's developer, else U0CONSOLE).",
)
@friendly
def console(simulate: bool, user: str | None) -> None:
    """Type /menotime lines and read the answers as text."""
    settings = load_settings()
    configure_logging(fmt="console", level="WARNING")
    from bot.console import Console
    from bot.notify import ConsoleNotifier

    if simulate:
        import tempfile
        from pathlib import Path

        from bot.demo import DEVELOPER, demo_core, people
        from handlers.demo_jobs import extension

        with (
            tempfile.TemporaryDirectory(prefix="menotime-console-") as tmp,
            demo_core(
                Path(tmp),
                config_path=settings.menotime_config,
                notifier=ConsoleNotifier(),
                extension=extension(),
            ) as (core, _sim),
        ):
            click.echo(f"Simulated AWS, SQLite in a temporary folder. {people()}")
            Console(core, user_id=user or DEVELOPER, operator=os_user()).interact()
        return
    from bot.compose import build_core
    from jobs import all_jobs

    # Work that outlives an answer (a rollout, a job) runs before the prompt returns: `:quit` must
    # not cut it off half-way.
    core = build_core(
        settings,
        migrate_schema=True,
        notifier=ConsoleNotifier(),
        jobs=all_jobs(),
        run_background=lambda work: work(),
    )
    try:
        Console(core, user_id=user or "U0CONSOLE", operator=os_user()).interact()
    finally:
        core.close()


@cli.group("jobs")
def jobs_group() -> None:
    """Scheduled jobs: list them, run one now."""


@jobs_group.command("list")
@friendly
def jobs_list() -> None:
    """Each job's schedule, next run (PT) and last run with its outcome."""
    from bot.compose import build_core
    from bot.render import render_text
    from bot.scheduler import list_jobs
    from jobs import all_jobs

    settings = load_settings()
    configure_logging(fmt="console", level="WARNING")
    core = build_core(settings, migrate_schema=True, jobs=all_jobs())
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

    from bot.compose import build_core
    from bot.demo import demo_core
    from bot.errors import BadInput
    from bot.notify import NullNotifier, SlackNotifier
    from bot.render import render_text
    from bot.scheduler import JobRunner
    from handlers.app import slack_client
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
        core = build_core(settings, migrate_schema=True, jobs=specs, notifier=notifier)
        try:
            ok = run(core)
        finally:
            core.close()
    sys.exit(0 if ok else 1)


@cli.command("iam-policy")
@click.option("--env", "env_name", default=None, help="Only this environment's resources (default: all).")
@friendly
def iam_policy(env_name: str | None) -> None:
    """Print the least-privilege IAM policy of the bot's task role, built from what every verb, job
    and worker declares, as JSON."""
    import json

    from bot import iam
    from bot.config import load_config
    from bot.verbs import build_registry
    from jobs import all_jobs

    settings = load_settings()
    config = load_config(settings.menotime_config)
    if env_name is not None and env_name not in config.environments:
        choices = ", ".join(config.env_names)
        raise click.BadParameter(
            f"{env_name[:40]} is not an environment; choose {choices}.", param_hint="--env"
        )
    envs = [config.env(env_name)] if env_name else list(config.environments.values())
    jobs = [job for job in all_jobs() if env_name is None or job.env == env_name]
    scope = iam.Scope.of(settings, envs, job_secrets=iam.job_secret_ids(jobs, config))
    click.echo(json.dumps(iam.policy_document(iam.works_of(build_registry(), jobs), scope), indent=2))


def main() -> None:
    cli()


import handlers.cli_anonymize  # noqa: E402,F401 - registers `anonymize` and `synthetic-db` on `cli`
