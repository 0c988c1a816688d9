"""The dev cleanup's guards on their own: which names count as dev, which look like staging or prod,
the tags that allow or spare a resource, and the refusal to start when a target is not plainly dev
(each refusal says which target and what to fix; a DSN is never echoed)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import Config, load_config
from jobs.dev_cleanup.guards import (
    Names,
    Refused,
    check_targets,
    default_log_prefixes,
    dev_environment,
    has_dev_tag,
    has_keep_tag,
)
from jobs.dev_cleanup.options import DevCleanupOptions

POINT = "it refuses to start. Point jobs.options.dev-cleanup (or environments.dev) at dev resources."


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


def names_of(config: Config) -> Names:
    return Names(config, config.env("dev"))


# -- names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "menotime-prod-cluster",
        "/ecs/menotime-backend-prod",
        "MENOTIME-STAGING-SNAPSHOT-1",
        "menotime-dev-stg-copy",
        "dev-production-mirror",
        "menotime-dev-prd",
        "menotime_stage_dev",
        "menotime-staging",  # another environment's RDS instance, exactly
    ],
)
def test_names_with_a_staging_or_prod_word_look_foreign(config: Config, name: str) -> None:
    names = names_of(config)
    assert names.looks_foreign(name)
    assert not names.is_dev(name)


def test_another_environments_configured_names_look_foreign_even_without_such_a_word() -> None:
    config = load_config(
        overrides={"environments": {"prod": {"rds_instance": "menotime-live", "database": "live_db"}}}
    )
    names = names_of(config)
    assert names.looks_foreign("menotime-live-dev-snapshot")  # between separators
    assert names.looks_foreign("/aws/rds/instance/menotime-live")
    assert names.looks_foreign("LIVE_DB")
    assert not names.looks_foreign("menotime-livestock-dev")  # not the name, a longer word
    assert not names.looks_foreign("xmenotime-live-dev")
    assert names.is_dev("menotime-livestock-dev")


def test_an_extra_environment_name_is_a_foreign_word() -> None:
    staging = load_config().env("staging").model_dump(exclude={"name"})
    uat = {**staging, "cluster": "c-uat", "service": "s-uat", "task_family": "f-uat", "rds_instance": "r-uat"}
    config = load_config(overrides={"environments": {"uat": {**uat, "database": "d_uat"}}})
    names = names_of(config)
    assert names.looks_foreign("menotime-dev-uat-copy")
    assert not names.looks_foreign("menotime-dev-copy")


@pytest.mark.parametrize(
    ("name", "dev"),
    [
        ("menotime-dev-cluster", True),
        ("Menotime-Dev-Snapshot-2026", True),
        ("menotime_dev", True),
        ("menotime-development", False),  # a word, not `dev`
        ("devops-tools", False),
        ("menotime-sandbox", False),
    ],
)
def test_a_dev_name_has_the_word_dev(config: Config, name: str, dev: bool) -> None:
    names = names_of(config)
    assert names.is_dev(name) is dev
    assert not names.looks_foreign(name)


# -- tags ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "dev"),
    [
        ({"Environment": "dev"}, True),
        ({"Environment": " Dev "}, True),
        ({"Environment": "development"}, False),
        ({"Environment": "prod"}, False),
        ({"environment": "dev"}, False),  # the key is exact
        ({}, False),
    ],
)
def test_the_environment_tag_must_say_dev(tags: dict[str, str], dev: bool) -> None:
    assert has_dev_tag(tags) is dev


@pytest.mark.parametrize(
    ("tags", "keep"),
    [
        ({"menotime:keep": "true"}, True),
        ({"menotime:keep": " TRUE "}, True),
        ({"menotime:keep": "false"}, False),
        ({"menotime:keep": "yes"}, False),
        ({"Menotime:Keep": "true"}, False),
        ({}, False),
    ],
)
def test_only_keep_true_spares(tags: dict[str, str], keep: bool) -> None:
    assert has_keep_tag(tags) is keep


# -- the dev environment ------------------------------------------------------------------------------


def test_the_dev_environment_is_required(config: Config) -> None:
    assert dev_environment(config) is config.env("dev")
    without = config.model_copy(update={"environments": {"prod": config.env("prod")}})
    with pytest.raises(Refused) as exc:
        dev_environment(without)
    assert exc.value.message == (
        "There is no `dev` environment in the configuration, so there is nothing the dev cleanup "
        "may touch; add environments.dev or switch the job off."
    )


def test_the_dev_environment_needs_a_retention() -> None:
    config = load_config(overrides={"environments": {"dev": {"retention_days": None}}})
    with pytest.raises(Refused) as exc:
        dev_environment(config)
    assert exc.value.message == (
        "environments.dev.retention_days is not set: the dev cleanup needs a retention to know "
        "what is old; set it (the seed says 30)."
    )


# -- log group prefixes -------------------------------------------------------------------------------


def test_log_prefixes_default_to_the_dev_task_family_service_and_database(config: Config) -> None:
    dev = config.env("dev")
    assert default_log_prefixes(dev, DevCleanupOptions()) == (
        "/ecs/menotime-backend-dev",
        "/ecs/menotime-dev",
        "/aws/rds/instance/menotime-dev",
    )
    options = DevCleanupOptions(task_family="menotime-dev", rds_instance="menotime-dev-2")
    assert default_log_prefixes(dev, options) == ("/ecs/menotime-dev", "/aws/rds/instance/menotime-dev-2")
    explicit = DevCleanupOptions(log_group_prefixes=("/custom/dev",))
    assert default_log_prefixes(dev, explicit) == ("/custom/dev",)


# -- refusing to start --------------------------------------------------------------------------------


def check(config: Config, **options: Any) -> None:
    env = config.env("dev")
    check_targets(
        config=config, env=env, options=DevCleanupOptions.model_validate(options), names=Names(config, env)
    )


def refused(config: Config, **options: Any) -> str:
    with pytest.raises(Refused) as exc:
        check(config, **options)
    return exc.value.message


def test_the_seed_dev_targets_pass(config: Config) -> None:
    check(config)
    check(config, repositories=["menotime-backend", "menotime-dev-tools"])


@pytest.mark.parametrize(
    ("options", "what", "value"),
    [
        ({"cluster": "menotime-prod-cluster"}, "cluster", "menotime-prod-cluster"),
        ({"task_family": "menotime-backend-staging"}, "task family", "menotime-backend-staging"),
        ({"rds_instance": "menotime-dev-prd"}, "RDS instance", "menotime-dev-prd"),
        ({"log_group_prefixes": ["/ecs/dev", "/ecs/prod"]}, "log group prefix /ecs/prod", "/ecs/prod"),
    ],
)
def test_an_option_target_that_looks_like_staging_or_prod_refuses(
    config: Config, options: dict[str, Any], what: str, value: str
) -> None:
    assert refused(config, **options) == (
        f"The dev cleanup's {what} is `{value}`, which looks like staging or prod; {POINT}"
    )


@pytest.mark.parametrize(
    ("overrides", "what", "value"),
    [
        ({"service": "menotime-sandbox-service"}, "service", "menotime-sandbox-service"),
        ({"database": "menotime_sandbox"}, "database", "menotime_sandbox"),
        ({"cluster": "menotime-cluster"}, "cluster", "menotime-cluster"),
    ],
)
def test_a_dev_environment_target_that_does_not_name_dev_refuses(
    overrides: dict[str, str], what: str, value: str
) -> None:
    config = load_config(overrides={"environments": {"dev": overrides}})
    assert refused(config) == (
        f"The dev cleanup's {what} is `{value}`, which does not name dev (menotime-dev…); {POINT}"
    )


def test_a_repository_that_looks_like_staging_or_prod_refuses(config: Config) -> None:
    assert refused(config, repositories=["menotime-dev-api", "menotime-prod-api"]) == (
        "The dev cleanup is configured with ECR repository `menotime-prod-api`, which looks like "
        "staging or prod; it refuses to start. Fix jobs.options.dev-cleanup.repositories."
    )


def database(dsn: str, table: str = "events") -> dict[str, Any]:
    return {"database": {"dsn": dsn, "tables": [{"table": table, "column": "created_at"}]}}


def test_a_dev_database_passes(config: Config) -> None:
    check(
        config, **database("postgresql+psycopg://bot:s3cret@menotime-dev.abc.rds.amazonaws.com/menotime_dev")
    )
    check(config, **database("postgresql+psycopg:///menotime_dev"))  # no host: the local socket


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        (
            "not a url at all",
            "jobs.options.dev-cleanup.database.dsn is not a database URL "
            "(postgresql+psycopg://user@host/dbname); the dev cleanup refuses to start.",
        ),
        (
            "mysql://bot@menotime-dev/menotime_dev",
            "jobs.options.dev-cleanup.database.dsn must be a PostgreSQL URL (the dev database is RDS "
            "PostgreSQL); the dev cleanup refuses to start.",
        ),
        (
            "postgresql+psycopg://bot:pw@menotime-prod.abc.rds.amazonaws.com/menotime_dev",
            "The dev database's host looks like staging or prod; the dev cleanup refuses to start. "
            "Fix jobs.options.dev-cleanup.database.dsn.",
        ),
        (
            "postgresql+psycopg://bot:pw@menotime-dev.abc.rds.amazonaws.com/menotime_staging",
            "The dev database's database looks like staging or prod; the dev cleanup refuses to start. "
            "Fix jobs.options.dev-cleanup.database.dsn.",
        ),
        (
            "postgresql+psycopg://bot:pw@menotime-dev.abc.rds.amazonaws.com/menotime",
            "The dev database's name does not name dev (menotime_dev…); the dev cleanup refuses to "
            "start. Fix jobs.options.dev-cleanup.database.dsn.",
        ),
        (
            "postgresql+psycopg://bot:pw@menotime-dev.abc.rds.amazonaws.com",
            "The dev database's name does not name dev (menotime_dev…); the dev cleanup refuses to "
            "start. Fix jobs.options.dev-cleanup.database.dsn.",
        ),
    ],
)
def test_a_database_that_is_not_plainly_dev_refuses_without_echoing_the_dsn(
    config: Config, dsn: str, message: str
) -> None:
    assert refused(config, **database(dsn)) == message


def test_a_table_that_looks_like_staging_or_prod_refuses(config: Config) -> None:
    dsn = "postgresql+psycopg://bot@menotime-dev/menotime_dev"
    assert refused(config, **database(dsn, table="prod_events")) == (
        "The dev cleanup is configured to delete rows of `prod_events`, which looks like staging or prod; "
        "it refuses to start. Fix jobs.options.dev-cleanup.database.tables."
    )


def test_the_first_target_that_is_not_dev_is_named(config: Config) -> None:
    message = refused(config, cluster="menotime-staging-cluster", task_family="menotime-backend-prod")
    assert message.startswith("The dev cleanup's cluster is `menotime-staging-cluster`")
