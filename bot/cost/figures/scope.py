"""What the monthly report and the weekly digest share: which rows they show (:class:`Scope`), month
arithmetic, sums over Cost Explorer lines, and the notes on an inactive cost-allocation tag or an
unknown patient count."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from bot.config.schema import Config
from bot.cost import budgets
from bot.cost.budgets import PatientCount
from bot.cost.explorer import RDS_SERVICE, CostLine
from bot.cost.results import UNTAGGED, ServiceCost


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
