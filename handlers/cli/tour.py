"""`demo` and `console`: the bot offline on the simulator, or typed at against configured AWS."""

from __future__ import annotations

import click

from bot.logs import configure_logging
from handlers.cli.invocation import friendly, load_settings, os_user


@click.command()
@click.option("--interactive", is_flag=True, help="Leave a /menotime prompt open after the tour.")
@friendly
def demo(interactive: bool) -> None:
    """Guided tour on simulated AWS, SQLite and a console for Slack. No credentials needed."""
    import sys

    from bot.demo import run_demo
    from handlers.demo_jobs import extension

    configure_logging(fmt="console", level="WARNING")
    sys.exit(run_demo(interactive=interactive, extension=extension()))


@click.command()
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
    from handlers.process import compose

    # Work that outlives an answer (a rollout, a job) runs before the prompt returns: `:quit` must
    # not cut it off half-way.
    core = compose(
        settings,
        mode="core",
        migrate_schema=True,
        notifier=ConsoleNotifier(),
        run_background=lambda work: work(),
    ).core
    try:
        Console(core, user_id=user or "U0CONSOLE", operator=os_user()).interact()
    finally:
        core.close()
