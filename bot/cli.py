"""`menotime-bot`: the core's commands. The Slack servers (`serve`, `socket`) are added by handlers.cli."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot.errors import ConfigError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.audit_anchor import AnchorStore


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
    from bot.sns import ALARM_PATH_CLOSED, allowed_topics

    cfg = load_config(settings.menotime_config)
    policy = Policy(cfg)
    click.echo(f"configuration OK ({settings.menotime_config or 'shipped defaults'})\n")
    click.echo("Settings:")
    for key, value in settings.describe().items():
        click.echo(f"  {key:<26} {value}")
    click.echo("\nEnvironments:")
    for env in cfg.environments.values():
        bounds = f"{env.tasks.min}-{env.tasks.max} ({'autoscaling' if env.autoscaling else 'manual'})"
        click.echo(
            f"  {env.name:<8} {env.cluster}/{env.service}  family {env.task_family}  db {env.rds_instance}"
        )
        click.echo(
            f"           tasks {env.tasks.default}, allowed {bounds}; tags: {env.image_tags.rule}; "
            f"gate {env.deploy_gate}; alerts {env.alerts_channel or '-'}; "
            f"retention {f'{env.retention_days} days' if env.retention_days else 'indefinite'}"
        )
    topics = allowed_topics(settings=settings, config=cfg)
    click.echo("\nSNS alarm path (SNS_TOPIC_ARNS plus each environment's alarm_topics):")
    click.echo(
        "".join(f"  {topic}\n" for topic in sorted(topics)) if topics else f"  CLOSED: {ALARM_PATH_CLOSED}\n",
        nl=False,
    )
    click.echo(f"\nSchedules ({cfg.jobs.timezone}; only the replica holding the scheduler lease runs them):")
    for job, expr in cfg.jobs.schedules.items():
        click.echo(f"  {job:<16} {expr or '(off)'}")
    click.echo("\nRole membership:")
    for role in Role:
        members = cfg.roles.get(role)
        people = ", ".join(
            [
                *(members.users if members else ()),
                *(f"group {g}" for g in (members.groups if members else ())),
            ]
        )
        click.echo(f"  {role.value:<16} {people or '(nobody)'}")
    click.echo("\nPermission matrix (admin may do everything but approve their own request):")
    click.echo(f"  {'action':<11}" + "".join(f" {e:<44}" for e in cfg.env_names))
    for action in cfg.permissions:
        cells = [
            ",".join(r for r in policy.roles_allowed(action, e) if r != "admin") or "-" for e in cfg.env_names
        ]
        click.echo(f"  {action:<11}" + "".join(f" {c:<44}" for c in cells))


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


@cli.group()
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
