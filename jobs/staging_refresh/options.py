"""The staging refresh's section of the configuration (``jobs.options.staging-refresh``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RefreshOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source_env: str = Field(default="prod", description="whose latest automated snapshot is restored")
    target_env: str = Field(default="staging", description="the environment whose database is replaced")
    security_group_ids: tuple[str, ...] = Field(
        default=(), description="the locked-down VPC security group(s) of the restored copy; required to run"
    )
    db_instance_class: str | None = Field(default=None, description="default: the current staging instance's")
    db_subnet_group: str | None = Field(default=None, description="default: the current staging instance's")
    db_parameter_group: str | None = Field(
        default=None, description="default: the current staging instance's"
    )
    master_secret_id: str = Field(
        default="menotime/staging/database-master",
        description="Secrets Manager secret holding the restored copy's master credentials (AWSPENDING until the swap)",
    )
    salt_secret_id: str = Field(
        default="menotime/staging/anonymization-salt",
        description="Secrets Manager secret holding the anonymization HMAC salt",
    )
    extra_databases_safe: tuple[str, ...] = Field(
        default=(),
        description="other databases of the restored copy known to hold no PHI; they are not anonymized. Any other "
        "database on it (besides rdsadmin, and postgres while it holds no tables) fails the run",
    )
    rules_path: str | None = Field(
        default=None, description="anonymization rules file; default: the shipped rules"
    )
    dsn_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="instance identifier -> PostgreSQL DSN to use instead of its endpoint (tests, the demo)",
    )
    poll_seconds: float = Field(default=30.0, gt=0, description="between two looks at a changing instance")
    wait_minutes: float = Field(
        default=120.0, gt=0, description="an instance not ready by then fails the run"
    )
    lease_minutes: float = Field(
        default=240.0, gt=0, description="one refresh at a time: a crashed run's lock expires after this"
    )
    old_retention_hours: float = Field(
        default=24.0, ge=0, description="the replaced staging instance is deleted by a run this much later"
    )
