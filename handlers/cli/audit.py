"""`audit verify`, `audit key` and `audit export`: the tamper-evident trail from the command line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from sqlalchemy.exc import SQLAlchemyError

from handlers.cli.invocation import cli_actor, friendly, load_settings

if TYPE_CHECKING:
    from bot.audit_anchor import AnchorStore


@contextmanager
def _trail_reachable(verdict: str, anchors: AnchorStore | None) -> Iterator[None]:
    """A database or anchor bucket that cannot be used is one line and exit 3, distinct from
    "tampered" (exit 1): a monitoring job must tell "cannot check" apart."""
    from botocore.exceptions import ClientError

    from bot.aws import error_code
    from bot.errors import AwsUnavailable

    try:
        yield
    except SQLAlchemyError as exc:
        click.echo(
            f"audit trail {verdict}: the database could not be read ({type(exc).__name__}); "
            "is DATABASE_URL right and `menotime-bot migrate` applied?",
            err=True,
        )
        sys.exit(3)
    except (AwsUnavailable, ClientError) as exc:
        why = exc.message if isinstance(exc, AwsUnavailable) else f"S3 refused: {error_code(exc)}"
        click.echo(
            f"audit trail {verdict}: its anchor in {anchors.where if anchors else 'S3'} could not be read "
            f"or written ({why}).",
            err=True,
        )
        sys.exit(3)


@click.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@friendly
def audit_verify() -> None:
    """Check the keyed hash chain and its anchor; exit 1 if any event was edited, inserted or deleted,
    3 if it cannot be checked (database or anchor bucket unreachable, AUDIT_KEY missing)."""
    settings = load_settings()
    from bot.audit_anchor import AnchorStore, verify_trail
    from bot.store.audit import AuditLog, chain_key
    from bot.store.db import Database

    db = Database(settings.database_url)
    anchors = AnchorStore.from_settings(settings)
    try:
        with _trail_reachable("NOT CHECKED", anchors):
            report = verify_trail(audit=AuditLog(db, key=chain_key(settings)), anchors=anchors)
    finally:
        db.dispose()
    chain = report.chain
    if not report.ok and report.problems:
        click.echo(f"audit trail BROKEN ({chain.checked} events read):", err=True)
        for problem in report.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)
    if chain.unchecked_from is not None:
        click.echo(
            f"audit trail NOT CHECKED: events from {chain.unchecked_from} on are keyed and AUDIT_KEY is not "
            "set; set it to check them.",
            err=True,
        )
        sys.exit(3)
    keyed = f" (HMAC-SHA256 from event {chain.keyed_from})" if chain.keyed_from else ""
    click.echo(f"audit trail intact: {chain.checked} events verified{keyed}")
    if not chain.keyed:
        click.echo(
            "WARNING: the trail is UNKEYED (AUDIT_KEY is not set), so it cannot detect a rewrite: anyone "
            "who can write the database can delete an event and recompute the chain.",
            err=True,
        )
    if not report.anchoring:
        click.echo(
            "WARNING: no anchor outside the database (AUDIT_ANCHOR_BUCKET is not set), so deleting the "
            "newest events and moving the head back cannot be detected.",
            err=True,
        )
        return
    if report.checked_against is not None:
        click.echo(
            f"reaches its latest anchor: event {report.checked_against.seq} ({report.checked_against.key})"
        )
    if report.anchored is not None:
        click.echo(
            f"head anchored: event {report.anchored.seq} in s3://{anchors.bucket if anchors else ''}/"
            f"{report.anchored.key} (Object Lock, compliance mode)"
        )


@audit.command("key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly
def audit_key(yes: bool) -> None:
    """Key a trail written before AUDIT_KEY existed: verify its unkeyed chain, print its head for you
    to record, then write the keying marker (and anchor it with AUDIT_ANCHOR_BUCKET). Exit 1 if the
    trail does not verify or was keyed before, 3 if it cannot be checked."""
    settings = load_settings()
    from bot.audit_anchor import AnchorStore
    from bot.clock import SystemClock
    from bot.store.audit import AuditKeyError, AuditKeyingRefused, AuditLog, ChainHead, chain_key
    from bot.store.db import Database

    key = chain_key(settings)
    if key is None:
        raise AuditKeyError(
            "AUDIT_KEY is not set: set it (the environment or Secrets Manager) to key the trail."
        )
    db = Database(settings.database_url)
    anchors = AnchorStore.from_settings(settings)
    try:
        with _trail_reachable("NOT KEYED", anchors):
            plain = AuditLog(db).verify()  # the unkeyed chain, judged with the plain digest
            if plain.keyed:
                AuditLog(db, key=key).check_key()
                click.echo(
                    f"audit trail already keyed (HMAC-SHA256 from event {plain.keyed_from}): nothing to do."
                )
                return
            if plain.problems:
                click.echo(f"audit trail BROKEN ({plain.checked} events read); not keying it:", err=True)
                for problem in plain.problems:
                    click.echo(f"  - {problem}", err=True)
                sys.exit(1)
            signed = anchors.latest(near=plain.head.seq).top if anchors else None
            if signed is not None:
                # Only a bot holding AUDIT_KEY signs anchors, and it never anchors an unkeyed trail under a key.
                click.echo(
                    f"NOT KEYING: event {signed.seq} was anchored under AUDIT_KEY ({signed.key}), so this trail "
                    "was keyed before and has lost its keying marker: it was rewritten. Run `menotime-bot audit "
                    "verify`.",
                    err=True,
                )
                sys.exit(1)
            head = plain.head
            click.echo(f"unkeyed audit trail verified: {plain.checked} events.")
            click.echo(
                f"Record its head (events up to it are frozen by the keying marker): event {head.seq}, hash "
                f"{head.hash}"
            )
            if not yes:
                click.confirm("Key the trail now?", abort=True)
            marker = AuditLog(db, key=key).key_trail(at=SystemClock().now(), expect=head, actor=cli_actor())
            click.echo(
                f"audit trail keyed: event {marker.seq} ({marker.verb}); every later event is HMAC-SHA256 "
                "under AUDIT_KEY."
            )
            if anchors is not None:
                anchored = anchors.write(ChainHead(seq=marker.seq, hash=marker.hash, at=marker.at))
                click.echo(
                    f"head anchored: event {anchored.seq} in s3://{anchors.bucket}/{anchored.key} (Object Lock, "
                    "compliance mode)"
                )
    except AuditKeyingRefused as exc:
        click.echo(f"NOT KEYING: {exc}", err=True)
        sys.exit(1)
    finally:
        db.dispose()


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout)."
)
@friendly
def audit_export(fmt: str, output: str | None) -> None:
    """Write every audit event, oldest first, for review."""
    settings = load_settings()
    from bot.store.audit import AuditLog
    from bot.store.db import Database

    db = Database(settings.database_url)
    log = AuditLog(db)  # reading needs no key
    if output:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            count = log.export(handle, fmt)  # type: ignore[arg-type]
        click.echo(f"{count} events written to {output}", err=True)
    else:
        log.export(sys.stdout, fmt)  # type: ignore[arg-type]
    db.dispose()
