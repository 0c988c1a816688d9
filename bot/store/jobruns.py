"""Job runs: one row per run of a scheduled job — when, why, how it ended — for `jobs list` and review.

A scheduled fire is recorded with its ``scheduled_for`` time, which is unique per job: whichever
replica inserts the row first runs the fire, and every other one learns it "already ran elsewhere".
Manual runs have no ``scheduled_for`` (NULLs never collide).

Datetimes go in and come out timezone-aware in UTC; results are frozen dataclasses, never ORM rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from bot.errors import NotFound
from bot.store.db import Database, rowcount, stored_utc
from bot.store.models import JobRun

if TYPE_CHECKING:
    from bot.render import Renderable

Trigger = Literal["schedule", "misfire", "manual"]
RUNNING = "running"
FINISHED_OUTCOMES = ("succeeded", "failed", "refused")


@dataclass(frozen=True)
class JobRunView:
    id: int
    job: str
    trigger: str
    scheduled_for: datetime | None
    requested_by: str | None
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    outcome: str  # running | succeeded | failed | refused
    summary: str | None
    error: str | None
    report: dict[str, Any] | None
    # The report object this process produced (to print or render); None when read from the store.
    result: Renderable | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return value.astimezone(UTC)


def _view(row: JobRun) -> JobRunView:
    return JobRunView(
        id=row.id,
        job=row.job,
        trigger=row.trigger,
        scheduled_for=stored_utc(row.scheduled_for) if row.scheduled_for else None,
        requested_by=row.requested_by,
        dry_run=bool(row.dry_run),
        started_at=stored_utc(row.started_at),
        finished_at=stored_utc(row.finished_at) if row.finished_at else None,
        outcome=row.outcome,
        summary=row.summary,
        error=row.error,
        report=row.report,
    )


class JobRuns:
    def __init__(self, db: Database) -> None:
        self._db = db

    def start(
        self,
        *,
        job: str,
        trigger: Trigger,
        at: datetime,
        dry_run: bool = False,
        requested_by: str | None = None,
        scheduled_for: datetime | None = None,
        outcome: str = RUNNING,
        summary: str | None = None,
    ) -> JobRunView | None:
        """Records a run (as running, or directly as refused); None when this (job, scheduled_for)
        was already recorded (the fire ran, or is running, elsewhere)."""
        row = JobRun(
            job=job,
            trigger=trigger,
            scheduled_for=_utc(scheduled_for) if scheduled_for else None,
            requested_by=requested_by,
            dry_run=dry_run,
            started_at=_utc(at),
            outcome=outcome,
            summary=summary,
        )
        try:
            with self._db.session() as session:
                session.add(row)
                session.flush()
                return _view(row)
        except IntegrityError:
            if scheduled_for is None:
                raise
            return None

    def finish(
        self,
        *,
        run_id: int,
        outcome: str,
        at: datetime,
        summary: str | None = None,
        error: str | None = None,
        report: dict[str, Any] | None = None,
    ) -> JobRunView:
        if outcome not in FINISHED_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(FINISHED_OUTCOMES)}, not {outcome!r}")
        with self._db.session() as session:
            row = session.get(JobRun, run_id)
            if row is None:
                raise NotFound(f"There is no job run {run_id}.")
            row.outcome, row.finished_at = outcome, _utc(at)
            row.summary, row.error, row.report = summary, error, report
            session.flush()
            return _view(row)

    def abandon_running(self, *, job: str, keep: int, at: datetime) -> int:
        """Marks the job's other `running` rows failed: called by the holder of the job's lease, so
        nobody else can be running it; those rows belong to a process that stopped mid-run."""
        with self._db.session() as session:
            return rowcount(
                session.execute(
                    update(JobRun)
                    .where(JobRun.job == job, JobRun.outcome == RUNNING, JobRun.id != keep)
                    .values(
                        outcome="failed",
                        finished_at=_utc(at),
                        summary="interrupted: the bot stopped during the run",
                        error="interrupted",
                    )
                    .execution_options(synchronize_session=False)
                )
            )

    def forget(self, run_id: int) -> None:
        """Deletes a run that never started (its start could not be audited), so a scheduled fire
        is free to be claimed again by the next tick's catch-up."""
        with self._db.session() as session:
            session.execute(delete(JobRun).where(JobRun.id == run_id))

    def get(self, run_id: int) -> JobRunView:
        with self._db.session(write=False) as session:
            row = session.get(JobRun, run_id)
            if row is None:
                raise NotFound(f"There is no job run {run_id}.")
            return _view(row)

    def exists(self, *, job: str, scheduled_for: datetime) -> bool:
        with self._db.session(write=False) as session:
            return (
                session.execute(
                    select(func.count())
                    .select_from(JobRun)
                    .where(JobRun.job == job, JobRun.scheduled_for == _utc(scheduled_for))
                ).scalar_one()
                > 0
            )

    def recent(self, *, job: str | None = None, limit: int = 20) -> list[JobRunView]:
        """Newest first."""
        query = select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)
        if job is not None:
            query = query.where(JobRun.job == job)
        with self._db.session(write=False) as session:
            return [_view(row) for row in session.execute(query).scalars()]

    def last_by_job(self) -> dict[str, JobRunView]:
        """Each job's most recent run."""
        newest = (select(JobRun.job, func.max(JobRun.id).label("id")).group_by(JobRun.job)).subquery()
        query = select(JobRun).join(newest, JobRun.id == newest.c.id)
        with self._db.session(write=False) as session:
            return {row.job: _view(row) for row in session.execute(query).scalars()}

    def running(self) -> dict[str, JobRunView]:
        """Runs still marked running, the newest per job."""
        query = select(JobRun).where(JobRun.outcome == RUNNING).order_by(JobRun.id)
        with self._db.session(write=False) as session:
            return {row.job: _view(row) for row in session.execute(query).scalars()}
