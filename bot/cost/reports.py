"""The cost report and digest, assembled: options, patient count, cached Cost Explorer, figures.

One entry point per shape, used by the scheduled jobs (``jobs/cost.py``), the `cost` verb and
the demo alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from bot.aws import AwsGateway
from bot.clock import Clock
from bot.config import Config
from bot.cost import figures
from bot.cost.budgets import patient_count
from bot.cost.emergencies import emergency_actions
from bot.cost.explorer import CostExplorer, ForecastCall
from bot.cost.options import CostOptions, cost_options
from bot.cost.results import CostDigest, CostDigestAnswer, CostReport, CostReportAnswer
from bot.store.db import Database


def explorer_for(
    *,
    aws: AwsGateway,
    db: Database,
    clock: Clock,
    options: CostOptions,
    forecast_call: ForecastCall | None = None,
) -> CostExplorer:
    return CostExplorer(
        aws=aws, db=db, clock=clock, ttl=timedelta(hours=options.cache_ttl_hours), forecast_call=forecast_call
    )


def cost_report(
    *,
    config: Config,
    db: Database,
    aws: AwsGateway,
    clock: Clock,
    options: CostOptions | None = None,
    envs: Iterable[str] | None = None,
    answer: bool = False,
) -> CostReport:
    """Last month's report (posted on the 1st); ``answer`` shapes it as an ephemeral reply."""
    options = options or cost_options(config)
    return figures.monthly_report(
        config=config,
        explorer=explorer_for(aws=aws, db=db, clock=clock, options=options),
        options=options,
        now=clock.now(),
        patients=patient_count(options),
        envs=envs,
        result=CostReportAnswer if answer else CostReport,
    )


def cost_digest(
    *,
    config: Config,
    db: Database,
    aws: AwsGateway,
    clock: Clock,
    options: CostOptions | None = None,
    envs: Iterable[str] | None = None,
    forecast_call: ForecastCall | None = None,
    answer: bool = False,
) -> CostDigest:
    """The weekly digest to yesterday; ``forecast_call`` replaces Cost Explorer's GetCostForecast call."""
    options = options or cost_options(config)
    now = clock.now()
    scoped = tuple(envs) if envs is not None else None
    return figures.weekly_digest(
        config=config,
        explorer=explorer_for(aws=aws, db=db, clock=clock, options=options, forecast_call=forecast_call),
        options=options,
        now=now,
        patients=patient_count(options),
        envs=scoped,
        emergencies=emergency_actions(
            db=db, since=now - timedelta(days=figures.WEEK), until=now, envs=scoped
        ),
        result=CostDigestAnswer if answer else CostDigest,
    )
