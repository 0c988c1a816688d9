"""Cost data for the simulator: Cost Explorer answers queued into moto, and a demo printout.

moto's Cost Explorer answers ``GetCostAndUsage`` from a queue filled through its injection
endpoint (``/moto-api/static/ce/cost-and-usage-results``): the first unseen query takes the next
queued result and keeps it. :func:`queue_usage_results` fills that queue (tests queue answers in the
order the bot asks); :func:`demo_cost_data` computes the exact queries the report and the digest
will send, answers them from a small model of MenoTime's spend (the seed's budgets, RDS about 70 %
of prod, a little untagged spend, one spike in the last week) and binds each answer to its query,
so the bot gets the right answer in whatever order it asks.

moto has no ``GetCostForecast``: under the simulator the digest's forecast is the run-rate
estimate (:data:`SIMULATOR_CONFIG_OVERRIDES`), labelled as such in the digest.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, TextIO
from urllib.parse import urlsplit

from bot.aws import AwsGateway
from bot.clock import Clock
from bot.config import Config
from bot.cost import figures
from bot.cost.explorer import METRIC, RDS_SERVICE, Granularity, usage_query
from bot.cost.options import OPTIONS_KEY, CostOptions, cost_options
from bot.render import render_text
from bot.store.db import Database

INJECTION_PATH = "/moto-api/static/ce/cost-and-usage-results"

# Merge into the configuration when running against the simulator (moto lacks GetCostForecast).
SIMULATOR_CONFIG_OVERRIDES: dict[str, Any] = {"jobs": {"options": {OPTIONS_KEY: {"forecast": "run_rate"}}}}

# Monthly spend per environment in the model, and how it splits across services.
_MONTHLY = {"dev": 182.0, "staging": 236.0, "prod": 655.0}
_OTHER_MONTHLY = 120.0  # an environment the seed does not describe
_UNTAGGED_MONTHLY = 14.0
_SPLIT: tuple[tuple[str, float], ...] = (
    (RDS_SERVICE, 0.70),
    ("Amazon Elastic Load Balancing", 0.10),
    ("EC2 - Other", 0.08),  # NAT Gateway hours and bytes
    ("Amazon Elastic Container Service", 0.07),
    ("AmazonCloudWatch", 0.03),
    ("AWS Data Transfer", 0.02),
)
_UNTAGGED_SPLIT: tuple[tuple[str, float], ...] = (
    ("AWS Key Management Service", 0.6),
    ("Amazon Route 53", 0.4),
)
_GROWTH_PER_MONTH = 0.03
_SPIKE_ENV, _SPIKE_SERVICE, _SPIKE_DAYS_AGO, _SPIKE_USD = "dev", "EC2 - Other", 3, 9.0


def daily_cost(*, env: str | None, service: str, day: date, today: date) -> float:
    """The model's spend of ``env`` (None: untagged) on ``service`` that day."""
    if env is None:
        monthly, split = _UNTAGGED_MONTHLY, dict(_UNTAGGED_SPLIT)
    else:
        monthly, split = _MONTHLY.get(env, _OTHER_MONTHLY), dict(_SPLIT)
    if service not in split:
        return 0.0
    months_back = (today.year - day.year) * 12 + today.month - day.month
    base = monthly * (1 - _GROWTH_PER_MONTH) ** months_back / 30.4 * split[service]
    # Deterministic day-to-day wobble of ±6 %, the same on every run.
    seed = hashlib.sha256(f"{env}|{service}|{day}".encode()).digest()[0]
    amount = base * (0.94 + 0.12 * seed / 255)
    if env == _SPIKE_ENV and service == _SPIKE_SERVICE and day == today - timedelta(days=_SPIKE_DAYS_AGO):
        amount += _SPIKE_USD
    return round(amount, 4)


