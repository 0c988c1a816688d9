"""Budgets from the configuration, and prod's active-patient count that scales its budget.

The count comes from the cost options: a fixed number, or one SQL query against a configured
database (read only, one number back). Only the number leaves that database, never a row.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.config import Config
from bot.cost.options import CostOptions

UNDER, NEAR, OVER = "under", "near", "over"
NEAR_SHARE = 0.9  # from 90 % of the budget a row is flagged before it goes over


@dataclass(frozen=True)
class PatientCount:
    value: int | None
    source: str  # "configured", "database", or "unknown"
    problem: str | None = None  # why the database gave no number


def patient_count(options: CostOptions) -> PatientCount:
    if options.patients is not None:
        return PatientCount(value=options.patients, source="configured")
    if options.patients_dsn is None or options.patients_query is None:
        return PatientCount(value=None, source="unknown")
    return _count_from_database(options.patients_dsn.get_secret_value(), options.patients_query)


def _count_from_database(dsn: str, query: str) -> PatientCount:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        engine = create_engine(dsn, pool_pre_ping=False)
    except (ArgumentError, ImportError, ValueError):
        return PatientCount(value=None, source="unknown", problem="patients_dsn is not a database URL")
    try:
        with engine.connect() as conn:
            value: Any = conn.execute(text(query)).scalar()  # whatever the operator's query returns
    except SQLAlchemyError as exc:
        # The driver's text may hold the DSN or data: only its class is reported.
        return PatientCount(
            value=None, source="unknown", problem=f"the patient query failed ({type(exc).__name__})"
        )
    finally:
        engine.dispose()
    try:
        number = int(value)
    except (TypeError, ValueError):
        return PatientCount(value=None, source="unknown", problem="the patient query did not return a number")
    if number < 0:
        return PatientCount(
            value=None, source="unknown", problem="the patient query returned a negative number"
        )
    return PatientCount(value=number, source="database")


def monthly_budget(config: Config, env: str, patients: int | None) -> float | None:
    """The env's monthly budget (prod's interpolated at ``patients``); None for an unknown env."""
    if env not in config.environments:
        return None
    return config.env(env).budget.for_patients(patients)


def scales_with_patients(config: Config, env: str) -> bool:
    return env in config.environments and bool(config.env(env).budget.points)


def days_in_month(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def prorated(monthly: float, *, days: int, month: date) -> float:
    """``days`` worth of a monthly budget in ``month``'s length."""
    return monthly * days / days_in_month(month)


def status(spent: float, budget: float | None) -> str | None:
    if budget is None or budget <= 0:
        return None
    share = spent / budget
    return OVER if share > 1 else NEAR if share >= NEAR_SHARE else UNDER
