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

Here the run goes from step to step; the steps are in :mod:`jobs.staging_refresh.steps`, a failure's
clean-up and a crashed run's recovery in :mod:`jobs.staging_refresh.recovery`, and what they share
in :mod:`jobs.staging_refresh.run_state`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from bot.aws import AwsGateway
from bot.clock import Clock
from bot.config import Config
from bot.errors import PolicyViolation
from bot.job import JobAudit, not_audited
from bot.render import Renderable
from bot.store.changes import Leases, short_pt
from bot.store.db import Database
from jobs.staging_refresh import rds
from jobs.staging_refresh.databases import DatabaseGate, unexpected_databases
from jobs.staging_refresh.failures import LeaseLost
from jobs.staging_refresh.options import RefreshOptions
from jobs.staging_refresh.rds import RefreshRefused
from jobs.staging_refresh.recovery import Recovery
from jobs.staging_refresh.report import RefreshReport
from jobs.staging_refresh.run_state import LEASE_KEY, Names
from jobs.staging_refresh.steps import Steps
from jobs.staging_refresh.verification import AnonymizeStep, anonymize_with_engine

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


class _Run(Steps, Recovery):
    """One run, step by step: its steps come from :class:`Steps`, its failures and recovery from
    :class:`Recovery`."""

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

    def _lost(self) -> RefreshReport:
        """Another run holds the lock now and owns this run's records and copy: touch nothing."""
        return self._report(
            "failed",
            f"Staging refresh stopped at “{self.at}”: another run took its lock (this one "
            f"went {self.options.lease_minutes:g} min without renewing it). It changed "
            "nothing more and left the rest to that run.",
        )
