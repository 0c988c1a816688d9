"""The dev cleanup's options (``jobs.options.dev-cleanup``), validated when the job is loaded.

Everything has a default: an operator writes only what differs. Target names left out come from the
dev environment's own configuration (``environments.dev``).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

KINDS: tuple[str, ...] = (
    "task_definitions",
    "ecr_images",
    "rds_snapshots",
    "ebs_volumes",
    "log_groups",
    "db_rows",
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cap(_Strict):
    """The most one run may delete of a kind; past it the run deletes nothing (unless overridden)."""

    max_count: int | None = Field(
        default=500, ge=0, description="deletions of this kind per run; null: no limit"
    )
    max_share: float | None = Field(
        default=0.9, gt=0, le=1, description="share of the kind's total; null: no limit"
    )


class TableRule(_Strict):
    table: str = Field(description="table name, optionally schema-qualified (public.events)")
    column: str = Field(description="the timestamp column that says how old a row is")

    @field_validator("table", "column")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(
                f"{value!r} is not a plain SQL identifier (letters, digits, _; schema.table allowed)"
            )
        return value


class DevDatabase(_Strict):
    dsn: SecretStr = Field(description="SQLAlchemy URL of the dev database (postgresql+psycopg://...)")
    tables: tuple[TableRule, ...] = Field(min_length=1)
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="rows per DELETE statement")


class DevCleanupOptions(_Strict):
    kinds: tuple[str, ...] = Field(default=KINDS, description="which kinds this job cleans")
    keep_newest: int = Field(
        default=5, ge=1, description="task-definition revisions always kept, newest first"
    )
    volume_min_age_days: float = Field(
        default=7, ge=0, description="available EBS volumes older than this go"
    )
    mark_grace_hours: float = Field(
        default=24, ge=0, description="a mark must be this old before it is deleted"
    )
    require_env_tag: bool = Field(
        default=True, description="only resources tagged Environment=dev (kinds with tags)"
    )
    # Targets; default: the dev environment's configuration.
    cluster: str | None = None
    task_family: str | None = None
    rds_instance: str | None = None
    repositories: tuple[str, ...] = Field(
        default=(), description="ECR repositories; default: the dev service's"
    )
    log_group_prefixes: tuple[str, ...] = Field(
        default=(),
        description="default: /ecs/<dev task family>, /ecs/menotime-dev, /aws/rds/instance/<dev rds>",
    )
    allowed_account_ids: tuple[str, ...] = Field(
        default=(), description="refuse to run in any other AWS account"
    )
    default_cap: Cap = Field(default_factory=Cap)
    caps: dict[str, Cap] = Field(default_factory=dict, description="per kind, over default_cap")
    database: DevDatabase | None = Field(default=None, description="old rows of these tables are deleted")
    slack_list_limit: int = Field(default=10, ge=1, le=50, description="items listed per kind in Slack")

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        for kind in kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        return kinds

    @field_validator("caps")
    @classmethod
    def _known_cap_kinds(cls, caps: dict[str, Cap]) -> dict[str, Cap]:
        for kind in caps:
            if kind not in KINDS:
                raise ValueError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        return caps

    def cap(self, kind: str) -> Cap:
        if kind in self.caps:
            return self.caps[kind]
        # Old rows of the dev database are plain retention: a cap on them is the operator's choice.
        return Cap(max_count=None, max_share=None) if kind == "db_rows" else self.default_cap
