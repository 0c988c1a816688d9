"""Cost figures from moto's Cost Explorer (answers queued through its injection endpoint, in the
order the bot asks), the forecast stubbed, the cache in SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.config import deep_merge, load_config
from bot.cost.options import CostOptions
from bot.cost.reports import cost_digest, cost_report
from bot.cost.results import UNTAGGED
from bot.cost.simdata import queue_usage_results
from bot.errors import ConfigError
from bot.job import JobSpec
from bot.render import render_slack, render_text
from bot.store.audit import AuditLog
from bot.store.db import Database
from tests import cost_data as data
from tests.blockkit import assert_valid_message
from tests.conftest import TEST_ROLES, moto_session
from tests.cost_data import DIGEST_DAY, REPORT_DAY, ForecastStub, cost_config


class CeSpy:
    """Counts the Cost Explorer requests that reach moto (each costs $0.01 on AWS)."""

    def __init__(self, aws: AwsGateway) -> None:
        self.calls: list[str] = []
        original = aws.call

        def call(service: str, operation: str, /, **params: Any) -> dict[str, Any]:
            if service == "ce":
                self.calls.append(operation)
            return original(service, operation, **params)

        aws.call = call  # type: ignore[method-assign]


@pytest.fixture
def spy(aws: AwsGateway) -> CeSpy:
    return CeSpy(aws)


def _row(result: Any, env: str) -> Any:
    return next(row for row in result.rows if row.env == env)


def _rendered(result: Any) -> str:
    assert_valid_message(render_slack(result))
    return render_text(result)


# --------------------------------------------------------------------------------------------
# The monthly report


def test_monthly_report_figures(db: Database, aws: AwsGateway, spy: CeSpy) -> None:
    queue_usage_results(aws, [data.monthly_answer()])
    report = cost_report(config=cost_config(), db=db, aws=aws, clock=FrozenClock(REPORT_DAY))

    assert report.month == date(2026, 11, 1) and report.through == date(2026, 11, 30)
    assert spy.calls == ["get_cost_and_usage"]
    assert [r.env for r in report.rows] == ["dev", "staging", "prod", UNTAGGED]
    dev, staging, prod, untagged = report.rows
    # Budgets from the configuration; prod's interpolated at 400 patients: 616 + 150/750 × 280 = 672.
    assert (dev.cost, dev.budget, dev.status) == (170.0, 200.0, "under")
    assert (staging.cost, staging.budget, staging.status) == (230.0, 250.0, "near")
    assert (prod.cost, prod.budget, prod.status) == (700.0, pytest.approx(672.0), "over")
    assert (untagged.cost, untagged.budget, untagged.status) == (25.0, None, None)
    assert report.untagged == 25.0
    # Month over month against October.
    assert dev.previous == 160.0 and dev.change == pytest.approx(170 / 160 - 1)
    assert staging.change == pytest.approx(230 / 250 - 1)
    assert prod.change == pytest.approx(700 / 625 - 1)
    assert untagged.previous == 0.0 and untagged.change is None
    assert report.total == 1125.0 and report.previous_total == 1035.0
    assert report.total_budget == pytest.approx(1122.0)
    assert report.total_change == pytest.approx(1125 / 1035 - 1)
    # Top five services overall and per environment; RDS's share.
    assert [s.service for s in report.top_services] == [data.RDS, data.ELB, data.NAT, data.ECS, data.CW]
    assert report.top_services[0].amount == 810.0
    assert [s.service for s in prod.top_services] == [data.RDS, data.ELB, data.NAT, data.ECS, data.CW]
    assert [s.service for s in staging.top_services] == [data.RDS, data.ELB]
    assert report.rds_share == pytest.approx(810 / 1125) and prod.rds_share == pytest.approx(0.7)
    # Prod per patient.
    assert report.per_patient_env == "prod" and report.cost_per_patient == pytest.approx(1.75)
    assert report.patients == 400 and report.patients_source == "configured"
    # Six months for the chart, stacked by environment with the budgets.
    assert report.chart is not None and report.chart.months[0] == date(2026, 6, 1)
    assert dict(report.chart.series)["prod"] == (500.0, 500.0, 500.0, 500.0, 625.0, 700.0)
    assert dict(report.chart.budgets) == {"dev": 200.0, "staging": 250.0, "prod": pytest.approx(672.0)}
    assert not report.missing and not report.notes and report.outcome == "succeeded"

    text = _rendered(report)
    assert "Cost report for November 2026 (Cost Explorer estimates through 2026-11-30)" in text
    assert "OVER prod       $700.00 of $672 (104 %), +12.0 % month over month, RDS 70 %" in text
    assert "NEAR staging    $230.00 of $250 (92 %), -8.0 % month over month" in text
    assert "Untagged: $25.00" in text and "prod per patient: $1.75 (400 active patients)" in text
    slack = render_slack(report)
    rows = next(b["text"]["text"] for b in slack["blocks"] if "*prod*" in b.get("text", {}).get("text", ""))
    assert ":red_circle: *prod* $700.00 of $672 (104 %)" in rows and ":warning: *staging*" in rows
    assert ":white_check_mark: *dev*" in rows


def test_second_report_in_the_same_window_asks_cost_explorer_nothing(
    db: Database, aws: AwsGateway, spy: CeSpy
) -> None:
    queue_usage_results(aws, [data.monthly_answer()])
    clock, config = FrozenClock(REPORT_DAY), cost_config(cache_ttl_hours=6)
    first = cost_report(config=config, db=db, aws=aws, clock=clock)
    clock.advance(hours=5)
    second = cost_report(config=config, db=db, aws=aws, clock=clock)
    assert spy.calls == ["get_cost_and_usage"]
    assert second.rows == first.rows

    clock.advance(hours=2)  # past the TTL: asked again
    cost_report(config=config, db=db, aws=aws, clock=clock)
    assert spy.calls == ["get_cost_and_usage"] * 2


def test_tags_not_activated_says_so_and_how_to_fix_it(db: Database, aws: AwsGateway) -> None:
    everything_untagged: data.Costs = {}
    for (_env, service), amount in data.NOVEMBER.items():
        everything_untagged[(None, service)] = everything_untagged.get((None, service), 0.0) + amount
    queue_usage_results(aws, [data.monthly_answer(november=everything_untagged)])
    report = cost_report(config=cost_config(), db=db, aws=aws, clock=FrozenClock(REPORT_DAY))

    assert _row(report, UNTAGGED).cost == 1125.0 and _row(report, "prod").cost == 0.0
    assert all(row.status is None for row in report.rows)  # $0 is not "under budget" here: unknown
    text = _rendered(report)
    assert "ok   prod" not in text
    assert "the cost-allocation tag is probably not activated" in text
    assert "Activate Environment in the Billing console" in text and "Cost allocation tags" in text


def test_no_data_says_so_and_draws_no_chart(db: Database, aws: AwsGateway) -> None:
    report = cost_report(
        config=cost_config(), db=db, aws=aws, clock=FrozenClock(REPORT_DAY)
    )  # nothing queued

    assert report.chart is None and report.total == 0.0 and report.outcome == "succeeded"
    text = _rendered(report)
    assert "Cost Explorer has no cost data for November 2026" in text
    assert "No chart: no cost data to draw." in text
    assert report.summary == "Cost report for November 2026: no cost data"
    assert report.rows == () and "$0.00" not in text  # a sentence, not a table of zeros

    digest = cost_digest(
        config=cost_config(), db=db, aws=aws, clock=FrozenClock(DIGEST_DAY), forecast_call=ForecastStub()
    )
    text = _rendered(digest)
    assert digest.rows == () and digest.summary == "Cost digest to 2026-11-29: no cost data"
    assert "Cost Explorer has no cost data from 2026-11-01 to 2026-11-29" in text and "$0.00" not in text


def test_throttling_is_retried_then_the_report_says_what_is_missing(db: Database, aws: AwsGateway) -> None:
    from botocore.awsrequest import AWSResponse

    throttled = AwsGateway(session=moto_session(), region=aws.region, max_attempts=2)
    attempts: list[str] = []

    def throttle(request: Any, **_kwargs: Any) -> AWSResponse:
        attempts.append(request.url)
        body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body))

    throttled.client("ce").meta.events.register("before-send.ce.GetCostAndUsage", throttle)
    report = cost_report(config=cost_config(), db=db, aws=throttled, clock=FrozenClock(REPORT_DAY))

    assert len(attempts) == 2  # the gateway's retries, then a sentence
    assert report.rows == () and report.outcome == "failed"
    assert report.missing == (
        "monthly costs by environment and service (AWS did not answer (Cost Explorer: it kept "
        "throttling the bot); nothing was changed.)",
    )
    text = _rendered(report)
    assert "Missing figures (not zero: Cost Explorer did not give them)" in text and "$0.00" not in text


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any) -> Any:
        yield self._body

    def read(self, *_args: Any) -> bytes:
        return self._body


def test_patient_count_from_a_database_query(db: Database, aws: AwsGateway, tmp_path: Any) -> None:
    import sqlite3

    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, active INTEGER)")
        conn.executemany("INSERT INTO patients (active) VALUES (?)", [(1,)] * 625 + [(0,)] * 75)
    queue_usage_results(aws, [data.monthly_answer()])
    config = load_config(
        overrides=deep_merge(
            TEST_ROLES,
            {
                "jobs": {
                    "options": {
                        "cost": {
                            "patients_dsn": f"sqlite:///{path}",
                            "patients_query": "SELECT count(*) FROM patients WHERE active = 1",
                        }
                    }
                }
            },
        )
    )
    report = cost_report(config=config, db=db, aws=aws, clock=FrozenClock(REPORT_DAY))

    assert report.patients == 625 and report.patients_source == "database"
    assert _row(report, "prod").budget == pytest.approx(616 + 375 / 750 * 280)  # 756
    assert report.cost_per_patient == pytest.approx(700 / 625)


def test_a_failing_patient_query_keeps_the_lowest_budget_and_says_why(
    db: Database, aws: AwsGateway, tmp_path: Any
) -> None:
    queue_usage_results(aws, [data.monthly_answer()])
    config = load_config(
        overrides=deep_merge(
            TEST_ROLES,
            {
                "jobs": {
                    "options": {
                        "cost": {
                            "patients_dsn": f"sqlite:///{tmp_path / 'empty.db'}",
                            "patients_query": "SELECT count(*) FROM patients",
                        }
                    }
                }
            },
        )
    )
    report = cost_report(config=config, db=db, aws=aws, clock=FrozenClock(REPORT_DAY))

    assert report.patients is None and report.cost_per_patient is None
    assert _row(report, "prod").budget == 616.0
    assert any(
        "the patient query failed (OperationalError)" in note and "$616" in note for note in report.notes
    )
    assert "empty.db" not in _rendered(report)  # the DSN never reaches a message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patients_dsn": "sqlite://"}, "patients_dsn and patients_query go together"),
        ({"patients": 3, "patients_dsn": "sqlite://", "patients_query": "SELECT 1"}, "not both"),
        ({"forecast": "crystal_ball"}, "jobs.options.cost.forecast"),
        ({"top_n": 0}, "jobs.options.cost.top_n"),
    ],
)
def test_bad_options_are_a_config_error_naming_the_field(options: dict[str, Any], message: str) -> None:
    from jobs.cost import SPECS

    spec: JobSpec = SPECS[0]
    with pytest.raises(ConfigError, match=message):
        spec.options(load_config(overrides={"jobs": {"options": {"cost": options}}}))
    assert isinstance(spec.options(cost_config()), CostOptions)


# --------------------------------------------------------------------------------------------
# The weekly digest


def test_weekly_digest_figures(db: Database, aws: AwsGateway, spy: CeSpy) -> None:
    audit = AuditLog(db)
    for days_ago, outcome, args in (
        (2, "allowed", {"env": "prod", "tag": "v1.5.1", "--emergency": "login outage <!channel>"}),
        (9, "allowed", {"env": "prod", "tag": "v1.5.0", "--emergency": "last week's"}),
        (1, "denied", {"env": "prod", "tag": "v1.5.2", "--emergency": "not allowed"}),
        (1, "allowed", {"env": "prod", "tag": "v1.5.2"}),
    ):
        audit.append(
            at=DIGEST_DAY - timedelta(days=days_ago),
            actor="U0ONCALL1",
            source="slack",
            verb="deploy",
            env="prod",
            args=args,
            rule="test",
            outcome=outcome,
        )
    queue_usage_results(aws, [data.daily_answer()])
    forecast = ForecastStub()
    digest = cost_digest(
        config=cost_config(), db=db, aws=aws, clock=FrozenClock(DIGEST_DAY), forecast_call=forecast
    )

    assert spy.calls == ["get_cost_and_usage"]  # the forecast went through the stub
    assert (digest.week_start, digest.through, digest.days_elapsed, digest.days_in_month) == (
        date(2026, 11, 23),
        date(2026, 11, 29),
        29,
        30,
    )
    dev, staging, prod, untagged = (_row(digest, e) for e in ("dev", "staging", "prod", UNTAGGED))
    # Last 7 days against the budget prorated to 7 of November's 30 days.
    assert (dev.week, dev.week_budget, dev.week_status) == (62.0, pytest.approx(200 * 7 / 30), "over")
    assert (staging.week, staging.week_budget, staging.week_status) == (
        49.0,
        pytest.approx(250 * 7 / 30),
        "under",
    )
    assert (prod.week, prod.week_budget, prod.week_status) == (168.0, pytest.approx(672 * 7 / 30), "over")
    # Month to date against 29/30 of the budget.
    assert (dev.month_to_date, dev.mtd_budget, dev.mtd_status) == (
        194.0,
        pytest.approx(200 * 29 / 30),
        "over",
    )
    assert (staging.month_to_date, staging.mtd_status) == (203.0, "under")
    assert (prod.month_to_date, prod.mtd_budget) == (652.0, pytest.approx(672 * 29 / 30))
    assert (untagged.week, untagged.month_to_date, untagged.mtd_budget) == (7.0, 29.0, None)
    # Forecast to month end: month to date + Cost Explorer's forecast of the rest, against the budget.
    assert (dev.forecast, dev.forecast_status) == (200.0, "near")
    assert (staging.forecast, staging.forecast_status) == (210.0, "under")
    assert (prod.forecast, prod.forecast_status) == (676.0, "over")
    assert untagged.forecast is None
    assert [q["TimePeriod"] for q in forecast.queries] == [{"Start": "2026-11-30", "End": "2026-12-01"}] * 3
    # Movers week over week, by service; the unchanged ones are not movers.
    assert [(m.service, m.last_week, m.this_week) for m in digest.movers] == [
        (data.NAT, 0.0, 20.0),
        (data.ELB, 14.0, 28.0),
    ]
    # Days above the trailing average: dev's NAT day only.
    assert [(s.day, s.env, s.cost, s.trailing_average) for s in digest.spikes] == [
        (data.SPIKE_DAY, "dev", 26.0, 6.0)
    ]
    # This week's allowed break-glass actions, for review.
    assert [(e.verb, e.env, e.reason) for e in digest.emergencies] == [
        ("deploy", "prod", "login outage <!channel>")
    ]
    assert not digest.missing and digest.outcome == "succeeded"

    text = _rendered(digest)
    assert (
        "OVER dev        week $62.00 of $47 (133 %); month to date $194.00 of $193 (100 %); forecast $200.00"
        " of $200 (100 %) NEAR" in text
    )
    assert "Fri 27 Nov dev $26.00 vs $6.00 average (x4.3)" in text
    assert "@U0ONCALL1 deploy prod: login outage" in text
    review = next(b["text"]["text"] for b in render_slack(digest)["blocks"] if "Break-glass" in str(b))
    assert "<@U0ONCALL1> *deploy* prod: login outage &lt;!channel&gt;" in review  # no ping from audit text
    assert "Forecast: Cost Explorer forecast." in text
    assert digest.summary == (
        "Cost digest to 2026-11-29: $286.00 this week, $1,078.00 month to date; over budget: dev, prod"
    )

    # The same digest again: every answer comes from the cache.
    cost_digest(config=cost_config(), db=db, aws=aws, clock=FrozenClock(DIGEST_DAY), forecast_call=forecast)
    assert spy.calls == ["get_cost_and_usage"] and len(forecast.queries) == 3


def test_a_failed_forecast_is_listed_as_missing_not_zero(db: Database, aws: AwsGateway) -> None:
    queue_usage_results(aws, [data.daily_answer()])
    digest = cost_digest(
        config=cost_config(),
        db=db,
        aws=aws,
        clock=FrozenClock(DIGEST_DAY),
        forecast_call=ForecastStub(fail_for="prod"),
    )

    assert _row(digest, "prod").forecast is None and _row(digest, "dev").forecast == 200.0
    assert digest.missing == (
        "prod month-end forecast (Cost Explorer refused the query (LimitExceededException))",
    )
    text = _rendered(digest)
    assert "- prod month-end forecast (Cost Explorer refused the query (LimitExceededException))" in text


def test_run_rate_forecast_and_forecast_off(db: Database, aws: AwsGateway) -> None:
    queue_usage_results(aws, [data.daily_answer()])
    run_rate = cost_digest(
        config=cost_config(forecast="run_rate"), db=db, aws=aws, clock=FrozenClock(DIGEST_DAY)
    )
    assert _row(run_rate, "staging").forecast == pytest.approx(203 / 29 * 30)
    assert "Forecast: run-rate estimate" in _rendered(run_rate)

    off = cost_digest(config=cost_config(forecast="off"), db=db, aws=aws, clock=FrozenClock(DIGEST_DAY))
    assert all(row.forecast is None for row in off.rows) and off.forecast_label is None
    assert "No forecast (switched off)." in _rendered(off)


def test_digest_for_one_environment(db: Database, aws: AwsGateway) -> None:
    queue_usage_results(aws, [data.daily_answer()])
    digest = cost_digest(
        config=cost_config(),
        db=db,
        aws=aws,
        clock=FrozenClock(DIGEST_DAY),
        envs=("dev",),
        forecast_call=ForecastStub(),
    )
    assert [row.env for row in digest.rows] == ["dev"]
    assert [(m.service, m.change) for m in digest.movers] == [(data.NAT, 20.0)]
    assert digest.emergencies == ()


def test_paged_answers_are_joined_by_period(db: Database, aws: AwsGateway) -> None:
    whole = data.monthly_answer()
    november = whole["ResultsByTime"][-1]
    first_half = {**november, "Groups": november["Groups"][:4]}
    second_half = {**november, "Groups": november["Groups"][4:]}
    pages = [
        {"ResultsByTime": [*whole["ResultsByTime"][:-1], first_half], "NextPageToken": "page-2"},
        {"ResultsByTime": [second_half]},
    ]
    tokens: list[str | None] = []

    def call(service: str, operation: str, /, **params: Any) -> dict[str, Any]:
        tokens.append(params.get("NextPageToken"))
        return pages[len(tokens) - 1]

    aws.call = call  # type: ignore[method-assign]
    report = cost_report(config=cost_config(), db=db, aws=aws, clock=FrozenClock(REPORT_DAY))
    assert tokens == [None, "page-2"]
    assert report.total == 1125.0 and _row(report, "prod").cost == 700.0


def test_the_cache_keeps_a_simulators_answers_apart_from_real_ones() -> None:
    from bot.cost.explorer import cache_key

    query = {"TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"}, "Granularity": "MONTHLY"}
    real, simulated = (
        cache_key("usage", query, source="us-west-1"),
        cache_key("usage", query, source="us-west-1@http://127.0.0.1:5000"),
    )
    assert real != simulated and real == cache_key(
        "usage", dict(reversed(list(query.items()))), source="us-west-1"
    )
