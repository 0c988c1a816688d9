"""`menotime-bot anonymize` and `menotime-bot synthetic-db`: the anonymization engine by hand.

Exit status of `anonymize`: 0 verified, 1 verification failed (or masking failed), 2 refused
before anything ran (rules or coverage problems, bad configuration), 3 database unreachable."""

from __future__ import annotations

import re
import secrets
import sys

import click

from bot.render import render_text
from handlers.cli.invocation import cli_audit, friendly, load_settings

EXIT_FAILED, EXIT_REFUSED, EXIT_UNREACHABLE = 1, 2, 3


SALT_BYTES = 32


_PROD = re.compile(r"prod", re.IGNORECASE)


@click.command()
@click.option(
    "--dsn", required=True, help="The PostgreSQL database to anonymize IN PLACE (libpq or SQLAlchemy URL)."
)
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Rules YAML (default: the packaged MenoTime rules).",
)
@click.option(
    "--verify-only",
    is_flag=True,
    help="Change nothing: check coverage, that masked columns hold only masked-shaped values, PHI "
    "patterns in free text, row counts and foreign keys.",
)
@friendly
def anonymize(dsn: str, rules_path: str | None, verify_only: bool) -> None:
    """Anonymize a database with set-based SQL and verify it. Salt: ANONYMIZE_SALT (else random).

    Exit status: 0 verified, 1 verification or masking failed, 2 refused before anything ran (rules,
    unruled columns, configuration), 3 database unreachable.
    """
    from jobs.anonymize import DatabaseUnreachable, RulesError, load_rules
    from jobs.anonymize import anonymize as run
    from jobs.anonymize.sql import libpq_dsn

    settings = load_settings()
    if not verify_only and _PROD.search(_target(libpq_dsn(dsn))):
        click.echo(
            "Refusing to anonymize in place a database whose host or name mentions prod; anonymize a "
            "restored copy (the staging refresh does), or use --verify-only.",
            err=True,
        )
        sys.exit(EXIT_REFUSED)
    try:
        rules = load_rules(rules_path)
    except RulesError as exc:
        click.echo(f"Rules refused, nothing ran:\n{exc.message}", err=True)
        sys.exit(EXIT_REFUSED)
    salt: bytes | None = None
    if not verify_only:
        if settings.anonymize_salt is not None and settings.anonymize_salt.get_secret_value():
            salt = settings.anonymize_salt.get_secret_value().encode()
        else:
            salt = secrets.token_bytes(SALT_BYTES)
            click.echo(
                "ANONYMIZE_SALT is not set: this run uses a random salt (not shown, not kept), so its "
                "pseudonyms match no other run.",
                err=True,
            )
    # Audited before it runs (a trail that cannot be written stops it) and with its outcome.
    audit = cli_audit(
        settings,
        verb="anonymize",
        args={
            "target": _target(libpq_dsn(dsn)),
            "verify_only": verify_only,
            "rules": rules_path or "(packaged)",
        },
    )
    audit("started")
    try:
        report = run(
            dsn=dsn,
            rules=rules,
            salt=salt,
            verify_only=verify_only,
            on_progress=lambda message: click.echo(f"... {message}", err=True),
        )
    except DatabaseUnreachable as exc:
        click.echo(str(exc), err=True)
        audit("failed", "the database could not be reached")
        sys.exit(EXIT_UNREACHABLE)
    except ValueError as exc:  # a salt too short: say so, never echo it
        click.echo(f"Configuration error:\n{exc} (ANONYMIZE_SALT)", err=True)
        audit("refused", "ANONYMIZE_SALT was refused")
        sys.exit(EXIT_REFUSED)
    click.echo(render_text(report), nl=False)
    audit("refused" if report.refused else "succeeded" if report.ok else "failed", str(report.summary)[:500])
    if report.refused:
        sys.exit(EXIT_REFUSED)
    if not report.ok:
        sys.exit(EXIT_FAILED)


@click.command("synthetic-db")
@click.option("--dsn", required=True, help="An empty PostgreSQL database to fill.")
@click.option("--patients", type=click.IntRange(1, 10_000_000), default=1000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same rows.")
@friendly
def synthetic_db(dsn: str, patients: int, seed: int) -> None:
    """Create the MenoTime tables filled with plausible fake PHI (for tests, the demo, benchmarks)."""
    from jobs.anonymize import DatabaseUnreachable, create_synthetic

    try:
        counts = create_synthetic(dsn=dsn, patients=patients, seed=seed)
    except (DatabaseUnreachable, ValueError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_REFUSED if isinstance(exc, ValueError) else EXIT_UNREACHABLE)
    click.echo("synthetic MenoTime database created: " + ", ".join(f"{t} {n}" for t, n in counts.items()))


def _target(libpq: str) -> str:
    """Host and database name of a connection string (what the prod guard looks at)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(libpq)
    except Exception:  # noqa: BLE001 - unparsable: psycopg will say so when connecting
        return ""
    return f"{info.get('host', '')} {info.get('dbname', '')}"
