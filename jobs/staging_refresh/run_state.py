"""One refresh run's plumbing: the names it works on, its records, its lock, its copy and its report."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.aws import AwsGateway
from bot.clock import Clock
from bot.config import Config
from bot.job import JobAudit, not_audited
from bot.render import Renderable
from bot.store.changes import Leases
from bot.store.db import Database
from bot.store.refresh import RefreshRuns
from jobs.staging_refresh import rds, secrets
from jobs.staging_refresh.databases import DatabaseGate
from jobs.staging_refresh.failures import LeaseLost
from jobs.staging_refresh.options import RefreshOptions
from jobs.staging_refresh.rds import Instance, Poller, RefreshFailed
from jobs.staging_refresh.report import RefreshReport, Status, StepLine
from jobs.staging_refresh.verification import AnonymizeStep

log = logging.getLogger("jobs.staging_refresh.flow")  # one name for the refresh's log, as before its split

LEASE_KEY = "refresh:staging"
DEFAULT_BACKUP_RETENTION_DAYS = 7  # when the replaced staging instance's is unknown


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


class RunState:
    """What every part of a run shares: set up once, then the helpers that read and change it."""

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

    def _audit_step(self, step: str, outcome: str, detail: str | None = None) -> None:
        """Each step's start and end in the audit trail, as the run's actor (the lock is audited by the run)."""
        self._audit(
            verb="refresh-step",
            env=self.options.target_env,
            args={"step": step, "refresh_run": self.run_id[:8]},
            outcome=outcome,
            detail=detail,
        )

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
