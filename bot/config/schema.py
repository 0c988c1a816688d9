"""The configuration's top level: channels, roles and their members, the permission matrix, the
change, job and alarm settings, and one entry per environment (bot/config/environment.py)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from bot.clock import DISPLAY_ZONE_NAME
from bot.config.environment import EnvironmentConfig, TimeZone, _Strict
from bot.cron import cron_trigger


class Role(StrEnum):
    viewer = "viewer"
    developer = "developer"
    qa = "qa"
    oncall = "oncall"
    operations = "operations"
    release_manager = "release_manager"
    admin = "admin"


ANY_ROLE = "*"

# Policy actions: what the permission matrix is keyed by. Verbs map onto these.
ACTIONS: tuple[str, ...] = (
    "status",
    "history",
    "alarms",
    "deploy",
    "approve",
    "rollback",
    "scale",
    "acknowledge",
    "lock",
    "unlock",
    "emergency",
    "jobs_run",
)

CHANGE_ACTIONS = ("deploy", "rollback", "scale")

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")


class Changes(_Strict):
    approval_ttl_minutes: int = Field(default=120, ge=1)
    confirmation_ttl_minutes: int = Field(default=15, ge=1)
    lease_minutes: int = Field(default=45, ge=1)
    rollout_timeout_minutes: int = Field(default=30, ge=1)
    rollout_poll_seconds: float = Field(default=10, gt=0)

    @model_validator(mode="after")
    def _lease_outlives_polls(self) -> Changes:
        # The follower renews the lease at every poll; it must not lapse between two polls.
        if self.lease_minutes * 60 <= 2 * self.rollout_poll_seconds:
            raise ValueError("lease_minutes must be longer than two rollout polls")
        return self


_CRON_FIELDS = 5


class JobsConfig(_Strict):
    """When jobs run (cron in ``timezone``) and each job's own options (validated by the job)."""

    timezone: TimeZone = Field(default=DISPLAY_ZONE_NAME)
    misfire_grace_minutes: int = Field(
        default=360, ge=1, description="a run missed by less than this runs once on start"
    )
    leader_lease_seconds: int = Field(default=60, ge=5, description="a dead leader is replaced within this")
    schedules: dict[str, str] = Field(
        default_factory=dict, description="job name -> 5-field cron; '' disables"
    )
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-job options, by section"
    )

    @field_validator("schedules")
    @classmethod
    def _cron(cls, schedules: dict[str, str]) -> dict[str, str]:
        for name, expr in schedules.items():
            if not expr:
                continue
            if len(expr.split()) != _CRON_FIELDS:
                raise ValueError(
                    f"{name}: {expr!r} is not a 5-field cron expression (minute hour day month weekday)"
                )
            try:
                cron_trigger(expr, "UTC")  # as the scheduler will read it (cron's weekday numbers)
            except ValueError as exc:
                raise ValueError(f"{name}: {expr!r}: {exc}") from None
        return schedules


class AlarmsConfig(_Strict):
    """Thread behaviour (DESIGN §6, §10 items 5-6)."""

    storm_threshold: int = Field(
        default=5, ge=1, description="new threads per channel per minute before grouping"
    )
    flap_threshold: int = Field(
        default=4, ge=2, description="state changes within flap_window before summarising"
    )
    flap_window_minutes: int = Field(default=30, ge=1)
    reminder_minutes: int = Field(
        default=30, ge=1, description="remind while an acknowledged alarm stays in ALARM"
    )
    snooze_minutes: int = Field(default=60, ge=1)
    runbooks: dict[str, str] = Field(
        default_factory=dict, description="alarm-name prefix -> runbook URL (longest wins)"
    )
    default_runbook: str | None = Field(default=None)

    def runbook_for(self, name: str) -> str | None:
        matches = [prefix for prefix in self.runbooks if name.startswith(prefix)]
        return self.runbooks[max(matches, key=len)] if matches else self.default_runbook


