"""The cost jobs as the scheduler runs them, their chart and its upload to the fake Slack, the
`/menotime cost` verb, and the simulator's cost data."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.config import Config, deep_merge, load_config
from bot.core import Core
from bot.cost.chart import render_chart
from bot.cost.results import ChartData, CostDigestAnswer, CostReport, CostReportAnswer
from bot.cost.simdata import (
    SIMULATOR_CONFIG_OVERRIDES,
    demo_cost_data,
    print_cost_digest,
    queue_usage_results,
)
from bot.dispatch import Dispatcher
from bot.fakes.slack_api import UPLOAD, FakeSlack
from bot.job import Attachment, JobContext, JobSpec
from bot.notify import NullNotifier, SlackNotifier
from bot.render import render_slack, render_text
from bot.settings import Settings
from bot.store.db import Database
from jobs.cost import SPECS, make_specs
from tests import cost_data as data
from tests.blockkit import assert_valid_message
from tests.conftest import PEOPLE, TEST_ROLES
from tests.cost_data import DIGEST_DAY, REPORT_DAY, ForecastStub, cost_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(content: bytes) -> tuple[int, int]:
    assert content[:8] == PNG_SIGNATURE, "not a PNG"
    assert content[12:16] == b"IHDR"
    width, height = struct.unpack(">II", content[16:24])
    return width, height


def _context(
    *, config: Config, db: Database, aws: AwsGateway, at: datetime, spec: JobSpec, files: list[Attachment]
) -> JobContext:
    return JobContext(
        settings=Settings(database_url=db.url),
        config=config,
        db=db,
        aws=aws,
        clock=FrozenClock(at),
        notifier=NullNotifier(),
        options=spec.options(config),
        run_id=1,
        attach=files.append,
    )


def _spec(specs: tuple[JobSpec, ...], name: str) -> JobSpec:
    return next(s for s in specs if s.name == name)


def test_specs_declare_both_jobs() -> None:
    assert [(s.name, s.env, s.options_key) for s in SPECS] == [
        ("cost-report", "prod", "cost"),
        ("cost-digest", "prod", "cost"),
    ]
    assert set(_spec(SPECS, "cost-digest").iam_actions) == {"ce:GetCostAndUsage", "ce:GetCostForecast"}


def test_cost_report_job_attaches_a_valid_chart_and_the_upload_reaches_slack(
    db: Database, aws: AwsGateway
) -> None:
    from slack_sdk import WebClient

    queue_usage_results(aws, [data.monthly_answer()])
    config, files = cost_config(), []
    spec = _spec(SPECS, "cost-report")
    report = spec.run(_context(config=config, db=db, aws=aws, at=REPORT_DAY, spec=spec, files=files))

    assert isinstance(report, CostReport) and report.outcome == "succeeded"
    assert report.summary == "Cost report for November 2026: $1,125.00 of $1,122 budget"
    [chart] = files
    assert (
        chart.filename == "menotime-cost-2026-11.png"
        and chart.title == "AWS cost by environment, Jun 2026 – Nov 2026"
    )
    assert len(chart.content) > 10_000 and _png_size(chart.content) == (900, 550)

    # What the runner does with it: post the report, then upload the chart in its thread.
    with FakeSlack() as slack:
        notifier = SlackNotifier(WebClient(token="xoxb-test", base_url=slack.api_url))
        ref = notifier.post(channel=config.channels.ops, result=report)
        assert ref is not None
        notifier.upload(ref=ref, filename=chart.filename, content=chart.content, title=chart.title)
        [post] = slack.calls_to("chat.postMessage")
        assert_valid_message({"text": post.params["text"], "blocks": post.params["blocks"]})
        assert slack.calls_to("files.getUploadURLExternal")[0].params["filename"] == chart.filename
        [uploaded] = slack.calls_to(UPLOAD)
        assert PNG_SIGNATURE in uploaded.body
        [complete] = slack.calls_to("files.completeUploadExternal")
        assert complete.params["channel_id"] == ref.channel and complete.params["thread_ts"] == ref.ts
        assert complete.params["files"][0]["title"] == chart.title


def test_cost_report_job_without_data_attaches_nothing(db: Database, aws: AwsGateway) -> None:
    files: list[Attachment] = []
    spec = _spec(SPECS, "cost-report")
    report = spec.run(_context(config=cost_config(), db=db, aws=aws, at=REPORT_DAY, spec=spec, files=files))
    assert files == [] and report.outcome == "succeeded" and report.summary.endswith("no cost data")


def test_the_chart_of_empty_months_still_renders() -> None:
    empty = ChartData(months=(date(2026, 10, 1), date(2026, 11, 1)), series=(), budgets=(), title="nothing")
    assert _png_size(render_chart(empty))[0] > 0


def test_the_chart_is_an_image_matplotlib_reads_back() -> None:
    import matplotlib.image

    chart = ChartData(
        months=(date(2026, 10, 1), date(2026, 11, 1)),
        series=(("dev", (100.0, 120.0)), ("prod", (600.0, 700.0)), ("untagged", (5.0, 0.0))),
        budgets=(("dev", 200.0), ("prod", 672.0)),
        title="two months",
    )
    pixels = matplotlib.image.imread(io.BytesIO(render_chart(chart)), format="png")
    assert pixels.shape[:2] == (550, 900)


def test_cost_digest_job_with_the_forecast_stubbed(db: Database, aws: AwsGateway) -> None:
    queue_usage_results(aws, [data.daily_answer()])
    specs = make_specs(forecast_call=ForecastStub())
    spec = _spec(specs, "cost-digest")
    files: list[Attachment] = []
    digest = spec.run(_context(config=cost_config(), db=db, aws=aws, at=DIGEST_DAY, spec=spec, files=files))
    assert files == [] and digest.outcome == "succeeded"
    assert [(r.env, r.forecast) for r in digest.rows] == [
        ("dev", 200.0),
        ("staging", 210.0),
        ("prod", 676.0),
        ("untagged", None),
    ]
    assert_valid_message(render_slack(digest))


# --------------------------------------------------------------------------------------------
# `/menotime cost`


@pytest.fixture
def config() -> Config:
    """The shared `core` fixture's configuration, with prod's patients and a run-rate forecast."""
    return load_config(
        overrides=deep_merge(
            TEST_ROLES, {"jobs": {"options": {"cost": {"patients": 400, "forecast": "run_rate"}}}}
        )
    )


@pytest.fixture
def cost_core(core: Core) -> Iterator[Core]:
    core.clock = FrozenClock(REPORT_DAY)  # type: ignore[misc]
    yield core


def test_cost_verb_for_a_viewer(cost_core: Core, seeded_aws: AwsGateway) -> None:
    queue_usage_results(seeded_aws, [data.monthly_answer()])
    reply = Dispatcher(core=cost_core).handle(user_id=PEOPLE["viewer"], text="cost prod month", source="test")

    assert reply.outcome == "ok", render_text(reply.result)
    assert isinstance(reply.result, CostReportAnswer) and reply.result.audience == "ephemeral"
    assert [row.env for row in reply.result.rows] == ["prod"]  # the environment asked about only
    text = render_text(reply.result)
    assert "OVER prod       $700.00 of $672 (104 %), +12.0 % month over month" in text
    assert "prod per patient: $1.75" in text and "Untagged" not in text
    assert_valid_message(render_slack(reply.result))


def test_cost_verb_defaults_to_the_week_for_every_environment(
    cost_core: Core, seeded_aws: AwsGateway
) -> None:
    cost_core.clock = FrozenClock(DIGEST_DAY)  # type: ignore[misc]
    queue_usage_results(seeded_aws, [data.daily_answer()])
    reply = Dispatcher(core=cost_core).handle(user_id=PEOPLE["viewer"], text="cost", source="test")

    assert isinstance(reply.result, CostDigestAnswer), render_text(reply.result)
    assert [row.env for row in reply.result.rows] == ["dev", "staging", "prod", "untagged"]
    assert reply.result.forecast_label.startswith("run-rate")


def test_cost_verb_rejects_an_unknown_period_and_needs_a_role(cost_core: Core) -> None:
    bad = Dispatcher(core=cost_core).handle(
        user_id=PEOPLE["viewer"], text="cost prod fortnight", source="test"
    )
    assert bad.outcome == "failed"
    assert "`fortnight` is neither a cost period nor an environment; choose `week`" in bad.result.message
    denied = Dispatcher(core=cost_core).handle(user_id="U0NOBODY", text="cost prod", source="test")
    assert denied.outcome == "denied"


def test_cost_verb_is_in_help_for_a_viewer(cost_core: Core) -> None:
    reply = Dispatcher(core=cost_core).handle(user_id=PEOPLE["viewer"], text="help cost", source="test")
    assert "cost [env] [period]" in render_text(reply.result)


# --------------------------------------------------------------------------------------------
# The simulator's cost data (the demo's last step)


def test_demo_cost_data_on_the_simulator_server(tmp_path: Any) -> None:
    from bot.simulator import Simulator
    from bot.store import migrate

    config = load_config(overrides=SIMULATOR_CONFIG_OVERRIDES)
    clock = FrozenClock(datetime(2026, 11, 30, 17, 0, tzinfo=UTC))
    db = Database(f"sqlite:///{tmp_path / 'demo.db'}")
    migrate.upgrade(db)
    with Simulator() as sim:
        gateway = sim.gateway()
        assert demo_cost_data(gateway, clock, config) == 2
        out = io.StringIO()
        text = print_cost_digest(config=config, db=db, aws=gateway, clock=clock, out=out)
        spec, files = _spec(SPECS, "cost-report"), []
        report = spec.run(_context(config=config, db=db, aws=gateway, at=clock.now(), spec=spec, files=files))
    db.dispose()
    assert out.getvalue() == text
    assert "Cost digest 2026-11-23 to 2026-11-29" in text and "Forecast: run-rate estimate" in text
    for env in ("dev", "staging", "prod"):
        assert f" {env} " in text
    assert "forecast $" in text and "Spikes (days above" in text and "Fri 27 Nov dev" in text
    assert report.month == date(2026, 10, 1) and report.rds_share == pytest.approx(0.69, abs=0.02)
    assert len(files) == 1 and files[0].content.startswith(PNG_SIGNATURE)


def test_demo_cost_data_in_process_answers_in_any_order(db: Database, aws: AwsGateway) -> None:
    config = load_config(overrides=SIMULATOR_CONFIG_OVERRIDES)
    clock = FrozenClock(DIGEST_DAY)
    demo_cost_data(aws, clock, config)
    from bot.cost.reports import cost_digest, cost_report

    digest = cost_digest(config=config, db=db, aws=aws, clock=clock)  # asked first, though queued second
    report = cost_report(config=config, db=db, aws=aws, clock=clock)
    assert digest.has_data and digest.through == date(2026, 11, 29) and len(digest.spikes) == 1
    assert report.has_data and report.month == date(2026, 10, 1)
