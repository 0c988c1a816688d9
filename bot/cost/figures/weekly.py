"""The weekly digest's figures: the 7 days to yesterday and the month to date against prorated
budgets, with a month-end forecast, the services that moved most and the daily spikes."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import TypedDict

from bot.config.schema import Config
from bot.cost import budgets
from bot.cost.budgets import PatientCount
from bot.cost.explorer import CostExplorer, CostLine, CostQueryFailed
from bot.cost.figures.scope import (
    Scope,
    _in_scope,
    _patient_note,
    _scaled_envs,
    _tags_inactive,
    _totals,
    add_months,
    first_of_month,
)
from bot.cost.options import CostOptions
from bot.cost.results import CostDigest, EmergencyAction, EnvWeek, Mover, Spike

WEEK = 7
_SPIKE_MIN_USD = 1.0  # a cent-sized blip over a cent-sized average is not a spike


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
