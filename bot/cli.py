"""`menotime-bot`: the core's commands. The Slack servers (`serve`, `socket`) are added by handlers.cli."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot.errors import ConfigError
from bot.logs import configure_logging
from bot.settings import Settings


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        path = os.environ.get("MENOTIME_CONFIG")
        if path:
            from bot.config import load_config

            load_config(path)  # a problem in the file's `settings:` is reported with its file and line
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"environment settings: {problems}") from None


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """A configuration problem is one clear message and exit status 2, a database that cannot be
    reached one clear message and exit status 3 (as `audit verify` says), not a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import OperationalError

        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"Configuration error:\n{exc}", err=True)
            sys.exit(2)
        except OperationalError as exc:
            click.echo(f"The database at DATABASE_URL cannot be used ({type(exc.orig).__name__}); check that it "
                       "is running and reachable, and the URL.", err=True)
            sys.exit(3)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """MenoTime Ops: run MenoTime's AWS environments from Slack."""


@cli.command()
@friendly
def migrate() -> None:
    """Apply database migrations (Alembic) to DATABASE_URL."""
    settings = load_settings()
    from bot.store import migrate as migrations
    from bot.store.db import Database

    db = Database(settings.database_url)
    before = migrations.current_revision(db)
    migrations.upgrade(db)
    after = migrations.current_revision(db)
    click.echo(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    db.dispose()


@cli.group()
def config() -> None:
    """Configuration commands."""


@config.command("check")
@friendly
def config_check() -> None:
    """Validate the configuration; print the environments and the role matrix in effect."""
    settings = load_settings()
    from bot.config import Role, load_config
    from bot.policy import Policy

    cfg = load_config(settings.menotime_config)
    policy = Policy(cfg)
    click.echo(f"configuration OK ({settings.menotime_config or 'shipped defaults'})\n")
    click.echo("Settings:")
    for key, value in settings.describe().items():
        click.echo(f"  {key:<26} {value}")
    click.echo("\nEnvironments:")
    for env in cfg.environments.values():
        bounds = f"{env.tasks.min}-{env.tasks.max} ({'autoscaling' if env.autoscaling else 'manual'})"
        click.echo(f"  {env.name:<8} {env.cluster}/{env.service}  family {env.task_family}  db {env.rds_instance}")
        click.echo(f"           tasks {env.tasks.default}, allowed {bounds}; tags: {env.image_tags.rule}; "
                   f"gate {env.deploy_gate}; alerts {env.alerts_channel or '-'}; "
                   f"retention {f'{env.retention_days} days' if env.retention_days else 'indefinite'}")
    click.echo(f"\nSchedules ({cfg.jobs.timezone}; only the replica holding the scheduler lease runs them):")
    for job, expr in cfg.jobs.schedules.items():
        click.echo(f"  {job:<16} {expr or '(off)'}")
    click.echo("\nRole membership:")
    for role in Role:
        members = cfg.roles.get(role)
        people = ", ".join([*(members.users if members else ()), *(f"group {g}" for g in (members.groups if members
                                                                                           else ()))])
        click.echo(f"  {role.value:<16} {people or '(nobody)'}")
    click.echo("\nPermission matrix (admin may do everything but approve their own request):")
    click.echo(f"  {'action':<11}" + "".join(f" {e:<44}" for e in cfg.env_names))
    for action in cfg.permissions:
        cells = [",".join(r for r in policy.roles_allowed(action, e) if r != "admin") or "-" for e in cfg.env_names]
        click.echo(f"  {action:<11}" + "".join(f" {c:<44}" for c in cells))


@cli.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@friendly
def audit_verify() -> None:
    """Check the hash chain; exit 1 if any event was edited, inserted or deleted, 3 if it cannot be read."""
    settings = load_settings()
    from bot.store.audit import AuditLog
    from bot.store.db import Database

    db = Database(settings.database_url)
    try:
        report = AuditLog(db).verify()
    except SQLAlchemyError as exc:
        # Distinct from "tampered" (exit 1): a monitoring job must tell "cannot check" apart.
        click.echo(f"audit trail NOT CHECKED: the database could not be read ({type(exc).__name__}); "
                   "is DATABASE_URL right and `menotime-bot migrate` applied?", err=True)
        sys.exit(3)
    finally:
        db.dispose()
    if report.ok:
        click.echo(f"audit trail intact: {report.checked} events verified")
        return
    click.echo(f"audit trail BROKEN ({report.checked} events read):", err=True)
    for problem in report.problems:
        click.echo(f"  - {problem}", err=True)
    sys.exit(1)


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout).")
@friendly
def audit_export(fmt: str, output: str | None) -> None:
    """Write every audit event, oldest first, for review."""
    settings = load_settings()
    from bot.store.audit import AuditLog
    from bot.store.db import Database

    db = Database(settings.database_url)
    log = AuditLog(db)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            count = log.export(handle, fmt)  # type: ignore[arg-type]
        click.echo(f"{count} events written to {output}", err=True)
    else:
        log.export(sys.stdout, fmt)  # type: ignore[arg-type]
    db.dispose()