def model_answer(
    query: dict[str, Any], *, envs: Iterable[str], today: date, tagged: bool = True
) -> dict[str, Any]:
    """The GetCostAndUsage answer the model gives to ``query`` (grouped by the tag and SERVICE)."""
    start = date.fromisoformat(query["TimePeriod"]["Start"])
    end = date.fromisoformat(query["TimePeriod"]["End"])
    granularity: Granularity = query["Granularity"]
    tag_key = query["GroupBy"][0]["Key"]
    owners: list[str | None] = [*envs, None]
    services = [s for s, _ in _SPLIT] + [s for s, _ in _UNTAGGED_SPLIT]
    periods = []
    for p_start, p_end in _periods(start, end, granularity):
        sums: dict[tuple[str, str], float] = {}
        day = p_start
        while day < p_end:
            for owner in owners:
                for service in services:
                    amount = daily_cost(env=owner, service=service, day=day, today=today)
                    if amount:
                        key = (f"{tag_key}${owner or ''}" if tagged else f"{tag_key}$", service)
                        sums[key] = sums.get(key, 0.0) + amount
            day += timedelta(days=1)
        periods.append(
            {
                "TimePeriod": {"Start": p_start.isoformat(), "End": p_end.isoformat()},
                "Total": {},
                "Groups": [
                    {"Keys": list(k), "Metrics": {METRIC: {"Amount": f"{v:.4f}", "Unit": "USD"}}}
                    for k, v in sorted(sums.items())
                ],
                "Estimated": p_end >= today,
            }
        )
    return {"ResultsByTime": periods, "DimensionValueAttributes": []}


def _periods(start: date, end: date, granularity: Granularity) -> list[tuple[date, date]]:
    spans = []
    cursor = start
    while cursor < end:
        following = (
            cursor + timedelta(days=1)
            if granularity == "DAILY"
            else figures.add_months(figures.first_of_month(cursor), 1)
        )
        spans.append((cursor, min(following, end)))
        cursor = min(following, end)
    return spans


def bot_queries(*, today: date, options: CostOptions) -> list[dict[str, Any]]:
    """The GetCostAndUsage queries the monthly report and the weekly digest send on ``today``."""
    report_start, report_end = figures.report_window(today)
    digest_start, digest_end = figures.digest_window(today, options)
    return [
        usage_query(start=report_start, end=report_end, granularity="MONTHLY", tag_key=options.tag_key),
        usage_query(start=digest_start, end=digest_end, granularity="DAILY", tag_key=options.tag_key),
    ]


def queue_usage_results(gateway: AwsGateway, results: list[dict[str, Any]]) -> None:
    """Append answers to moto's GetCostAndUsage queue, through its injection endpoint."""
    endpoint = gateway.client("ce").meta.endpoint_url
    host = urlsplit(endpoint).hostname or ""
    if host.endswith("amazonaws.com"):
        # moto in this process (mock_aws): the injection endpoint's own handler, called directly.
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.moto_api._internal.models import moto_api_backend

        for result in results:
            moto_api_backend.set_ce_cost_usage(result=result, account_id=DEFAULT_ACCOUNT_ID)
        return
    request = urllib.request.Request(
        f"{endpoint.rstrip('/')}{INJECTION_PATH}",
        method="POST",
        data=json.dumps({"results": results}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        if answer.status != 201:
            raise RuntimeError(f"moto refused the Cost Explorer results (HTTP {answer.status})")


def demo_cost_data(gateway: AwsGateway, clock: Clock, config: Config, *, tagged: bool = True) -> int:
    """Give the simulator the cost data of today's report and digest; returns the queries answered.

    Each answer is queued and then asked for once, which binds it to its query in moto."""
    options = cost_options(config)
    today = clock.now().date()
    queries = bot_queries(today=today, options=options)
    for query in queries:
        queue_usage_results(gateway, [model_answer(query, envs=config.env_names, today=today, tagged=tagged)])
        gateway.call("ce", "get_cost_and_usage", **query)
    return len(queries)


def print_cost_digest(*, config: Config, db: Database, aws: AwsGateway, clock: Clock, out: TextIO) -> str:
    """The weekly digest on whatever Cost Explorer (or the simulator) answers, printed as console text."""
    from bot.cost.reports import cost_digest

    text = render_text(cost_digest(config=config, db=db, aws=aws, clock=clock))
    out.write(text)
    return text
