"""What the cost figures come out as: typed results, rendered by ``templates/{slack,text}/cost_*``.

The scheduled posts (``CostReport``, ``CostDigest``) go to the ops channel; ``/menotime cost``
answers the same figures to the person who asked (the ``*Answer`` classes, ephemeral).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from bot.render import Audience

if TYPE_CHECKING:
    from bot.job import Outcome

UNTAGGED = "untagged"


@dataclass(frozen=True)
class ServiceCost:
    service: str
    amount: float
    share: float  # of the total it is drawn from


@dataclass(frozen=True)
class EnvMonth:
    """One environment (or the untagged spend) in the monthly report."""

    env: str  # an environment, another tag value, or UNTAGGED
    cost: float
    budget: float | None
    status: str | None  # under / near / over (bot.cost.budgets)
    previous: float | None  # the month before; None when that month has no data
    change: float | None  # month over month, as a share (0.12 = +12 %)
    top_services: tuple[ServiceCost, ...]
    rds_share: float | None

    @property
    def budget_share(self) -> float | None:
        return self.cost / self.budget if self.budget else None


@dataclass(frozen=True)
class ChartData:
    """Six months stacked by environment, with each environment's monthly budget."""

    months: tuple[date, ...]
    series: tuple[tuple[str, tuple[float, ...]], ...]  # (label, one amount per month)
    budgets: tuple[tuple[str, float], ...]  # (env, monthly budget)
    title: str

    @property
    def has_data(self) -> bool:
        return any(amount > 0 for _label, amounts in self.series for amount in amounts)


@dataclass(frozen=True)
class CostReport:
    template: ClassVar[str] = "cost_report"
    audience: ClassVar[Audience] = "in_channel"

    month: date  # its first day
    through: date  # figures are Cost Explorer estimates through this day
    generated_at: datetime
    rows: tuple[EnvMonth, ...]
    total: float
    total_budget: float | None
    previous_total: float | None
    top_services: tuple[ServiceCost, ...]
    rds_share: float | None
    untagged: float | None
    patients: int | None
    patients_source: str
    cost_per_patient: float | None
    per_patient_env: str | None
    chart: ChartData | None
    notes: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # figures Cost Explorer did not give, and why

    @property
    def has_data(self) -> bool:
        return any(row.cost > 0 for row in self.rows)

    @property
    def previous_month(self) -> date:
        return (self.month - timedelta(days=1)).replace(day=1)

    @property
    def total_change(self) -> float | None:
        return change_share(self.total, self.previous_total)

    @property
    def outcome(self) -> Outcome:
        return "failed" if self.missing and not self.rows else "succeeded"

    @property
    def summary(self) -> str:
        name = f"{self.month:%B %Y}"
        if self.outcome == "failed":
            return f"Cost report for {name}: Cost Explorer did not answer; no figures"
        if not self.has_data:
            return f"Cost report for {name}: no cost data"
        budget = f" of ${self.total_budget:,.0f} budget" if self.total_budget else ""
        gaps = f"; {len(self.missing)} figure(s) missing" if self.missing else ""
        return f"Cost report for {name}: ${self.total:,.2f}{budget}{gaps}"


@dataclass(frozen=True)
class EnvWeek:
    """One environment (or the untagged spend) in the weekly digest."""

    env: str
    week: float
    week_budget: float | None  # the monthly budget prorated to those 7 days
    week_status: str | None
    month_to_date: float
    mtd_budget: float | None  # prorated to the days of the month so far
    mtd_status: str | None
    monthly_budget: float | None
    forecast: float | None  # month-end total; None when off or missing
    forecast_status: str | None


@dataclass(frozen=True)
class Mover:
    service: str
    this_week: float
    last_week: float

    @property
    def change(self) -> float:
        return self.this_week - self.last_week


@dataclass(frozen=True)
class Spike:
    day: date
    env: str
    cost: float
    trailing_average: float

    @property
    def ratio(self) -> float:
        return self.cost / self.trailing_average


@dataclass(frozen=True)
class EmergencyAction:
    at: datetime
    actor: str
    verb: str
    env: str | None
    reason: str
    seq: int


@dataclass(frozen=True)
class CostDigest:
    template: ClassVar[str] = "cost_digest"
    audience: ClassVar[Audience] = "in_channel"

    week_start: date
    through: date
    month: date
    days_elapsed: int
    days_in_month: int
    generated_at: datetime
    rows: tuple[EnvWeek, ...]
    forecast_label: str | None  # where the month-end forecast comes from; None when off
    movers: tuple[Mover, ...]
    spikes: tuple[Spike, ...]
    spike_ratio: float
    trailing_days: int
    emergencies: tuple[EmergencyAction, ...]
    notes: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def has_data(self) -> bool:
        return any(row.week > 0 or row.month_to_date > 0 for row in self.rows)

    @property
    def week_total(self) -> float:
        return sum(row.week for row in self.rows)

    @property
    def mtd_total(self) -> float:
        return sum(row.month_to_date for row in self.rows)

    @property
    def outcome(self) -> Outcome:
        return "failed" if self.missing and not self.rows else "succeeded"

    @property
    def summary(self) -> str:
        if self.outcome == "failed":
            return f"Cost digest to {self.through}: Cost Explorer did not answer; no figures"
        if not self.has_data:
            return f"Cost digest to {self.through}: no cost data"
        over = [row.env for row in self.rows if row.mtd_status == "over"]
        flags = f"; over budget: {', '.join(over)}" if over else ""
        gaps = f"; {len(self.missing)} figure(s) missing" if self.missing else ""
        return (
            f"Cost digest to {self.through}: ${self.week_total:,.2f} this week, ${self.mtd_total:,.2f} "
            f"month to date{flags}{gaps}"
        )


@dataclass(frozen=True)
class CostReportAnswer(CostReport):
    """`/menotime cost [env] month`: the same figures, to the person who asked."""

    audience: ClassVar[Audience] = "ephemeral"


@dataclass(frozen=True)
class CostDigestAnswer(CostDigest):
    """`/menotime cost [env] week`."""

    audience: ClassVar[Audience] = "ephemeral"


def change_share(now: float, before: float | None) -> float | None:
    """``now`` against ``before`` as a share (0.12 = +12 %); None when there is nothing to compare with."""
    if before is None or before <= 0:
        return None
    return now / before - 1
