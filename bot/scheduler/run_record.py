"""What a job run's record and audit trail hold: its actor, its one-line summary, its report as JSON."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bot.errors import BotError
from bot.job import JobReport

log = structlog.get_logger("menotime.jobs")

_TEXT_LIMIT = 500
_RECORD_LIMIT = 20_000  # characters of a report's JSON kept in job_runs.report
SCHEDULER_ACTOR = "scheduler"


def run_actor(*, trigger: str, requested_by: str | None) -> str:
    """Who a run acts as in the audit trail: the scheduler for its own fires, else whoever asked."""
    if trigger in ("schedule", "misfire") or not requested_by:
        return SCHEDULER_ACTOR
    return requested_by


def _from_database(exc: BaseException) -> bool:
    return isinstance(exc, SQLAlchemyError) or type(exc).__module__.split(".")[0] in (
        "psycopg",
        "psycopg2",
        "sqlite3",
    )


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, BotError) else str(exc)


def _line(text: str) -> str:
    """One line, bounded: what `jobs list` and the run record show."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _TEXT_LIMIT else flat[: _TEXT_LIMIT - 1] + "…"


def report_record(report: JobReport) -> dict[str, Any]:
    """A JSON summary of a report for ``job_runs.report``: its outcome and summary, and its fields
    (a report may shape these with a ``record() -> dict`` method), dropped if they are too large."""
    record: dict[str, Any] = {
        "template": report.template,
        "outcome": report.outcome,
        "summary": report.summary,
    }
    shape: object = report  # as an object: mypy narrows no Protocol type by is_dataclass
    try:
        shaper = getattr(report, "record", None)
        if callable(shaper):
            detail: Any = shaper()
        elif dataclasses.is_dataclass(shape) and not isinstance(shape, type):  # a report is an instance
            detail = dataclasses.asdict(shape)
        elif hasattr(shape, "model_dump"):
            detail = shape.model_dump(mode="json")
        else:
            return record
        text = json.dumps(detail, default=str)
    except Exception as exc:  # noqa: BLE001 - the record is a convenience; the run stands without it
        log.warning("job_report_not_recorded", template=report.template, error=type(exc).__name__)
        return record
    if len(text) > _RECORD_LIMIT:
        record["detail_omitted"] = f"{len(text):,} characters"
    else:
        record["detail"] = json.loads(text)
    return record
