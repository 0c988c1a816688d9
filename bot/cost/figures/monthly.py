"""The monthly report's figures: last month per environment against its budget, with six months
for the chart."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import TypedDict

from bot.config.schema import Config
from bot.cost import budgets
from bot.cost.budgets import PatientCount
from bot.cost.explorer import CostExplorer, CostQueryFailed
from bot.cost.figures.scope import (
    Scope,
    _in_scope,
    _patient_note,
    _rds_share,
    _scaled_envs,
    _tags_inactive,
    _top_services,
    _totals,
    add_months,
    first_of_month,
    label_of,
)
from bot.cost.options import CostOptions
from bot.cost.results import UNTAGGED, ChartData, CostReport, EnvMonth, ServiceCost, change_share

CHART_MONTHS = 6


class _ReportBase(TypedDict):
    """The fields every monthly report carries, with or without figures."""

    month: date
    through: date
    generated_at: datetime
    patients: int | None
    patients_source: str


class _ReportFigures(TypedDict):
    """The figures of a monthly report; :data:`_NO_FIGURES` when there are none."""

    rows: tuple[EnvMonth, ...]
    total: float
    total_budget: float | None
    previous_total: float | None
    top_services: tuple[ServiceCost, ...]
    rds_share: float | None
    untagged: float | None
    cost_per_patient: float | None
    per_patient_env: str | None


_NO_FIGURES = _ReportFigures(
    rows=(),
    total=0.0,
    total_budget=None,
    previous_total=None,
    top_services=(),
    rds_share=None,
    untagged=None,
    cost_per_patient=None,
    per_patient_env=None,
)


def report_window(today: date) -> tuple[date, date]:
    """[first of the six charted months, first of this month): the report is for last month."""
    end = first_of_month(today)
    return add_months(end, -CHART_MONTHS), end


def monthly_report(
    *,
    config: Config,
    explorer: CostExplorer,
    options: CostOptions,
    now: datetime,
    patients: PatientCount,
    envs: Iterable[str] | None = None,
    result: type[CostReport] = CostReport,
) -> CostReport:
    """Last month (from ``now``'s month), per environment, with six months for the chart."""
    today = now.date()
    first, end = report_window(today)
    month = add_months(end, -1)
    scope = Scope.of(config, envs)
    base = _ReportBase(
        month=month,
        through=today - timedelta(days=1),
        generated_at=now,
        patients=patients.value,
        patients_source=patients.source,
    )
    try:
        usage = explorer.usage(start=first, end=end, granularity="MONTHLY", tag_key=options.tag_key)
    except CostQueryFailed as exc:
        return result(
            **base,
            **_NO_FIGURES,
            chart=None,
            missing=(f"monthly costs by environment and service ({exc.reason})",),
        )

    labels = scope.labels(usage.lines)
    lines = _in_scope(usage.lines, labels)
    totals = _totals(lines)
    this_month = [line for line in lines if line.start == month]
    months = tuple(add_months(first, i) for i in range(CHART_MONTHS))
    if not any(line.amount > 0 for line in this_month):  # a sentence, not a table of zeros
        chart = _chart_data(labels=labels, totals=totals, months=months, budgets_by_env={}, month=month)
        return result(
            **base,
            **_NO_FIGURES,
            chart=chart if chart.has_data else None,
            notes=(
                f"Cost Explorer has no cost data for {month:%B %Y}: nothing was spent, the account is new, or Cost "
                "Explorer is not enabled for it.",
            ),
        )
    previous = add_months(month, -1)
    has_previous = previous in usage.periods and any(line.start == previous for line in lines)
    rows = []
    for label in labels:
        env_lines = [line for line in this_month if label_of(line) == label]
        cost = totals.get((label, month), 0.0)
        budget = budgets.monthly_budget(config, label, patients.value)
        before = totals.get((label, previous), 0.0) if has_previous else None
        rows.append(
            EnvMonth(
                env=label,
                cost=cost,
                budget=budget,
                status=budgets.status(cost, budget),
                previous=before,
                change=change_share(cost, before),
                top_services=_top_services(env_lines, options.top_n),
                rds_share=_rds_share(env_lines),
            )
        )
    total = sum(row.cost for row in rows)
    env_budgets = [row.budget for row in rows if row.budget is not None]
    previous_total = sum(row.previous or 0.0 for row in rows) if has_previous else None

    notes = [note for note in (_tags_inactive(this_month, options.tag_key),) if note]
    if notes:  # every environment at $0 is not "under budget": it is unknown until the tag works
        rows = [dataclasses.replace(row, status=None) for row in rows]
    per_patient_env, per_patient = None, None
    for env in _scaled_envs(config, scope):
        note = _patient_note(config, patients, env)
        if note:
            notes.append(note)
        elif per_patient_env is None and patients.value:
            row = next(r for r in rows if r.env == env)
            per_patient_env, per_patient = env, row.cost / patients.value
    chart = _chart_data(
        labels=labels,
        totals=totals,
        months=months,
        budgets_by_env={r.env: r.budget for r in rows if r.budget is not None},
        month=month,
    )
    return result(
        **base,
        rows=tuple(rows),
        total=total,
        total_budget=sum(env_budgets) if env_budgets else None,
        previous_total=previous_total,
        top_services=_top_services(this_month, options.top_n),
        rds_share=_rds_share(this_month),
        untagged=totals.get((UNTAGGED, month), 0.0) if scope.everything else None,
        cost_per_patient=per_patient,
        per_patient_env=per_patient_env,
        chart=chart if chart.has_data else None,
        notes=tuple(notes),
    )


def _chart_data(
    *,
    labels: tuple[str, ...],
    totals: dict[tuple[str, date], float],
    months: tuple[date, ...],
    budgets_by_env: dict[str, float],
    month: date,
) -> ChartData:
    series = tuple((label, tuple(totals.get((label, m), 0.0) for m in months)) for label in labels)
    return ChartData(
        months=months,
        series=series,
        budgets=tuple(budgets_by_env.items()),
        title=f"AWS cost by environment, {months[0]:%b %Y} – {month:%b %Y}",
    )
