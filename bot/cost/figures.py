"""The monthly report's and the weekly digest's figures, from Cost Explorer lines and the budgets.

Pure arithmetic over :class:`bot.cost.explorer.Usage`: what Cost Explorer could not give is listed
in ``missing`` and never shown as a zero.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypedDict

from bot.config import Config
from bot.cost import budgets
from bot.cost.budgets import PatientCount
from bot.cost.explorer import RDS_SERVICE, CostExplorer, CostLine, CostQueryFailed
from bot.cost.options import CostOptions
from bot.cost.results import (
    UNTAGGED,
    ChartData,
    CostDigest,
    CostReport,
    EmergencyAction,
    EnvMonth,
    EnvWeek,
    Mover,
    ServiceCost,
    Spike,
    change_share,
)

CHART_MONTHS = 6
WEEK = 7
_SPIKE_MIN_USD = 1.0  # a cent-sized blip over a cent-sized average is not a spike


@dataclass(frozen=True)
class Scope:
    """Which rows to show: the environments asked about; the untagged and other rows only for all."""

    envs: tuple[str, ...]
    configured: tuple[str, ...]

    @classmethod
    def of(cls, config: Config, envs: Iterable[str] | None) -> Scope:
        chosen = tuple(envs) if envs is not None else config.env_names
        return cls(envs=tuple(e for e in config.env_names if e in chosen), configured=config.env_names)

    @property
    def everything(self) -> bool:
        return self.envs == self.configured

    def labels(self, lines: Iterable[CostLine]) -> tuple[str, ...]:
        """The configured environments asked for; with all of them, other tag values and the untagged."""
        if not self.everything:
            return self.envs
        lines = list(lines)
        others = sorted({line.env for line in lines if line.env and line.env not in self.configured})
        return (*self.envs, *others, UNTAGGED)  # the untagged row is always shown, even at $0


def label_of(line: CostLine) -> str:
    return line.env if line.env else UNTAGGED


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _in_scope(lines: Iterable[CostLine], labels: tuple[str, ...]) -> list[CostLine]:
    return [line for line in lines if label_of(line) in labels]


def _top_services(lines: Iterable[CostLine], count: int) -> tuple[ServiceCost, ...]:
    by_service: dict[str, float] = defaultdict(float)
    for line in lines:
        by_service[line.service] += line.amount
    total = sum(by_service.values())
    ranked = sorted(((s, a) for s, a in by_service.items() if a > 0), key=lambda item: (-item[1], item[0]))
    return tuple(
        ServiceCost(service=s, amount=a, share=a / total if total else 0.0) for s, a in ranked[:count]
    )


def _rds_share(lines: list[CostLine]) -> float | None:
    total = sum(line.amount for line in lines)
    if total <= 0:
        return None
    return sum(line.amount for line in lines if line.service == RDS_SERVICE) / total


def _totals(lines: Iterable[CostLine]) -> dict[tuple[str, date], float]:
    totals: dict[tuple[str, date], float] = defaultdict(float)
    for line in lines:
        totals[(label_of(line), line.start)] += line.amount
    return totals


def _tags_inactive(lines: list[CostLine], tag_key: str) -> str | None:
    if any(line.amount > 0 for line in lines) and all(line.env is None for line in lines if line.amount > 0):
        return (
            f"No spend carries the `{tag_key}` tag, so all of it shows as untagged: the cost-allocation tag "
            f"is probably not activated. Activate `{tag_key}` in the Billing console (Billing and Cost "
            "Management → Cost allocation tags → select it → Activate); spend is split by environment "
            "within 24 hours, and earlier months can be backfilled from the same page."
        )
    return None


def _patient_note(config: Config, patients: PatientCount, env: str) -> str | None:
    if patients.value is not None:
        return None
    lowest = min(config.env(env).budget.points, key=lambda p: p.patients)
    why = patients.problem or (
        "no patient count is configured (set `patients`, or `patients_dsn` and "
        "`patients_query`, under `jobs.options.cost`)"
    )
    return (
        f"{env}'s active-patient count is unknown: {why}. Its budget is taken at ${lowest.monthly_usd:,.0f} "
        f"({lowest.patients:,} patients) and the cost per patient is left out."
    )


def _scaled_envs(config: Config, scope: Scope) -> list[str]:
    return [env for env in scope.envs if budgets.scales_with_patients(config, env)]


# --------------------------------------------------------------------------------------------
# The monthly report


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


# --------------------------------------------------------------------------------------------
# The weekly digest

Forecaster = Callable[[str, date, float], float]
"""(env, today, month-to-date) → that env's month-end total. Raises CostQueryFailed."""


