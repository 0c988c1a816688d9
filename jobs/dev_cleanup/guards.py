"""Dev-only guards: what the cleanup may touch, and when it refuses to start at all.

Two layers. Before anything is listed, every configured target (the dev environment's names and the
job's options) must name dev and nothing that looks like staging or prod: otherwise the run is
refused. Then each resource found is checked again by name and, where the kind has tags, by its
``Environment=dev`` tag; ``menotime:keep=true`` spares it whatever else is true.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.config import Config, EnvironmentConfig
from jobs.dev_cleanup.options import DevCleanupOptions

DEV = "dev"
ENV_TAG = "Environment"
KEEP_TAG = "menotime:keep"
_FOREIGN_WORDS = frozenset({"prod", "production", "prd", "staging", "stage", "stg"})
_WORD = re.compile(r"[a-z0-9]+")


class Refused(Exception):
    """The run must not start; ``message`` tells the operator what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _words(name: str) -> set[str]:
    return set(_WORD.findall(name.lower()))


class Names:
    """Name checks against the configuration: dev's words in, every other environment's out."""

    def __init__(self, config: Config, dev: EnvironmentConfig) -> None:
        self.dev = dev
        foreign: set[str] = set()
        for env in config.environments.values():
            if env.name == dev.name:
                continue
            foreign.update(
                n.lower() for n in (env.cluster, env.service, env.task_family, env.rds_instance, env.database)
            )
            foreign.add(f"menotime-{env.name}")
        self._foreign_names = frozenset(foreign)
        self._foreign_words = _FOREIGN_WORDS | {e for e in config.environments if e != dev.name}

    def looks_foreign(self, name: str) -> bool:
        lowered = name.lower()
        if _words(lowered) & self._foreign_words:
            return True
        return any(_contains_name(lowered, other) for other in self._foreign_names)

    def is_dev(self, name: str) -> bool:
        return DEV in _words(name) and not self.looks_foreign(name)


def _contains_name(text: str, name: str) -> bool:
    """``name`` in ``text`` between non-alphanumerics (menotime-prod in /ecs/menotime-prod-api)."""
    return re.search(rf"(^|[^a-z0-9]){re.escape(name)}($|[^a-z0-9])", text) is not None


def has_keep_tag(tags: Mapping[str, str]) -> bool:
    return tags.get(KEEP_TAG, "").strip().lower() == "true"


def has_dev_tag(tags: Mapping[str, str]) -> bool:
    return tags.get(ENV_TAG, "").strip().lower() == DEV


def dev_environment(config: Config) -> EnvironmentConfig:
    env = config.environments.get(DEV)
    if env is None:
        raise Refused(
            "There is no `dev` environment in the configuration, so there is nothing the dev cleanup "
            "may touch; add environments.dev or switch the job off."
        )
    if env.retention_days is None:
        raise Refused(
            "environments.dev.retention_days is not set: the dev cleanup needs a retention to know "
            "what is old; set it (the seed says 30)."
        )
    return env


def default_log_prefixes(env: EnvironmentConfig, options: DevCleanupOptions) -> tuple[str, ...]:
    if options.log_group_prefixes:
        return options.log_group_prefixes
    rds = options.rds_instance or env.rds_instance
    family = options.task_family or env.task_family
    return tuple(dict.fromkeys((f"/ecs/{family}", f"/ecs/menotime-{env.name}", f"/aws/rds/instance/{rds}")))


def check_targets(
    *, config: Config, env: EnvironmentConfig, options: DevCleanupOptions, names: Names
) -> None:
    """Refused naming the first target that is not plainly dev."""
    targets: dict[str, str] = {
        "cluster": options.cluster or env.cluster,
        "task family": options.task_family or env.task_family,
        "RDS instance": options.rds_instance or env.rds_instance,
        "service": env.service,
        "database": env.database,
    }
    for prefix in default_log_prefixes(env, options):
        targets[f"log group prefix {prefix}"] = prefix
    for key, value in targets.items():
        _require_dev(what=key, value=value, names=names)
    for repository in options.repositories:
        if names.looks_foreign(repository):
            raise Refused(
                f"The dev cleanup is configured with ECR repository `{repository}`, which looks like "
                "staging or prod; it refuses to start. Fix jobs.options.dev-cleanup.repositories."
            )
    if options.database is not None:
        _check_dsn(options.database.dsn.get_secret_value(), names=names)
        for rule in options.database.tables:
            if names.looks_foreign(rule.table):
                raise Refused(
                    f"The dev cleanup is configured to delete rows of `{rule.table}`, which looks like "
                    "staging or prod; it refuses to start. Fix jobs.options.dev-cleanup.database.tables."
                )


def _require_dev(*, what: str, value: str, names: Names) -> None:
    if names.looks_foreign(value):
        raise Refused(
            f"The dev cleanup's {what} is `{value}`, which looks like staging or prod; it refuses to "
            "start. Point jobs.options.dev-cleanup (or environments.dev) at dev resources."
        )
    if not names.is_dev(value):
        raise Refused(
            f"The dev cleanup's {what} is `{value}`, which does not name dev (menotime-dev…); it "
            "refuses to start. Point jobs.options.dev-cleanup (or environments.dev) at dev resources."
        )


def _check_dsn(dsn: str, *, names: Names) -> None:
    try:
        url = make_url(dsn)
    except ArgumentError:
        raise Refused(
            "jobs.options.dev-cleanup.database.dsn is not a database URL "
            "(postgresql+psycopg://user@host/dbname); the dev cleanup refuses to start."
        ) from None
    if url.get_backend_name() != "postgresql":
        raise Refused(
            "jobs.options.dev-cleanup.database.dsn must be a PostgreSQL URL (the dev database is RDS "
            "PostgreSQL); the dev cleanup refuses to start."
        )
    for part, value in (("host", url.host or ""), ("database", url.database or "")):
        if names.looks_foreign(value):
            # Neither the host nor the name is echoed: a DSN is configuration, not chat text.
            raise Refused(
                f"The dev database's {part} looks like staging or prod; the dev cleanup refuses to start. "
                "Fix jobs.options.dev-cleanup.database.dsn."
            )
    if DEV not in _words(url.database or ""):
        raise Refused(
            "The dev database's name does not name dev (menotime_dev…); the dev cleanup refuses to "
            "start. Fix jobs.options.dev-cleanup.database.dsn."
        )
