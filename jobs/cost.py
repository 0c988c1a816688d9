"""The monthly cost report (1st, 09:00 PT) and the weekly cost digest (Mon 09:00 PT).

Both read Cost Explorer through the cached :mod:`bot.cost` core, which also answers
`/menotime cost`; the report attaches its six-month chart, which the runner uploads in the thread
of the post. Options: ``jobs.options.cost`` (:class:`bot.cost.options.CostOptions`).
"""

from __future__ import annotations

from collections.abc import Callable

from bot.cost.chart import render_chart
from bot.cost.explorer import IAM_ACTIONS, ForecastCall
from bot.cost.options import OPTIONS_KEY, CostOptions
from bot.cost.reports import cost_digest, cost_report
from bot.cost.results import CostDigest, CostReport
from bot.job import Attachment, JobContext, JobSpec


def _options(ctx: JobContext) -> CostOptions:
    if not isinstance(ctx.options, CostOptions):  # the runner validates with options_model
        raise TypeError("the cost jobs need CostOptions")
    return ctx.options


def run_cost_report(ctx: JobContext) -> CostReport:
    report = cost_report(config=ctx.config, db=ctx.db, aws=ctx.aws, clock=ctx.clock, options=_options(ctx))
    if report.chart is not None:
        ctx.attach(
            Attachment(
                filename=f"menotime-cost-{report.month:%Y-%m}.png",
                content=render_chart(report.chart),
                title=report.chart.title,
            )
        )
    return report


def make_digest(forecast_call: ForecastCall | None = None) -> Callable[[JobContext], CostDigest]:
    """The digest job; ``forecast_call`` stands in for Cost Explorer's GetCostForecast (tests)."""

    def run_cost_digest(ctx: JobContext) -> CostDigest:
        return cost_digest(
            config=ctx.config,
            db=ctx.db,
            aws=ctx.aws,
            clock=ctx.clock,
            options=_options(ctx),
            forecast_call=forecast_call,
        )

    return run_cost_digest


def make_specs(*, forecast_call: ForecastCall | None = None) -> tuple[JobSpec, ...]:
    return (
        JobSpec(
            name="cost-report",
            summary="last month's cost per environment against budget, with a chart",
            env="prod",
            run=run_cost_report,
            options_model=CostOptions,
            options_key=OPTIONS_KEY,
            iam_actions=IAM_ACTIONS[:1],
        ),
        JobSpec(
            name="cost-digest",
            summary="last 7 days and month to date against prorated budgets, forecast, movers, spikes",
            env="prod",
            run=make_digest(forecast_call),
            options_model=CostOptions,
            options_key=OPTIONS_KEY,
            iam_actions=IAM_ACTIONS,
        ),
    )


SPECS = make_specs()
