"""`menotime-bot`: config check, migrate, audit verify/export, demo — through the real CLI."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from bot.demo import run_demo
from bot.store.db import Database
from handlers.cli import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_config_check_prints_environments_and_matrix(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "menotime.yaml"
    path.write_text("roles:\n  oncall: {users: [U0ONCALL1], groups: [S0ONCALL]}\n")
    result = runner.invoke(
        cli, ["config", "check"], env={"MENOTIME_CONFIG": str(path), "SLACK_BOT_TOKEN": "xoxb-do-not-print"}
    )
    assert result.exit_code == 0, result.output
    assert "menotime-prod-cluster/menotime-prod-service" in result.output
    assert "allowed 2-4 (autoscaling)" in result.output
    assert "U0ONCALL1, group S0ONCALL" in result.output
    assert "xoxb-do-not-print" not in result.output
    scale_row = next(line for line in result.output.splitlines() if line.strip().startswith("scale"))
    assert "developer,oncall,operations" in scale_row and "release_manager" not in scale_row


def test_config_check_fails_with_file_line_and_field(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("environments:\n  prod:\n    tasks: {default: 9, min: 2, max: 4}\n")
    result = runner.invoke(cli, ["config", "check"], env={"MENOTIME_CONFIG": str(path)})
    assert result.exit_code == 2
    assert f"{path}:3: environments.prod.tasks" in result.output
    assert "Traceback" not in result.output


def test_migrate_then_audit_verify_export_and_tamper(runner: CliRunner, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"DATABASE_URL": url}
    first = runner.invoke(cli, ["migrate"], env=env)
    assert first.exit_code == 0 and "(was empty)" in first.output
    assert "was" not in runner.invoke(cli, ["migrate"], env=env).output  # idempotent

    from datetime import UTC, datetime

    from bot.store.audit import AuditLog

    log = AuditLog(Database(url))
    for i in range(3):
        log.append(
            at=datetime(2026, 11, 24, 18, i, tzinfo=UTC),
            actor="U0ONCALL1",
            source="test",
            verb="status",
            env="prod",
            args={},
            rule="matrix:status/prod:oncall",
            outcome="allowed",
        )

    verified = runner.invoke(cli, ["audit", "verify"], env=env)
    assert verified.exit_code == 0 and "3 events verified" in verified.output

    exported = runner.invoke(cli, ["audit", "export", "--format", "csv"], env=env)
    assert [r["seq"] for r in csv.DictReader(io.StringIO(exported.output))] == ["1", "2", "3"]
    out = tmp_path / "audit.json"
    runner.invoke(cli, ["audit", "export", "--format", "json", "-o", str(out)], env=env)
    assert len(json.loads(out.read_text())) == 3

    with Database(url).engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'U0MALLORY' WHERE seq = 2"))
    broken = runner.invoke(cli, ["audit", "verify"], env=env)
    assert broken.exit_code == 1
    assert "event 2: its contents were changed" in broken.output


def test_serve_without_slack_credentials_refuses_clearly(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["serve"], env={})
    assert result.exit_code == 2
    assert "SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN must be set" in result.output


def test_the_demo_tour_runs_to_the_end_offline() -> None:
    from handlers.demo_jobs import extension

    out = io.StringIO()
    assert run_demo(out=out, extension=extension()) == 0
    shown = out.getvalue()
    assert "Did you mean `status`?" not in shown  # console text drops Slack's backticks
    assert "Did you mean status?" in shown
    assert "You have no MenoTime Ops role" in shown
    assert "menotime-backend-prod:3, image v1.5.0" in shown
    assert "autoscaling 2–4" in shown and "manual 1–2" in shown
    assert "menotime-prod-api-5xx" in shown
    assert "The audit chain verifies" in shown and "intact" in shown
    assert re.search(r"IAM policy .* allows every AWS action the tour used: \d+ actions, all allowed", shown)
    assert shown.rstrip().endswith("Demo finished.")
    # the guarded changes of the tour
    assert "Rollout        COMPLETED" in shown
    assert "dev allows 1–2 tasks" in shown
    # issue 11's tour: CI/CD deploys staging itself, the bot sees it, the soak counts it, the alarm
    # after the prod deploy names that deployment and rolls back to the revision before it
    assert "staging  deploy main (rev 4) by CI/CD or console -> completed" in shown
    assert (
        "v1.6.0 (digest b4437d0d132c) has been in staging since" in shown
        and "prod needs 24 h there: soaked at" in shown
    )
    assert "Releases this week 0 of 2 planned" in shown
    assert "After a deployment fired 5 min after v1.6.0 (rev 4) by @U0DEMORM" in shown
    assert "[Roll back] -> /menotime rollback prod 3" in shown
    assert "menotime-prod-api-5xx fired 5 min after this deployment" in shown
    assert "another person must approve it" in shown
    assert "(asked by @U0DEMORM, approved by @U0DEMOOPS)" in shown
    assert "prod deploys are allowed Mon–Fri 09:00–17:00 PT; it is Sat" in shown
    assert "Autoscaling bounds 2–4 → 3–4" in shown
    assert "Rolling prod back: menotime-backend-prod:4 → menotime-backend-prod:3" in shown
    # the alarm thread: opened with its buttons, acknowledged in the thread, resolved in place
    assert "[#menotime-prod-alerts] ALARM — menotime-prod-api-5xx" in shown
    assert "[Acknowledge] -> /menotime ack" in shown
    assert "Acknowledged by @U0DEMOONCALL" in shown
    assert (
        "OK — resolved after 20 min" in shown
        and "updated] OK — menotime-prod-api-5xx (resolved after 20 min)" in shown
    )
    # the scheduled jobs, run by operations
    assert "Dev cleanup (dry run: nothing was changed): succeeded" in shown
    assert "would mark: menotime-backend:feature-old-search" in shown
    assert (
        "Staging refreshed: menotime-staging is now an anonymized, verified copy" in shown
        or "skipped: the refresh needs PostgreSQL" in shown
    )
    assert "schedule  Sundays 03:00 PT" in shown and "succeeded (dry run)" in shown
    assert "[#menotime-ops] Cost digest" in shown and "forecast $" in shown


def test_the_demo_can_stay_interactive() -> None:
    out = io.StringIO()
    assert (
        run_demo(
            interactive=True, out=out, stdin=io.StringIO("whoami\n:as U0DEMOONCALL\nstatus prod\n:quit\n")
        )
        == 0
    )
    shown = out.getvalue().split("Type /menotime commands", 1)[1]
    assert "You are U0DEMODEV" in shown
    assert "v1.5.0" in shown


def test_audit_verify_that_cannot_read_says_so_with_its_own_exit_code(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(
        cli, ["audit", "verify"], env={"DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}"}
    )
    assert result.exit_code == 3
    assert "NOT CHECKED" in result.output and "Traceback" not in result.output


def test_a_bad_setting_in_the_file_is_reported_with_file_and_line(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "menotime.yaml"
    path.write_text("roles: {}\nsettings:\n  port: abc\n")
    result = runner.invoke(cli, ["config", "check"], env={"MENOTIME_CONFIG": str(path)})
    assert result.exit_code == 2 and f"{path}:2: settings: port" in result.output


def test_console_simulate_answers_typed_lines_as_the_demo_people(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["console", "--simulate"], input="status dev\nscale dev 2\n:as U0DEMOGUEST\nstatus prod\n:quit\n"
    )
    assert result.exit_code == 0, result.output
    assert "menotime-backend-dev:3, image develop" in result.output
    assert "Scaled dev to 2 tasks (asked by @U0DEMODEV)" in result.output
    assert "You have no MenoTime Ops role" in result.output


def test_console_simulate_runs_the_jobs_too(runner: CliRunner) -> None:
    result = runner.invoke(
        cli,
        ["console", "--simulate", "--user", "U0DEMOOPS"],
        input="jobs run nope\njobs run dev-cleanup --dry-run\n:quit\n",
    )
    assert result.exit_code == 0, result.output
    assert (
        "There is no job nope. Jobs: dev-cleanup, staging-refresh, cost-report, cost-digest." in result.output
    )
    assert "Dev cleanup (dry run: nothing was changed): succeeded" in result.output
