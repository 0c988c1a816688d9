"""The staging refresh, step by step, recorded so that a crashed run resumes or is cleaned up.

Steps (``STEPS``), each recorded in ``refresh_steps`` and idempotent when run again:

- ``retire-old``: delete replaced staging instances whose recorded swap is older than the retention;
- ``snapshot``: the latest *automated* snapshot of prod (none: refused, nothing created);
- ``restore``: restore it as ``<staging>-next``, private, staging's class, subnet and parameter
  groups, the locked-down security group, tagged with the run id;
- ``password``: a fresh master password, stored as the pending version of the credentials secret;
  automated backups of the copy turned off (that deletes its unmasked backups and restore window);
- ``wait``: poll until the copy is available with its backups off;
- ``anonymize``: refuse a copy holding a database the anonymizer would not mask, then anonymize and
  verify through the injected step; a failed verification deletes the copy and never swaps;
- ``swap``: ``<staging>`` → ``<staging>-old-<yyyymmdd>``, then ``-next`` → ``<staging>``; converges from
  any point (a crash between the two renames is finished forward on the next run);
- ``deploy``: turn the new staging's backups back on (the replaced instance's retention), and force a
  new deployment of the staging service (it picks up the new credentials).

The run renews its lock after every step, while polling and on the anonymizer's progress. A run
that finds its lock taken by another run (it ran past ``lease_minutes`` without renewing) stops at
once, before any further change, and leaves its run to the lock's holder.

A crashed run is resumed from its recorded step by the next run — except one that crashed while
anonymizing: its copy is half-masked (re-running the masking on it would pseudonymize some values
twice and break joins), so the copy is deleted and a new run starts from a fresh restore.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import ClientError

from bot.aws import AwsGateway, error_code
from bot.clock import Clock
from bot.config import Config
from bot.errors import BotError, PolicyViolation
from bot.jobkit import JobAudit, not_audited
from bot.render import Renderable
from bot.store.changes import Leases, short_pt
from bot.store.db import Database
from bot.store.refresh import RefreshRuns, RefreshRunView
from jobs.staging_refresh import rds, secrets
from jobs.staging_refresh.databases import DatabaseGate, unexpected_databases
from jobs.staging_refresh.options import RefreshOptions
from jobs.staging_refresh.rds import Instance, Poller, RefreshFailed, RefreshRefused
from jobs.staging_refresh.report import RefreshReport, Status, StepLine

log = logging.getLogger(__name__)

STEPS: tuple[str, ...] = (
    "retire-old",
    "snapshot",
    "restore",
    "password",
    "wait",
    "anonymize",
    "swap",
    "deploy",
)
LEASE_KEY = "refresh:staging"
DEFAULT_BACKUP_RETENTION_DAYS = 7  # when the replaced staging instance's is unknown


@dataclass(frozen=True)
class Verification:
    ok: bool
    summary: str  # the anonymizer's own summary: counts and checks, never data


class AnonymizeStep(Protocol):
    def __call__(
        self, *, dsn: str, rules_path: str | None, salt: bytes, on_progress: Callable[[str], None]
    ) -> Verification: ...


def anonymize_with_engine(
    *,
    dsn: str,
    rules_path: str | None,
    salt: bytes,
    on_progress: Callable[[str], None] = lambda _message: None,
) -> Verification:
    """The real step: ``jobs.anonymize`` masks the copy and verifies it before any swap (no surviving
    original, then every masked value of its strategy's shape, PHI patterns, keys, counts). It calls
    ``on_progress`` between its phases and tables (the refresh renews its lock there)."""
    from jobs.anonymize import DatabaseUnreachable, anonymize, load_rules

    try:
        report = anonymize(dsn=dsn, rules=load_rules(rules_path), salt=salt, on_progress=on_progress)
    except DatabaseUnreachable:
        return Verification(ok=False, summary="the restored copy's database could not be reached")
    summary = str(report.summary)
    if report.coverage_problems:  # table and column names: what the operator has to rule
        summary += ": " + "; ".join(report.coverage_problems[:5])
    elif report.unmasked_columns:  # after the leak check, the shape check: names and counts, never values
        summary += ": " + "; ".join(c.describe() for c in report.unmasked_columns[:5])
    return Verification(ok=bool(report.ok), summary=summary)


class VerificationFailed(BotError):
    kind = "verification_failed"


class LeaseLost(BotError):
    """Another run took the refresh's lock: this one must change nothing more."""

    kind = "lease_lost"


@dataclass(frozen=True)
class Names:
    source: str
    staging: str
    next: str
    old_prefix: str
    cluster: str
    service: str

    @classmethod
    def of(cls, config: Config, options: RefreshOptions) -> Names:
        source, target = config.env(options.source_env), config.env(options.target_env)
        return cls(
            source=source.rds_instance,
            staging=target.rds_instance,
            next=f"{target.rds_instance}-next",
            old_prefix=f"{target.rds_instance}-old-",
            cluster=target.cluster,
            service=target.service,
        )


def refresh_staging(
    *,
    db: Database,
    aws: AwsGateway,
    clock: Clock,
    config: Config,
    options: RefreshOptions,
    sleep: Callable[[float], None] = time.sleep,
    anonymize_step: AnonymizeStep = anonymize_with_engine,
    database_gate: DatabaseGate = unexpected_databases,
    progress: Callable[[Renderable], object] = lambda _report: None,
    after_step: Callable[[str], None] = lambda _step: None,
    job_run_id: int | None = None,
    requested_by: str | None = None,
    dry_run: bool = False,
    audit: JobAudit = not_audited,
) -> RefreshReport:
    """Runs (or resumes) one refresh and returns its report. ``after_step`` is called once each step
    is recorded (tests raise from it to simulate a crash). ``database_gate`` names the copy's databases
    the anonymizer would leave unmasked (tests without PostgreSQL hand in a fake)."""
    names = Names.of(config, options)
    if dry_run:
        return _plan(aws=aws, names=names)
    if not options.security_group_ids:
        return _refused(
            "no locked-down security group is configured for the restored copy; set "
            "jobs.options.staging-refresh.security_group_ids. Nothing was created."
        )
    holder = uuid.uuid4().hex
    leases = Leases(db)
    try:
        leases.acquire(
            env=LEASE_KEY,
            holder=holder,
            action="refresh",
            user=requested_by or "scheduler",
            now=clock.now(),
            ttl=timedelta(minutes=options.lease_minutes),
        )
    except PolicyViolation:
        current = leases.get(LEASE_KEY, now=clock.now())
        since = (
            f" (since {short_pt(current.acquired_at, clock.now())}; its lock expires at "
            f"{short_pt(current.expires_at, clock.now())})"
            if current
            else ""
        )
        return _refused(f"another staging refresh is running{since}; this one did not start.")
    run = _Run(
        db=db,
        aws=aws,
        clock=clock,
        options=options,
        names=names,
        sleep=sleep,
        anonymize_step=anonymize_step,
        database_gate=database_gate,
        progress=progress,
        after_step=after_step,
        leases=leases,
        holder=holder,
        audit=audit,
    )
    # A Python exception releases the lock (the next run recovers at once); a process that dies (or
    # a BaseException, which tests use to simulate that) leaves it to expire.
    try:
        report = run.go(job_run_id=job_run_id)
        if report.run_id:
            run.show(report)  # the living message ends showing how the run ended
    except Exception:
        leases.release(env=LEASE_KEY, holder=holder)
        raise
    leases.release(env=LEASE_KEY, holder=holder)
    return report


def _refused(headline: str) -> RefreshReport:
    return RefreshReport(status="refused", run_id=None, headline=f"Staging refresh refused: {headline}")


def _plan(*, aws: AwsGateway, names: Names) -> RefreshReport:
    snapshot = rds.latest_automated_snapshot(aws, names.source)
    if snapshot is None:
        return _refused(f"no automated snapshot of {names.source} exists.")
    return RefreshReport(
        status="succeeded",
        run_id=None,
        dry_run=True,
        headline=f"Dry run: would restore {snapshot['DBSnapshotIdentifier']} as {names.next}, anonymize and "
        f"verify it, then swap it in as {names.staging}.",
        names=(
            ("snapshot", snapshot["DBSnapshotIdentifier"]),
            ("restored copy", names.next),
            ("staging", names.staging),
        ),
        notes=("Nothing was created or changed.",),
    )


class _Run:
    def __init__(
        self,
        *,
        db: Database,
        aws: AwsGateway,
        clock: Clock,
        options: RefreshOptions,
        names: Names,
        sleep: Callable[[float], None],
        anonymize_step: AnonymizeStep,
        database_gate: DatabaseGate,
        progress: Callable[[Renderable], object],
        after_step: Callable[[str], None],
        leases: Leases,
        holder: str,
        audit: JobAudit = not_audited,
    ) -> None:
        self.runs = RefreshRuns(db)
        self._audit = audit
        self.aws, self.clock, self.options, self.names = aws, clock, options, names
        self.anonymize_step, self._progress, self.after_step = anonymize_step, progress, after_step
        self.database_gate = database_gate
        self.leases, self.holder = leases, holder
        self.poller = Poller(
            clock=clock,
            sleep=sleep,
            interval=options.poll_seconds,
            timeout=options.wait_minutes * 60,
            on_wait=self._renew,
        )
        self.notes: list[str] = []
        self.run_id = ""
        self.state: dict[str, Any] = {}
        self.at = "start"  # the step under way
        self._password: str | None = None

    # -- the run ---------------------------------------------------------------------------------

    def go(self, *, job_run_id: int | None) -> RefreshReport:
        try:
            return self._go(job_run_id=job_run_id)
        except LeaseLost:  # from any step, or from a wait while recovering
            return self._lost()

    def _go(self, *, job_run_id: int | None) -> RefreshReport:
        resumed = self._recover()
        if resumed is None:
            try:
                self._clear_leftover_copy()
            except RefreshRefused as exc:
                return _refused(f"{exc.message}. Nothing was created.")
            self.run_id = uuid.uuid4().hex
            self.state = {"done": [], "staging": self.names.staging, "next": self.names.next}
            self.runs.start(run_id=self.run_id, job_run_id=job_run_id, now=self.clock.now(), state=self.state)
        else:
            self.run_id, self.state = resumed.id, resumed.state
            self.notes.append(f"Resumed run {resumed.id[:8]} from its step “{resumed.step}”.")
        for step in STEPS:
            if step in self.state.get("done", []):
                continue
            failure = self._step(step)
            if failure is not None:
                return failure
        self.runs.finish(run_id=self.run_id, now=self.clock.now(), status="completed")
        return self._report(
            "succeeded",
            f"Staging refreshed: {self.names.staging} is now an anonymized, verified "
            f"copy of {self.state.get('snapshot_id')}.",
        )

    def _step(self, step: str) -> RefreshReport | None:
        self.at = step
        self._renew()
        self.runs.begin_step(run_id=self.run_id, step=step, now=self.clock.now())
        self._audit_step(step, "started")
        self._post()
        try:
            detail = getattr(self, "_do_" + step.replace("-", "_"))()
        except LeaseLost:
            raise
        except RefreshRefused as exc:
            self.runs.end_step(
                run_id=self.run_id, step=step, now=self.clock.now(), outcome="failed", detail=exc.message
            )
            self._audit_step(step, "refused", exc.message)
            self.runs.finish(run_id=self.run_id, now=self.clock.now(), status="refused", error=exc.message)
            return self._report("refused", f"Staging refresh refused: {exc.message}. Nothing was created.")
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, cleaned up and reported
            return self._fail(step, exc)
        self.runs.end_step(run_id=self.run_id, step=step, now=self.clock.now(), outcome="done", detail=detail)
        self._audit_step(step, "done", detail)
        self._save(done=[*self.state.get("done", []), step])
        self._renew()
        self._post()
        self.after_step(step)
        return None

    def _audit_step(self, step: str, outcome: str, detail: str | None = None) -> None:
        """Each step's start and end in the audit trail, as the run's actor (the lock is audited by the run)."""
        self._audit(
            verb="refresh-step",
            env=self.options.target_env,
            args={"step": step, "refresh_run": self.run_id[:8]},
            outcome=outcome,
            detail=detail,
        )

    def _lost(self) -> RefreshReport:
        """Another run holds the lock now and owns this run's records and copy: touch nothing."""
        return self._report(
            "failed",
            f"Staging refresh stopped at “{self.at}”: another run took its lock (this one "
            f"went {self.options.lease_minutes:g} min without renewing it). It changed "
            "nothing more and left the rest to that run.",
        )

    def _fail(self, step: str, exc: Exception) -> RefreshReport:
        message = _describe_error(exc)
        if not isinstance(exc, BotError | ClientError):
            log.error("staging refresh step %s failed", step, exc_info=exc)
        self.runs.end_step(
            run_id=self.run_id, step=step, now=self.clock.now(), outcome="failed", detail=message
        )
        self._audit_step(step, "failed", message)
        if step == "swap":
            return self._fail_swap(message)
        if not self.state.get("swap_started"):
            self._cleanup_copy()
        self.runs.finish(run_id=self.run_id, now=self.clock.now(), status="failed", error=message)
        never = " Staging was not swapped." if not self.state.get("swap_started") else ""
        return self._report("failed", f"Staging refresh failed at “{step}”: {message}.{never}")

    def _fail_swap(self, message: str) -> RefreshReport:
        """Puts the old staging back if the copy was not renamed yet; if staging is still missing under
        its name, the run stays recorded as running so that the next run finishes the swap."""
        try:
            old = self.state.get("old_instance")
            if old and rds.describe(self.aws, self.names.next) is not None:
                self._roll_back_rename(old)
            staging_there = rds.describe(self.aws, self.names.staging) is not None
        except Exception as exc:  # noqa: BLE001 - AWS still failing: the next run converges
            log.warning("could not check staging after a failed swap: %s", _describe_error(exc))
            staging_there = False
        if not staging_there:
            return self._report(
                "failed",
                f"Staging refresh failed while swapping: {message}. "
                f"{self.names.staging} is missing under its name; the next run "
                "finishes the swap.",
            )
        self._cleanup_copy()
        self.runs.finish(run_id=self.run_id, now=self.clock.now(), status="failed", error=message)
        return self._report(
            "failed",
            f"Staging refresh failed while swapping: {message}. {self.names.staging} was left as it was.",
        )

    # -- recovery --------------------------------------------------------------------------------

    def _recover(self) -> RefreshRunView | None:
        """We hold the lock, so every run still marked running is dead: resume the latest, unless
        it died while anonymizing (then delete its half-masked copy and start afresh)."""
        unfinished = self.runs.unfinished()
        for stale in unfinished[:-1]:
            self.runs.finish(run_id=stale.id, now=self.clock.now(), status="abandoned", error="superseded")
        if not unfinished:
            return None
        last = unfinished[-1]
        if last.step == "anonymize" and "anonymize" not in last.state.get("done", []):
            self.run_id, self.state = last.id, last.state
            self._cleanup_copy()
            self.runs.finish(
                run_id=last.id,
                now=self.clock.now(),
                status="abandoned",
                error="stopped while anonymizing; its half-anonymized copy was deleted",
            )
            self.notes.append(
                f"Run {last.id[:8]} stopped while anonymizing; its half-anonymized copy was deleted "
                "and this run started from a fresh restore."
            )
            return None
        if last.step == "cleanup":
            # It died while deleting its copy after a failure (a failed verification, say): it was
            # failing, so finish that, never resume it; resuming would anonymize its half-masked,
            # unverified copy a second time against "originals" that are no longer the originals.
            self.run_id, self.state = last.id, last.state
            self._cleanup_copy()
            self.runs.finish(
                run_id=last.id,
                now=self.clock.now(),
                status="failed",
                error="stopped while deleting its copy after a failure; the copy was deleted",
            )
            self.notes.append(
                f"Run {last.id[:8]} stopped while cleaning up after a failure; its copy was deleted "
                "and this run started from a fresh restore."
            )
            self.run_id, self.state = "", {}
            return None
        return last

    def _clear_leftover_copy(self) -> None:
        """A ``-next`` left by an earlier run of ours (failed, abandoned) is deleted before restoring;
        one not made by a refresh is not ours to delete."""
        found = rds.describe(self.aws, self.names.next)
        if found is None:
            return
        known = {run.id for run in self.runs.recent()}
        if found.run_tag not in known:
            raise RefreshRefusedEarly(
                f"{self.names.next} exists and was not made by a staging refresh; "
                "delete or rename it, then run again"
            )
        rds.delete(self.aws, identifier=found.identifier)
        self.poller.until(
            f"the leftover {found.identifier} to be deleted",
            lambda: rds.describe(self.aws, self.names.next) is None,
        )
        self.notes.append(f"Deleted the leftover {found.identifier} of run {found.run_tag[:8]}.")

    def _cleanup_copy(self) -> None:
        found = rds.describe(self.aws, self.names.next)
        if found is None or found.run_tag != self.run_id:
            return
        self.runs.begin_step(run_id=self.run_id, step="cleanup", now=self.clock.now())
        try:
            rds.delete(self.aws, identifier=found.identifier)
        except Exception as exc:  # noqa: BLE001 - the next run deletes it
            self.runs.end_step(
                run_id=self.run_id,
                step="cleanup",
                now=self.clock.now(),
                outcome="failed",
                detail=f"{_describe_error(exc)}; the next run deletes it",
            )
            return
        self.runs.end_step(
            run_id=self.run_id,
            step="cleanup",
            now=self.clock.now(),
            outcome="done",
            detail=f"deleted {found.identifier}",
        )

    # -- the steps (each returns the detail shown next to it) ------------------------------------

    def _do_retire_old(self) -> str:
        now, retention = self.clock.now(), timedelta(hours=self.options.old_retention_hours)
        deleted, kept, failed = [], [], []
        for run in self.runs.recent():
            old, swapped = run.state.get("old_instance"), run.state.get("swapped_at")
            if (
                not old
                or not swapped
                or run.state.get("old_deleted_at")
                or not old.startswith(self.names.old_prefix)
            ):
                continue
            due = datetime.fromisoformat(swapped) + retention
            if now < due:
                kept.append(f"{old} (until {due:%Y-%m-%d %H:%M} UTC)")
                continue
            try:
                gone = rds.delete(self.aws, identifier=old)
            except ClientError as exc:  # not worth failing the refresh for: tried again next week
                failed.append(f"{old} ({error_code(exc)})")
                continue
            if gone:
                deleted.append(old)
            self.runs.update_state(run_id=run.id, now=now, old_deleted_at=now.isoformat())
        parts = [f"deleted {', '.join(deleted)}" if deleted else "nothing due"]
        if failed:
            parts.append(f"could not delete {', '.join(failed)}")
        if kept:
            parts.append(f"kept {', '.join(kept)}")
        return "; ".join(parts)

    def _do_snapshot(self) -> str:
        secrets.salt(self.aws, secret_id=self.options.salt_secret_id)  # refuse now, before creating anything
        snapshot = rds.latest_automated_snapshot(self.aws, self.names.source)
        if snapshot is None:
            raise RefreshRefused(f"no automated snapshot of {self.names.source} exists")
        taken: datetime = snapshot["SnapshotCreateTime"]
        self._save(snapshot_id=snapshot["DBSnapshotIdentifier"], snapshot_time=taken.isoformat())
        return f"{snapshot['DBSnapshotIdentifier']} (taken {taken:%Y-%m-%d %H:%M} UTC)"

    def _do_restore(self) -> str:
        existing = rds.describe(self.aws, self.names.next)
        if existing is not None:
            if existing.run_tag != self.run_id:
                raise RefreshFailed(f"{self.names.next} exists and is not this run's copy")
            return f"{self.names.next} already restored"
        template = rds.describe(self.aws, self.names.staging) or rds.describe(self.aws, self.names.source)
        if template is None:
            raise RefreshFailed(
                f"neither {self.names.staging} nor {self.names.source} exists to copy settings from"
            )
        o = self.options
        rds.restore(
            self.aws,
            snapshot_id=self.state["snapshot_id"],
            identifier=self.names.next,
            template=template,
            run_id=self.run_id,
            security_group_ids=o.security_group_ids,
            instance_class=o.db_instance_class,
            subnet_group=o.db_subnet_group,
            parameter_group=o.db_parameter_group,
        )
        return (
            f"{self.names.next} from {self.state['snapshot_id']}, private, security group "
            f"{', '.join(o.security_group_ids)}"
        )

    def _do_password(self) -> str:
        copy = self._own_copy()
        self._password = secrets.pending_password(
            self.aws,
            secret_id=self.options.master_secret_id,
            run_id=self.run_id,
            username=copy.master_username,
        )
        rds.reset_master_password(self.aws, identifier=copy.identifier, password=self._password)
        return f"new password stored in {self.options.master_secret_id} (pending until the swap)"

    def _do_wait(self) -> str:
        def available() -> bool:
            found = rds.describe(self.aws, self.names.next)
            return found is not None and found.status == "available" and found.backups_off

        self.poller.until(f"{self.names.next} to become available with its backups off", available)
        return f"{self.names.next} is available, automated backups off"

    def _do_anonymize(self) -> str:
        copy = self._own_copy()
        if not copy.backups_off:  # its unmasked backups would become staging's
            raise RefreshFailed(f"{self.names.next} still keeps automated backups; refusing to anonymize it")
        salt = secrets.salt(self.aws, secret_id=self.options.salt_secret_id)
        dsn = self._dsn(copy)
        result = self._other_databases(dsn)
        if result is None:
            try:
                result = self.anonymize_step(
                    dsn=dsn,
                    rules_path=self.options.rules_path,
                    salt=salt,
                    on_progress=lambda _message: self._renew(),
                )
            except LeaseLost:
                raise
            except Exception as exc:  # noqa: BLE001 - the engine's failure is a failed verification
                result = Verification(ok=False, summary=f"the anonymizer stopped: {_describe_error(exc)}")
        self._save(verification=result.summary, verification_ok=result.ok)
        if not result.ok:
            raise VerificationFailed(f"verification failed ({result.summary})")
        return result.summary

    def _other_databases(self, dsn: str) -> Verification | None:
        """A failed verification if the copy holds a database the anonymizer would not mask."""
        try:
            others = self.database_gate(dsn=dsn, safe=frozenset(self.options.extra_databases_safe))
        except Exception as exc:  # noqa: BLE001 - unknown databases are as bad as unmasked ones
            return Verification(
                ok=False,
                summary=f"could not list the databases of the restored copy ({_describe_error(exc)})",
            )
        if not others:
            return None
        shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
        return Verification(
            ok=False,
            summary=f"the restored copy holds databases the anonymizer would not mask: "
            f"{shown}; drop them from prod or declare them in "
            "extra_databases_safe if they hold no PHI",
        )

    def _do_swap(self) -> str:
        if self.state.get("verification_ok") is not True:
            raise RefreshFailed("the copy was not verified; refusing to swap")
        staging = rds.describe(self.aws, self.names.staging)
        if "staging_backup_retention" not in self.state:  # recorded before the first rename
            retention = (
                staging.backup_retention if staging is not None and staging.run_tag != self.run_id else None
            )
            self._save(
                staging_backup_retention=DEFAULT_BACKUP_RETENTION_DAYS if retention is None else retention
            )
        old = self.state.get("old_instance") or self._free_old_name()
        self._save(old_instance=old, swap_started=True)
        copy = rds.describe(self.aws, self.names.next)
        if staging is not None and staging.run_tag != self.run_id:
            rds.rename(self.aws, identifier=self.names.staging, new_identifier=old)
            self.poller.until(
                f"{self.names.staging} to be renamed {old}",
                lambda: rds.describe(self.aws, self.names.staging) is None,
            )
            staging = None
        if staging is None:
            if copy is None or copy.run_tag != self.run_id:
                self._roll_back_rename(old)
                raise RefreshFailed(
                    f"{self.names.next} disappeared before the swap; {old} was renamed back to "
                    f"{self.names.staging}"
                )
            rds.rename(self.aws, identifier=self.names.next, new_identifier=self.names.staging)

        def swapped_in() -> bool:
            found = rds.describe(self.aws, self.names.staging)
            return found is not None and found.run_tag == self.run_id and found.status == "available"

        self.poller.until(f"{self.names.next} to be renamed {self.names.staging}", swapped_in)
        secrets.promote(self.aws, secret_id=self.options.master_secret_id, run_id=self.run_id)
        replaced = old if rds.describe(self.aws, old) is not None else None
        self._save(swapped_at=self.clock.now().isoformat(), old_instance=replaced)
        kept = f"; {old} is kept {self.options.old_retention_hours:g} h" if replaced else ""
        return f"{self.names.next} is now {self.names.staging}{kept} (DNS follows a rename within minutes)"

    def _do_deploy(self) -> str:
        backups = self._restore_backups()
        deployment = rds.force_new_deployment(
            self.aws, cluster=self.names.cluster, service=self.names.service
        )
        self._save(deployment=deployment)
        return f"{backups}; " + (
            f"new deployment {deployment} of {self.names.service}"
            if deployment
            else f"new deployment of {self.names.service} requested"
        )

    def _restore_backups(self) -> str:
        """Gives the new staging the replaced instance's backup retention — only ever a verified copy."""
        if self.state.get("verification_ok") is not True:
            raise RefreshFailed("the copy was not verified; refusing to turn its backups on")
        found = rds.describe(self.aws, self.names.staging)
        if found is None or found.run_tag != self.run_id:
            raise RefreshFailed(f"{self.names.staging} is not this run's copy; its backups were left alone")
        days = int(self.state.get("staging_backup_retention", DEFAULT_BACKUP_RETENTION_DAYS))
        if found.backup_retention != days:
            rds.set_backup_retention(self.aws, identifier=found.identifier, days=days)
        return f"automated backups kept {days} days" if days else "automated backups off, as before"

    # -- helpers ---------------------------------------------------------------------------------

    def _own_copy(self) -> Instance:
        found = rds.describe(self.aws, self.names.next)
        if found is None or found.run_tag != self.run_id:
            raise RefreshFailed(f"{self.names.next} is missing or not this run's copy")
        return found

    def _dsn(self, copy: Instance) -> str:
        override = self.options.dsn_overrides.get(copy.identifier)
        if override:
            return override
        from psycopg.conninfo import make_conninfo

        password = self._password or secrets.pending_password(
            self.aws,
            secret_id=self.options.master_secret_id,
            run_id=self.run_id,
            username=copy.master_username,
        )
        return make_conninfo(
            host=copy.host or "",
            port=copy.port or 5432,
            dbname=copy.db_name or "postgres",
            user=copy.master_username,
            password=password,
            sslmode="require",
            connect_timeout=10,
        )

    def _free_old_name(self) -> str:
        base = f"{self.names.old_prefix}{self.clock.now():%Y%m%d}"
        candidate, n = base, 1
        while rds.describe(self.aws, candidate) is not None:
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def _roll_back_rename(self, old: str) -> None:
        if rds.describe(self.aws, self.names.staging) is None and rds.describe(self.aws, old) is not None:
            rds.rename(self.aws, identifier=old, new_identifier=self.names.staging)
            self.poller.until(
                f"{old} to be renamed back to {self.names.staging}",
                lambda: rds.describe(self.aws, self.names.staging) is not None,
            )
        self._save(old_instance=None, swap_started=False)

    def _save(self, **changes: object) -> None:
        self.state = self.runs.update_state(run_id=self.run_id, now=self.clock.now(), **changes)

    def _renew(self) -> None:
        if not self.leases.renew(
            env=LEASE_KEY,
            holder=self.holder,
            now=self.clock.now(),
            ttl=timedelta(minutes=self.options.lease_minutes),
        ):
            raise LeaseLost("another run took the staging refresh's lock")

    def _post(self) -> None:
        self.show(self._report("running", f"Refreshing {self.names.staging} from {self.names.source}…"))

    def show(self, report: RefreshReport) -> None:
        try:
            self._progress(report)
        except Exception:
            log.warning("could not update the staging refresh progress message", exc_info=True)

    def _report(self, status: Status, headline: str) -> RefreshReport:
        steps = (
            tuple(
                StepLine(step=s.step, outcome=s.outcome, seconds=s.seconds, detail=s.detail)
                for s in self.runs.steps(self.run_id)
            )
            if self.run_id
            else ()
        )
        state = self.state
        names = [
            ("snapshot", state.get("snapshot_id")),
            ("restored copy", self.names.next),
            ("staging", self.names.staging),
            ("replaced instance", state.get("old_instance")),
        ]
        return RefreshReport(
            status=status,
            run_id=self.run_id or None,
            headline=headline,
            steps=steps,
            names=tuple((k, v) for k, v in names if v),
            verification=state.get("verification"),
            verification_ok=state.get("verification_ok"),
            notes=tuple(self.notes),
        )


class RefreshRefusedEarly(RefreshRefused):
    """Raised before a run row exists."""


def _describe_error(exc: BaseException) -> str:
    """One safe sentence: our own messages (AwsUnavailable included), AWS error codes, else the
    error's type (never its text, which for a database driver could carry connection details)."""
    if isinstance(exc, BotError):
        return exc.message
    if isinstance(exc, ClientError):
        operation = getattr(exc, "operation_name", "AWS")
        return f"AWS refused {operation} ({error_code(exc)})"
    return f"unexpected {type(exc).__name__}"
