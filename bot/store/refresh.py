"""Staging refresh runs and their steps: what a refresh reached, so a crashed one resumes or is cleaned up.

A run row holds the step it is at, its status and a small JSON ``state`` (snapshot id, instance
names, the old instance's name and swap time, the verification summary): never a password, never
anything read from the refreshed database. Step rows are the history shown in the progress message
and the report. Datetimes go in and come out timezone-aware in UTC; results are frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update

from bot.store.db import Database, stored_utc
from bot.store.models import RefreshRun, RefreshStep

RunStatus = Literal["running", "completed", "failed", "refused", "abandoned"]
StepOutcome = Literal["running", "done", "failed", "skipped"]


@dataclass(frozen=True)
class RefreshStepView:
    step: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    detail: str | None

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None


@dataclass(frozen=True)
class RefreshRunView:
    id: str
    job_run_id: int | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    step: str
    status: str
    state: dict[str, Any]
    error: str | None


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return stored_utc(value)


def _run_view(row: RefreshRun) -> RefreshRunView:
    return RefreshRunView(
        id=row.id,
        job_run_id=row.job_run_id,
        started_at=stored_utc(row.started_at),
        updated_at=stored_utc(row.updated_at),
        finished_at=stored_utc(row.finished_at) if row.finished_at else None,
        step=row.step,
        status=row.status,
        state=dict(row.state or {}),
        error=row.error,
    )


def _step_view(row: RefreshStep) -> RefreshStepView:
    return RefreshStepView(
        step=row.step,
        started_at=stored_utc(row.started_at),
        finished_at=stored_utc(row.finished_at) if row.finished_at else None,
        outcome=row.outcome,
        detail=row.detail,
    )


class RefreshRuns:
    def __init__(self, db: Database) -> None:
        self._db = db

    def start(
        self, *, run_id: str, job_run_id: int | None, now: datetime, state: dict[str, Any]
    ) -> RefreshRunView:
        now = _aware(now)
        with self._db.session() as session:
            row = RefreshRun(
                id=run_id,
                job_run_id=job_run_id,
                started_at=now,
                updated_at=now,
                step="start",
                status="running",
                state=dict(state),
            )
            session.add(row)
            session.flush()
            return _run_view(row)

    def get(self, run_id: str) -> RefreshRunView | None:
        with self._db.session(write=False) as session:
            row = session.get(RefreshRun, run_id)
            return _run_view(row) if row is not None else None

    def unfinished(self) -> list[RefreshRunView]:
        """Runs still marked running (oldest first): either alive elsewhere or crashed."""
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(RefreshRun).where(RefreshRun.status == "running").order_by(RefreshRun.started_at)
            ).scalars()
            return [_run_view(row) for row in rows]

    def recent(self, *, limit: int = 100) -> list[RefreshRunView]:
        """The latest runs, newest first (old instances to retire are recorded in their state)."""
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(RefreshRun).order_by(RefreshRun.started_at.desc()).limit(limit)
            ).scalars()
            return [_run_view(row) for row in rows]

    def begin_step(self, *, run_id: str, step: str, now: datetime) -> None:
        now = _aware(now)
        with self._db.session() as session:
            session.add(RefreshStep(run_id=run_id, step=step, started_at=now, outcome="running"))
            session.execute(
                update(RefreshRun).where(RefreshRun.id == run_id).values(step=step, updated_at=now)
            )

    def end_step(
        self, *, run_id: str, step: str, now: datetime, outcome: StepOutcome, detail: str | None = None
    ) -> None:
        """Closes the latest row of ``step`` (a resumed run may have started it twice)."""
        now = _aware(now)
        with self._db.session() as session:
            row = session.execute(
                select(RefreshStep)
                .where(RefreshStep.run_id == run_id, RefreshStep.step == step)
                .order_by(RefreshStep.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            if row is None:
                row = RefreshStep(run_id=run_id, step=step, started_at=now)
                session.add(row)
            row.finished_at, row.outcome, row.detail = now, outcome, detail
            session.execute(update(RefreshRun).where(RefreshRun.id == run_id).values(updated_at=now))

    def update_state(self, *, run_id: str, now: datetime, **changes: Any) -> dict[str, Any]:
        """Merges ``changes`` into the run's state (JSON values only) and returns the new state."""
        now = _aware(now)
        with self._db.session() as session:
            row = session.execute(
                select(RefreshRun).where(RefreshRun.id == run_id).with_for_update()
            ).scalar_one()
            state = {**(row.state or {}), **changes}
            row.state, row.updated_at = state, now  # a new dict: SQLAlchemy sees the change
            return dict(state)

    def finish(self, *, run_id: str, now: datetime, status: RunStatus, error: str | None = None) -> None:
        now = _aware(now)
        with self._db.session() as session:
            session.execute(
                update(RefreshRun)
                .where(RefreshRun.id == run_id)
                .values(status=status, finished_at=now, updated_at=now, error=error)
            )

    def steps(self, run_id: str) -> list[RefreshStepView]:
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(RefreshStep).where(RefreshStep.run_id == run_id).order_by(RefreshStep.id)
            ).scalars()
            return [_step_view(row) for row in rows]