class _DigestBase(TypedDict):
    """The fields every weekly digest carries, with or without figures."""

    week_start: date
    through: date
    month: date
    days_elapsed: int
    days_in_month: int
    generated_at: datetime
    forecast_label: str | None
    spike_ratio: float
    trailing_days: int
    emergencies: tuple[EmergencyAction, ...]


def digest_window(today: date, options: CostOptions) -> tuple[date, date]:
    """Daily costs back far enough for the month to date, last week and the spikes' trailing average."""
    week_start = today - timedelta(days=WEEK)
    return min(
        first_of_month(today - timedelta(days=1)),
        week_start - timedelta(days=max(WEEK, options.trailing_days)),
    ), today


def weekly_digest(
    *,
    config: Config,
    explorer: CostExplorer,
    options: CostOptions,
    now: datetime,
    patients: PatientCount,
    emergencies: tuple[EmergencyAction, ...],
    envs: Iterable[str] | None = None,
    forecaster: Forecaster | None = None,
    result: type[CostDigest] = CostDigest,
) -> CostDigest:
    """The 7 days to yesterday and the month to date, against prorated budgets, with a forecast."""
    today = now.date()
    through = today - timedelta(days=1)
    month = first_of_month(through)
    week_start = today - timedelta(days=WEEK)
    start, _end = digest_window(today, options)
    scope = Scope.of(config, envs)
    dim = budgets.days_in_month(month)
    forecast_label = _forecast_label(options)
    base = _DigestBase(
        week_start=week_start,
        through=through,
        month=month,
        days_elapsed=through.day,
        days_in_month=dim,
        generated_at=now,
        forecast_label=forecast_label,
        spike_ratio=options.spike_ratio,
        trailing_days=options.trailing_days,
        emergencies=emergencies,
    )
    try:
        usage = explorer.usage(start=start, end=today, granularity="DAILY", tag_key=options.tag_key)
    except CostQueryFailed as exc:
        return result(
            **base,
            rows=(),
            movers=(),
            spikes=(),
            missing=(f"daily costs by environment and service ({exc.reason})",),
        )

    labels = scope.labels(usage.lines)
    lines = _in_scope(usage.lines, labels)
    shown_from = min(week_start, month)
    if not any(line.amount > 0 for line in lines if line.start >= shown_from):  # a sentence, not zeros
        return result(
            **base,
            rows=(),
            movers=(),
            spikes=(),
            notes=(
                f"Cost Explorer has no cost data from {shown_from} to {through}: nothing was spent, the account is "
                "new, or Cost Explorer is not enabled for it.",
            ),
        )
    daily = _totals(lines)
    week_days = [week_start + timedelta(days=i) for i in range(WEEK)]
    mtd_days = [month + timedelta(days=i) for i in range(through.day)]
    rows, missing = [], []
    forecaster = forecaster or _forecaster(options, explorer, month=month)
    for label in labels:
        week = sum(daily.get((label, d), 0.0) for d in week_days)
        mtd = sum(daily.get((label, d), 0.0) for d in mtd_days)
        monthly = budgets.monthly_budget(config, label, patients.value)
        week_budget = _span_budget(monthly, week_days)
        mtd_budget = _span_budget(monthly, mtd_days)
        forecast = None
        if label in config.environments and forecaster is not None:
            try:
                forecast = forecaster(label, today, mtd)
            except CostQueryFailed as exc:
                missing.append(f"{label} month-end forecast ({exc.reason})")
        rows.append(
            EnvWeek(
                env=label,
                week=week,
                week_budget=week_budget,
                week_status=budgets.status(week, week_budget),
                month_to_date=mtd,
                mtd_budget=mtd_budget,
                mtd_status=budgets.status(mtd, mtd_budget),
                monthly_budget=monthly,
                forecast=forecast,
                forecast_status=budgets.status(forecast, monthly) if forecast is not None else None,
            )
        )

    notes = [note for note in (_tags_inactive(lines, options.tag_key),) if note]
    if notes:  # every environment at $0 is not "under budget": it is unknown until the tag works
        rows = [
            dataclasses.replace(row, week_status=None, mtd_status=None, forecast_status=None) for row in rows
        ]
    for env in _scaled_envs(config, scope):
        if note := _patient_note(config, patients, env):
            notes.append(note)
    return result(
        **base,
        rows=tuple(rows),
        movers=_movers(lines, week_start, options.top_n),
        spikes=_spikes(daily, labels, week_days, options),
        notes=tuple(notes),
        missing=tuple(missing),
    )


