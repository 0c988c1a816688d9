"""Cost Explorer answers for the cost tests, with round figures that the assertions can check."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from bot.config import Config, deep_merge, load_config
from tests.conftest import TEST_ROLES

RDS = "Amazon Relational Database Service"
ELB = "Amazon Elastic Load Balancing"
NAT = "EC2 - Other"
ECS = "Amazon Elastic Container Service"
CW = "AmazonCloudWatch"
KMS = "AWS Key Management Service"

Costs = dict[tuple[str | None, str], float]  # (environment tag value or None, service) -> USD


def answer(periods: list[tuple[date, date, Costs]], *, tag_key: str = "Environment") -> dict[str, Any]:
    """A GetCostAndUsage answer grouped by the tag and SERVICE, as AWS shapes it."""
    return {
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
                "Total": {},
                "Groups": [
                    {
                        "Keys": [f"{tag_key}${env or ''}", service],
                        "Metrics": {"UnblendedCost": {"Amount": f"{amount:.4f}", "Unit": "USD"}},
                    }
                    for (env, service), amount in costs.items()
                ],
                "Estimated": False,
            }
            for start, end, costs in periods
        ],
        "DimensionValueAttributes": [],
    }


# The monthly report of November 2026, run on 1 December: June to November.
MONTHS = [date(2026, m, 1) for m in range(6, 13)]
NOVEMBER: Costs = {
    ("dev", RDS): 140.0,
    ("dev", ELB): 20.0,
    ("dev", NAT): 10.0,  # 170 of 200: under
    ("staging", RDS): 180.0,
    ("staging", ELB): 50.0,  # 230 of 250: 92 %, near
    ("prod", RDS): 490.0,
    ("prod", ELB): 80.0,
    ("prod", NAT): 60.0,
    ("prod", ECS): 40.0,
    ("prod", CW): 30.0,  # 700
    (None, KMS): 25.0,
}
OCTOBER: Costs = {("dev", RDS): 160.0, ("staging", RDS): 250.0, ("prod", RDS): 625.0}
EARLIER: Costs = {("dev", RDS): 100.0, ("prod", RDS): 500.0}


def monthly_answer(*, november: Costs | None = None) -> dict[str, Any]:
    by_month = [EARLIER, EARLIER, EARLIER, EARLIER, OCTOBER, NOVEMBER if november is None else november]
    return answer([(MONTHS[i], MONTHS[i + 1], by_month[i]) for i in range(6)])


# The weekly digest run on Monday 30 November 2026: daily costs of 1–29 November.
SPIKE_DAY = date(2026, 11, 27)


def november_day(day: date) -> Costs:
    this_week = day >= date(2026, 11, 23)
    costs: Costs = {
        ("dev", RDS): 6.0,
        ("staging", RDS): 7.0,
        ("prod", RDS): 20.0,
        ("prod", ELB): 4.0 if this_week else 2.0,
        (None, KMS): 1.0,
    }
    if day == SPIKE_DAY:
        costs[("dev", NAT)] = 20.0
    return costs


def daily_answer() -> dict[str, Any]:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(29)]
    return answer([(d, d + timedelta(days=1), november_day(d)) for d in days])


REPORT_DAY = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # 1 December, 09:00 PT
DIGEST_DAY = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # Monday 30 November, 09:00 PT
FORECAST_REST = {"dev": 6.0, "staging": 7.0, "prod": 24.0}  # 30 November, still to be spent


def cost_config(**options: Any) -> Config:
    return load_config(
        overrides=deep_merge(TEST_ROLES, {"jobs": {"options": {"cost": {"patients": 400, **options}}}})
    )


class ForecastStub:
    """Stands in for GetCostForecast (moto lacks it), answering per the environment filtered on."""

    def __init__(self, rest: dict[str, float] | None = None, fail_for: str | None = None) -> None:
        self.rest, self.fail_for, self.queries = rest or FORECAST_REST, fail_for, []

    def __call__(self, query: dict[str, Any]) -> dict[str, Any]:
        self.queries.append(query)
        env = query["Filter"]["Tags"]["Values"][0]
        if env == self.fail_for:
            raise ClientError(
                {"Error": {"Code": "LimitExceededException", "Message": "slow down"}}, "GetCostForecast"
            )
        return {"Total": {"Amount": str(self.rest[env]), "Unit": "USD"}, "ForecastResultsByTime": []}