class RoleMembers(_Strict):
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @field_validator("users")
    @classmethod
    def _user_ids(cls, users: tuple[str, ...]) -> tuple[str, ...]:
        for user in users:
            if not _SLACK_USER.match(user):
                raise ValueError(f"{user!r} is not a Slack user ID (like U012AB3CD)")
        return users

    @field_validator("groups")
    @classmethod
    def _group_ids(cls, groups: tuple[str, ...]) -> tuple[str, ...]:
        for group in groups:
            if not _SLACK_GROUP.match(group):
                raise ValueError(f"{group!r} is not a Slack user group ID (like S0614TZR7)")
        return groups


class Channels(_Strict):
    ops: str = Field(description="job reports and cost posts")
    default_alerts: str = Field(description="alarms whose environment cannot be told")


class Config(_Strict):
    channels: Channels
    environments: dict[str, EnvironmentConfig] = Field(min_length=1)
    roles: dict[Role, RoleMembers]
    permissions: dict[str, dict[str, tuple[str, ...]]]
    changes: Changes = Field(default_factory=Changes)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    settings: dict[str, Any] = Field(default_factory=dict, description="process settings (see bot.settings)")

    @model_validator(mode="before")
    @classmethod
    def _name_environments(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("environments"), dict):
            data = dict(data)
            data["environments"] = {
                name: ({**body, "name": name} if isinstance(body, dict) else body)
                for name, body in data["environments"].items()
            }
        return data

    @field_validator("environments")
    @classmethod
    def _env_names(cls, envs: dict[str, EnvironmentConfig]) -> dict[str, EnvironmentConfig]:
        for name in envs:
            if not _ENV_NAME.match(name) or name == "all":
                raise ValueError(
                    f"environment name {name!r} must be lower-case letters, digits, dashes, not 'all'"
                )
        return envs

    @field_validator("permissions")
    @classmethod
    def _known_actions_and_roles(
        cls, perms: dict[str, dict[str, tuple[str, ...]]]
    ) -> dict[str, dict[str, tuple[str, ...]]]:
        roles = {r.value for r in Role} | {ANY_ROLE}
        for action, by_env in perms.items():
            if action not in ACTIONS:
                raise ValueError(f"unknown action {action!r}; actions are {', '.join(ACTIONS)}")
            for env, allowed in by_env.items():
                for role in allowed:
                    if role not in roles:
                        raise ValueError(
                            f"{action}.{env}: unknown role {role!r}; roles are {', '.join(sorted(roles))}"
                        )
        return perms

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The `settings:` section feeds bot.settings.Settings: a typo there must not pass silently."""
        from pydantic import TypeAdapter

        from bot.settings import Settings

        fields = Settings.model_fields
        for key, value in values.items():
            name = str(key).lower()
            if name not in fields:
                raise ValueError(f"unknown setting {key!r}; settings are {', '.join(sorted(fields))}")
            try:
                annotation = fields[name].annotation  # None only for an unannotated field: NoneType
                TypeAdapter(type(None) if annotation is None else annotation).validate_python(value)
            except ValidationError as exc:
                raise ValueError(f"{key}: {exc.errors()[0]['msg']}") from None
        return values

    def announce_channel(self, env: EnvironmentConfig) -> str:
        """Where an environment's changes, approvals and rollouts are posted."""
        return env.channel or env.alerts_channel or self.channels.ops

    @model_validator(mode="after")
    def _soak_names_known_envs(self) -> Config:
        for env in self.environments.values():
            if env.soak and env.soak.env not in self.environments:
                raise ValueError(f"environments.{env.name}.soak.env: unknown environment {env.soak.env!r}")
        return self

    @model_validator(mode="after")
    def _permissions_name_known_envs(self) -> Config:
        for action, by_env in self.permissions.items():
            for env in by_env:
                if env not in self.environments:
                    known = ", ".join(self.environments)
                    raise ValueError(
                        f"permissions.{action}: unknown environment {env!r}; environments are {known}"
                    )
        return self

    def env(self, name: str) -> EnvironmentConfig:
        return self.environments[name]

    @property
    def env_names(self) -> tuple[str, ...]:
        return tuple(self.environments)
