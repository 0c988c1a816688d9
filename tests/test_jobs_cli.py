"""`menotime-bot jobs list` / `jobs run NAME` through click, with fake jobs in the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import jobs
from bot.fakes.slack_api import FakeSlack
from handlers.cli import cli
from tests.fakes.jobs import FakeJobs


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeJobs:
    fake = FakeJobs()
    monkeypatch.setattr(jobs, "all_jobs", lambda: fake.specs)
    return fake


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "menotime.yaml"
    config.write_text('jobs:\n  schedules:\n    tidy: "0 3 * * sun"\n')
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}", "MENOTIME_CONFIG": str(config)}


def test_run_prints_the_report_and_list_shows_it(fakes: FakeJobs, env: dict[str, str]) -> None:
    runner = CliRunner()
    ran = runner.invoke(cli, ["jobs", "run", "tidy", "--dry-run"], env=env)
    assert ran.exit_code == 0, ran.output
    assert ran.stdout.startswith("tidy would remove 3 things")
    assert fakes.calls.contexts["tidy"][0].dry_run

    listed = runner.invoke(cli, ["jobs", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "tidy (dev): the tidy job" in listed.output
    assert "schedule  Sundays 03:00 PT; next " in listed.output and " PST (11:00 UTC)" in listed.output
    assert ": succeeded (dry run): would remove 3 things" in listed.output
    assert "boom (staging): the boom job" in listed.output and "never run" in listed.output


def test_a_failed_run_exits_1_with_its_error(fakes: FakeJobs, env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["jobs", "run", "boom"], env=env)
    assert result.exit_code == 1
    assert result.stdout.startswith("boom failed: RuntimeError: disk on fire")  # the traceback is in the log
    assert "Traceback" not in result.stdout


def test_a_refused_run_exits_1(fakes: FakeJobs, env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["jobs", "run", "picky"], env=env)
    assert result.exit_code == 1
    assert "picky refused: bad configuration: jobs.options.picky.bucket: Field required" in result.output


def test_an_unknown_job_lists_the_jobs_and_exits_2(fakes: FakeJobs, env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["jobs", "run", "tidi"], env=env)
    assert result.exit_code == 2
    assert (
        "There is no job tidi. Did you mean tidy? Jobs: tidy, boom, slow, picky, clusters." in result.output
    )


def test_with_slack_configured_the_report_is_posted_to_ops_too(fakes: FakeJobs, env: dict[str, str]) -> None:
    with FakeSlack() as slack:
        result = CliRunner().invoke(
            cli,
            ["jobs", "run", "tidy"],
            env={**env, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": slack.api_url},
        )
        assert result.exit_code == 0, result.output
        posts = slack.calls_to("chat.postMessage")
        assert [p.params["channel"] for p in posts] == ["#menotime-ops", "#menotime-ops"]  # progress, report
        assert posts[-1].params["text"] == "tidy removed 3 things"
        assert len(slack.calls_to("chat.update")) == 1  # the progress message, edited in place
        assert len(slack.calls_to("files.completeUploadExternal")) == 1


def test_simulate_runs_against_the_embedded_simulator(fakes: FakeJobs, env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["jobs", "run", "clusters", "--simulate"], env=env)
    assert result.exit_code == 0, result.output
    assert (
        "3 clusters: menotime-dev-cluster, menotime-prod-cluster, menotime-staging-cluster" in result.output
    )
