"""Configuration: shipped defaults from the seed, operator overrides, errors with file/line/field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from bot.config import Role, load_config
from bot.cron import cron_trigger
from bot.errors import ConfigError
from bot.settings import Settings


def test_shipped_defaults_follow_the_seed() -> None:
    config = load_config()
    assert config.env_names == ("dev", "staging", "prod")
    prod = config.env("prod")
    assert (prod.cluster, prod.service, prod.task_family) == (
        "menotime-prod-cluster",
        "menotime-prod-service",
        "menotime-backend-prod",
    )
    assert (prod.rds_instance, prod.database) == ("menotime-prod", "menotime_prod")
    assert (prod.tasks.default, prod.tasks.min, prod.tasks.max, prod.autoscaling) == (2, 2, 4, True)
    assert (config.env("dev").tasks.min, config.env("dev").tasks.max) == (1, 2)
    assert (config.env("staging").tasks.min, config.env("staging").tasks.max) == (2, 3)
    assert prod.alerts_channel == "#menotime-prod-alerts" and config.env("dev").alerts_channel is None
    assert prod.retention_days is None and config.env("dev").retention_days == 30
    assert prod.budget.for_patients(250) == 616 and prod.budget.for_patients(1000) == 896
    assert prod.budget.for_patients(625) == pytest.approx(756)
    assert config.env("staging").budget.for_patients(None) == 250


@pytest.mark.parametrize(
    ("env", "accepted", "refused"),
    [
        (
            "dev",
            ["develop", "feature-login", "3f9c2a1", "3f9c2a1b7d4e8f90a1b2c3d4e5f60718293a4b5c"],
            ["main", "v1.2.3", "feature-", "DEVELOP", "3f9c2"],
        ),
        ("staging", ["main", "PR-1", "PR-4821"], ["develop", "PR-", "pr-12", "v1.2.3", "main2"]),
        (
            "prod",
            ["v1.2.3", "v0.0.1", "v10.20.30"],
            ["1.2.3", "v1.2", "v01.2.3", "v1.2.3-rc1", "main", "latest"],
        ),
    ],
)
def test_image_tag_rules(env: str, accepted: list[str], refused: list[str]) -> None:
    rule = load_config().env(env).image_tags
    assert all(rule.accepts(t) for t in accepted)
    assert not any(rule.accepts(t) for t in refused)


def test_an_operator_file_is_merged_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "menotime.yaml"
    path.write_text(
        "roles:\n  oncall: {users: [U0ONCALL1], groups: [S0ONCALL]}\n"
        "environments:\n  dev: {tasks: {default: 1, min: 1, max: 3}}\n"
    )
    config = load_config(path)
    assert config.roles[Role.oncall].users == ("U0ONCALL1",)
    assert config.roles[Role.oncall].groups == ("S0ONCALL",)
    assert config.env("dev").tasks.max == 3
    assert config.env("dev").cluster == "menotime-dev-cluster"  # untouched default kept


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "environments:\n  prod:\n    tasks: {default: 2, min: 3, max: 4}\n",
            ":3: environments.prod.tasks: needs min <= default <= max",
        ),
        (
            "roles:\n  oncall:\n    users: [someone]\n",
            ":3: roles.oncall.users: 'someone' is not a Slack user ID",
        ),
        ("roles:\n  oncall:\n    groups: [U0NOTAGROUP]\n", "is not a Slack user group ID"),
        ("roles:\n  superhero: {users: [U0X1]}\n", "roles.superhero"),
        ("permissions:\n  deploy:\n    prod: [release_manger]\n", "unknown role 'release_manger'"),
        ("permissions:\n  launch:\n    prod: [oncall]\n", "unknown action 'launch'"),
        ("permissions:\n  deploy:\n    qa: [oncall]\n", "unknown environment 'qa'"),
        (
            "environments:\n  dev:\n    image_tags: {rule: x, patterns: ['(unclosed']}\n",
            "not a valid regular expression",
        ),
        (
            "environments:\n  dev:\n    colour: blue\n",
            ":3: environments.dev.colour: Extra inputs are not permitted",
        ),
        ("environments:\n  dev: {tasks: [1, 2]\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("settings:\n  databse_url: sqlite:///x.db\n", ":1: settings: unknown setting 'databse_url'"),
        ("settings:\n  port: abc\n", "settings: port: Input should be a valid integer"),
    ],
)
def test_an_invalid_file_names_file_line_and_field(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(tmp_path / "nope.yaml")


def test_settings_from_environment_file_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "menotime.yaml"
    path.write_text("settings:\n  log_level: debug\n  port: 8080\n  database_url: sqlite:///from-file.db\n")
    monkeypatch.setenv("MENOTIME_CONFIG", str(path))
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://bot:hunter2@db/menotime")
    monkeypatch.setenv("SNS_TOPIC_ARNS", "arn:aws:sns:us-west-1:1:a, arn:aws:sns:us-west-1:1:b")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-value")
    settings = Settings()
    assert settings.log_level == "DEBUG" and settings.port == 8080  # from the file
    assert settings.database_url.startswith("postgresql")  # the environment wins over the file
    assert settings.sns_topic_arns == ("arn:aws:sns:us-west-1:1:a", "arn:aws:sns:us-west-1:1:b")
    assert settings.aws_region == "us-west-1"
    shown = json.dumps(settings.describe())
    assert "xoxb-secret-value" not in shown and "hunter2" not in shown
    assert settings.describe()["slack_bot_token"] == "(set)"


def test_settings_from_secrets_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-west-1")
        client.create_secret(
            Name="menotime/bot",
            SecretString=json.dumps(
                {"SLACK_SIGNING_SECRET": "from-secrets-manager", "SLACK_BOT_TOKEN": "xoxb-sm"}
            ),
        )
        monkeypatch.setenv("SECRETS_MANAGER_SECRET_ID", "menotime/bot")
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-env-wins")
        settings = Settings()
    assert settings.slack_signing_secret.get_secret_value() == "from-secrets-manager"
    assert settings.slack_bot_token.get_secret_value() == "xoxb-env-wins"


@pytest.mark.parametrize("expr", ["0 3 * * 7", "0 3 * * 5-7", "30 1 * * 0", "0 3 * * sun"])
def test_a_schedule_with_crons_sunday_loads_and_runs_on_sundays(expr: str) -> None:
    """Cron's weekday numbers (0 and 7 are Sunday), checked at load as the scheduler reads them."""
    config = load_config(overrides={"jobs": {"schedules": {"cost_digest": expr}}})
    schedule = config.jobs.schedules["cost_digest"]
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # 04:00 in Los Angeles, past 03:00 and 01:30
    fire = cron_trigger(schedule, "America/Los_Angeles").get_next_fire_time(None, saturday)
    assert fire.weekday() == 6  # Sunday


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("0 3 * * 8", "weekday '8' is not a cron weekday (0-7, 0 and 7 are Sunday)"),
        ("0 3 * * 5-1", "weekday '5-1' is not a cron weekday (0-7, 0 and 7 are Sunday)"),
        ("0 3 * * -1", "weekday '-1' is not a cron weekday (0-7, 0 and 7 are Sunday)"),
        ("0 3 * * 1,", "weekday '' is not a cron weekday (0-7, 0 and 7 are Sunday)"),
        ("0 3 * * */0", "weekday '*/0' is not a cron weekday (0-7, 0 and 7 are Sunday)"),
        ("0 3 * *", "is not a 5-field cron expression (minute hour day month weekday)"),
    ],
)
def test_a_schedule_cron_would_refuse_is_a_configuration_error(expr: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(overrides={"jobs": {"schedules": {"cost_digest": expr}}})
    assert f"cost_digest: '{expr}'" in str(caught.value) and why in str(caught.value)
