"""Process settings: environment variables, then AWS Secrets Manager, then the config file's
``settings:`` section, then these defaults. Built once, passed down; tests construct it directly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    AWSSecretsManagerSettingsSource,
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_SNS_CERT_HOST_PATTERN = r"^sns\.[a-zA-Z0-9-]{3,}\.amazonaws\.com(\.cn)?$"


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The ``settings:`` mapping of the YAML named by MENOTIME_CONFIG (keys are field names)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("MENOTIME_CONFIG")
        if not path:
            return {}
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return {}  # load_config reports the file's problems with line numbers
        section = data.get("settings") if isinstance(data, dict) else None
        return {str(k).lower(): v for k, v in section.items()} if isinstance(section, dict) else {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr | None = Field(default=None, description="xoxb- token of the Slack app")
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="verifies inbound Slack requests"
    )
    slack_app_token: SecretStr | None = Field(default=None, description="xapp- token, Socket Mode only")
    slack_api_url: str | None = Field(
        default=None, description="Slack Web API base URL override (tests, proxies)"
    )
    database_url: str = Field(
        default="sqlite:///./menotime-ops.db", description="SQLAlchemy URL of the store"
    )
    aws_region: str = Field(default="us-west-1", description="region of MenoTime's resources")
    aws_endpoint_url: str | None = Field(default=None, description="AWS endpoint override (simulator, tests)")
    menotime_config: Path | None = Field(default=None, description="YAML merged over the shipped defaults")
    sns_topic_arns: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="SNS topics the bot hears, with the alarm_topics of environments; none: alarm path closed",
    )
    sns_cert_host_pattern: str = Field(
        default=DEFAULT_SNS_CERT_HOST_PATTERN, description="allowed cert hosts"
    )
    sns_cert_cache_dir: Path | None = Field(default=None, description="on-disk SNS signing certificate cache")
    sns_max_age_seconds: int = Field(default=3600, ge=1, description="older SNS messages are refused")
    sns_queue_url: str | None = Field(default=None, description="SQS queue to long-poll (socket mode)")
    log_format: Literal["json", "console"] = Field(default="json", description="log line format")
    log_level: str = Field(default="INFO", description="minimum log level")
    port: int = Field(default=3000, ge=1, le=65535, description="HTTP port of `serve`")
    secrets_manager_secret_id: str | None = Field(default=None, description="secret holding more settings")
    group_cache_ttl_seconds: int = Field(
        default=300, ge=0, description="how long user-group members are cached"
    )
    migrate_on_start: bool = Field(default=True, description="`serve`/`socket` apply migrations at start")
    aws_connect_timeout: float = Field(default=3.0, gt=0, description="seconds to connect to an AWS endpoint")
    aws_read_timeout: float = Field(default=10.0, gt=0, description="seconds to wait for an AWS answer")
    aws_max_attempts: int = Field(
        default=3, ge=1, le=10, description="attempts per AWS call (adaptive retry)"
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="serve /metrics on this port only (not on PORT); unset: on PORT",
    )
    group_cache_max_stale_seconds: int = Field(
        default=900,
        ge=0,
        description="a cached group grant older than this is dropped when Slack cannot be asked",
    )
    audit_key: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key of the audit chain (never stored in the database)"
    )
    audit_anchor_bucket: str | None = Field(
        default=None, description="S3 bucket (Object Lock, compliance mode) holding the audit chain's head"
    )
    audit_anchor_prefix: str = Field(
        default="menotime-ops/audit-head/", description="key prefix of the anchors"
    )
    audit_anchor_retention_days: int = Field(
        default=2190, ge=1, description="Object Lock retention of an anchor"
    )
    audit_anchor_interval_seconds: int = Field(
        default=300, ge=30, description="how often the head is anchored"
    )
    anonymize_salt: SecretStr | None = Field(
        default=None, description="secret key of the anonymization pseudonyms (HMAC); unset: random per run"
    )

    @field_validator("sns_topic_arns", mode="before")
    @classmethod
    def _split_arns(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(arn.strip() for arn in value.split(",") if arn.strip())
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        secret_id = os.environ.get("SECRETS_MANAGER_SECRET_ID")
        if secret_id:
            sources.append(
                AWSSecretsManagerSettingsSource(
                    settings_cls,
                    secret_id,
                    region_name=os.environ.get("AWS_REGION", "us-west-1"),
                    endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
                    case_sensitive=False,
                )
            )
        sources.append(_ConfigFileSource(settings_cls))
        return tuple(sources)

    def describe(self) -> dict[str, str]:
        """The effective settings with every secret masked, for `config check`."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                shown[name] = "(not set)"
            elif isinstance(value, SecretStr):
                shown[name] = "(set)" if value.get_secret_value() else "(empty)"
            elif name == "database_url":
                shown[name] = _mask_password(value)
            else:
                shown[name] = str(value)
        return shown


def _mask_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as unparsable, never echoed
        return "(unparsable URL)"
