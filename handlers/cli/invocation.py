"""How a CLI command runs: its settings, who runs it (for the audit trail), and problems as one
line with an exit status instead of a traceback."""

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


def os_user() -> str:
    """Who runs the CLI: the name of the process's effective user in the password database, not
    LOGNAME/USER (anyone can set those). Without an entry (some containers), the login name the
    environment gives; ``unknown`` when there is none either."""
    import getpass
    import pwd

    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, OSError):  # no entry for this uid
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no login name: still audited, as "unknown"
            user = ""
    return "".join(c for c in user if c.isprintable() and not c.isspace())[:40] or "unknown"


def cli_actor() -> str:
    """Who runs a CLI command, as the audit trail names them: ``cli:<OS user>``."""
    return f"cli:{os_user()}"


def cli_audit(
    settings: Settings, *, verb: str, args: dict[str, Any], env: str | None = None
) -> Callable[..., None]:
    """``record(outcome, detail=None)``: audit events of a CLI command that changes things without
    building a core (`anonymize`), as ``cli:<OS user>``. With no DATABASE_URL configured there is no
    trail to write to: one warning says so. A trail that cannot be written stops the command (exit 3)."""
    if "database_url" not in settings.model_fields_set:
        click.echo(
            f"WARNING: DATABASE_URL is not set, so this {verb} is not recorded in the bot's audit trail.",
            err=True,
        )
        return lambda outcome, detail=None: None
    from bot.clock import SystemClock
    from bot.store.audit import AuditLog, chain_key
    from bot.store.db import Database

    key, actor = chain_key(settings), cli_actor()

    def record(outcome: str, detail: str | None = None) -> None:
        db = Database(settings.database_url)
        try:
            AuditLog(db, key=key).append(
                at=SystemClock().now(),
                actor=actor,
                source="cli",
                verb=verb,
                env=env,
                args=args,
                rule="cli",
                outcome=outcome,
                detail=detail,
            )
        except SQLAlchemyError as exc:
            click.echo(
                f"The audit trail at DATABASE_URL could not be written ({type(exc).__name__}); this {verb} "
                f"stops here (outcome so far: {outcome}). Is `menotime-bot migrate` applied?",
                err=True,
            )
            sys.exit(3)
        finally:
            db.dispose()

    return record


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
            click.echo(
                f"The database at DATABASE_URL cannot be used ({type(exc.orig).__name__}); check that it "
                "is running and reachable, and the URL.",
                err=True,
            )
            sys.exit(3)

    return wrapper