def _span_budget(monthly: float | None, days: list[date]) -> float | None:
    if monthly is None:
        return None
    return sum(monthly / budgets.days_in_month(d) for d in days)


def _forecast_label(options: CostOptions) -> str | None:
    return {
        "cost_explorer": "Cost Explorer forecast",
        "run_rate": "run-rate estimate (month to date × days)",
        "off": None,
    }[options.forecast]


def _forecaster(options: CostOptions, explorer: CostExplorer, *, month: date) -> Forecaster | None:
    month_end = add_months(month, 1)
    if options.forecast == "off":
        return None
    if options.forecast == "run_rate":

        def run_rate(env: str, today: date, mtd: float) -> float:
            elapsed = (min(today, month_end) - month).days
            return mtd / elapsed * budgets.days_in_month(month) if elapsed else mtd

        return run_rate

    def cost_explorer(env: str, today: date, mtd: float) -> float:
        if today >= month_end:  # the month is over: its total is what was spent
            return mtd
        return mtd + explorer.forecast(start=today, end=month_end, tag_key=options.tag_key, env=env)

    return cost_explorer


def _movers(lines: list[CostLine], week_start: date, count: int) -> tuple[Mover, ...]:
    this_week: dict[str, float] = defaultdict(float)
    last_week: dict[str, float] = defaultdict(float)
    before = week_start - timedelta(days=WEEK)
    for line in lines:
        if line.start >= week_start:
            this_week[line.service] += line.amount
        elif line.start >= before:
            last_week[line.service] += line.amount
    movers = [
        Mover(service=s, this_week=this_week.get(s, 0.0), last_week=last_week.get(s, 0.0))
        for s in set(this_week) | set(last_week)
    ]
    movers = [m for m in movers if abs(m.change) >= 0.01]
    return tuple(sorted(movers, key=lambda m: (-abs(m.change), m.service))[:count])


def _spikes(
    daily: dict[tuple[str, date], float], labels: tuple[str, ...], week_days: list[date], options: CostOptions
) -> tuple[Spike, ...]:
    found = []
    for label in labels:
        for day in week_days:
            window = [day - timedelta(days=i) for i in range(1, options.trailing_days + 1)]
            average = sum(daily.get((label, d), 0.0) for d in window) / len(window)
            cost = daily.get((label, day), 0.0)
            if average > 0 and cost > average * options.spike_ratio and cost - average >= _SPIKE_MIN_USD:
                found.append(Spike(day=day, env=label, cost=cost, trailing_average=average))
    return tuple(sorted(found, key=lambda s: (s.day, s.env)))
