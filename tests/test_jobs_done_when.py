"""The jobs' "Done when" lines, end to end on the simulator: the dev cleanup's dry run, mark and
delete a week apart with `jobs list` showing both; the monthly cost report posted through the
outbox with its chart uploaded by Slack's external upload flow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from slack_sdk import WebClient

from bot.clock import FrozenClock
from bot.core import Core
from bot.demo import demo_core
from bot.fakes.slack_api import FakeSlack
from bot.outbox import Outbox, OutboxNotifier, OutboxSender
from bot.render import render_text
from bot.scheduler import JobRunner, list_jobs
from handlers.cli import cli
from handlers.demo_jobs import extension


@pytest.fixture
def simulated(tmp_path: Path) -> Iterator[Core]:
    with demo_core(
        tmp_path, clock=FrozenClock(datetime(2026, 11, 24, 18, 0, tzinfo=UTC)), extension=extension()
    ) as (core, _sim):
        yield core


def remaining_dev_revisions(core: Core) -> list[str]:
    family = core.config.env("dev").task_family
    return [
        arn.rsplit("/", 1)[1]
        for arn in core.aws.paginate(
            "ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=family
        )
    ]


def test_jobs_run_dev_cleanup_dry_run_against_the_simulator_lists_and_changes_nothing() -> None:
    result = CliRunner().invoke(cli, ["jobs", "run", "dev-cleanup", "--dry-run", "--simulate"])
    assert result.exit_code == 0, result.output
    assert "Dev cleanup (dry run: nothing was changed): succeeded" in result.output
    assert "would mark: menotime-backend-dev:1" in result.output and "would delete nothing" in result.output


def test_a_real_run_marks_and_a_run_a_week_later_deletes_and_jobs_list_shows_both(simulated: Core) -> None:
    core = simulated
    clock: FrozenClock = core.clock  # type: ignore[assignment]
    before = remaining_dev_revisions(core)
    runner = JobRunner(core)
    first = runner.run("dev-cleanup", trigger="manual", requested_by="U0DEMOOPS")
    assert first is not None and first.ok and first.summary.startswith("deleted nothing, marked ")
    assert remaining_dev_revisions(core) == before  # marking changes nothing in AWS

    clock.advance(days=7)
    second = runner.run("dev-cleanup", trigger="schedule")
    assert second is not None and second.ok
    after = remaining_dev_revisions(core)
    gone = set(before) - set(after)
    assert gone and all(name.startswith("menotime-backend-dev:") for name in gone)
    assert "menotime-backend-dev:1" in gone  # the oldest revision, marked a week ago
    assert f"{core.config.env('dev').task_family}:{len(before)}" in after  # the newest stays

    listed = render_text(list_jobs(core))
    section = listed.split("dev-cleanup (dev)", 1)[1].split("staging-refresh", 1)[0]
    assert "last" in section and "before" in section
    assert section.count("succeeded") == 2


def test_the_cost_report_goes_to_ops_with_its_chart_uploaded(simulated: Core) -> None:
    core = simulated
    with FakeSlack() as slack:
        core.notifier = OutboxNotifier(Outbox(core.db, core.clock))
        view = JobRunner(core).run("cost-report", trigger="manual")
        assert view is not None and view.ok
        OutboxSender(
            db=core.db,
            client=WebClient(token="xoxb-test", base_url=slack.api_url),
            clock=core.clock,
        ).send_due()
        [post] = slack.calls_to("chat.postMessage")
        assert post.params["channel"] == "#menotime-ops" and "Cost report for" in post.params["text"]
        [asked] = slack.calls_to("files.getUploadURLExternal")
        assert asked.params["filename"].startswith("menotime-cost-") and asked.params["filename"].endswith(
            ".png"
        )
        [uploaded] = slack.calls_to("upload")
        assert uploaded.body[:8] == b"\x89PNG\r\n\x1a\n"  # the chart itself
        [completed] = slack.calls_to("files.completeUploadExternal")
        assert completed.params["thread_ts"] == post.response["ts"]


def test_jobs_run_cost_digest_against_the_simulator_gives_each_environment_against_budget_and_a_forecast() -> (
    None
):
    result = CliRunner().invoke(cli, ["jobs", "run", "cost-digest", "--simulate"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Cost digest ")
    for env in ("dev", "staging", "prod"):
        line = next(line for line in result.output.splitlines() if f" {env} " in line and "week $" in line)
        assert " of $" in line and "forecast $" in line
