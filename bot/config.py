"""The typed configuration: environment registry, roles, permission matrix and channels.

The shipped ``defaults.yaml`` holds the seed's values; the operator's file (``MENOTIME_CONFIG``) is
merged over it. A bad file fails at start-up with the file, the line and the field at fault.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import datetime, time
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.cron import cron_trigger
from bot.errors import ConfigError


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

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CHANGE_ACTIONS = ("deploy", "rollback", "scale")

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskBounds(_Strict):
    default: int = Field(ge=0, description="desired tasks in normal running")
    min: int = Field(ge=0, description="the fewest tasks `scale` may ask for")
    max: int = Field(ge=1, description="the most tasks `scale` may ask for")

    @model_validator(mode="after")
    def _ordered(self) -> TaskBounds:
        if not self.min <= self.default <= self.max:
            raise ValueError(f"needs min <= default <= max, got {self.min}, {self.default}, {self.max}")
        return self


class ImageTagRule(_Strict):
    rule: str = Field(description="the rule in words, shown to users")
    patterns: tuple[str, ...] = Field(
        min_length=1, description="regular expressions; a tag must match one whole"
    )

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
        return patterns

    def accepts(self, tag: str) -> bool:
        return any(re.fullmatch(p, tag) for p in self.patterns)


class BudgetPoint(_Strict):
    patients: int = Field(ge=0)
    monthly_usd: float = Field(gt=0)


class Budget(_Strict):
    monthly_usd: float | None = Field(default=None, gt=0, description="a flat monthly budget")
    points: tuple[BudgetPoint, ...] = Field(
        default=(), description="budget by active patients, linear between points"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Budget:
        if (self.monthly_usd is None) == (not self.points):
            raise ValueError("give either monthly_usd or points, not both and not neither")
        if self.points and len(self.points) < 2:
            raise ValueError("points needs at least two {patients, monthly_usd} entries")
        return self

    def for_patients(self, patients: int | None) -> float:
        """The monthly budget; with points, interpolated (and clamped) at ``patients``."""
        if self.monthly_usd is not None:
            return self.monthly_usd
        pts = sorted(self.points, key=lambda p: p.patients)
        if patients is None or patients <= pts[0].patients:
            return pts[0].monthly_usd
        for lo, hi in itertools.pairwise(pts):
            if patients <= hi.patients:
                share = (patients - lo.patients) / (hi.patients - lo.patients)
                return lo.monthly_usd + share * (hi.monthly_usd - lo.monthly_usd)
        return pts[-1].monthly_usd


def known_zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r} (use an IANA name like America/Los_Angeles)") from None
    return zone


TimeZone = Annotated[str, AfterValidator(known_zone)]


class ChangeWindow(_Strict):
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(min_length=1)
    start: time
    end: time
    timezone: TimeZone = "America/Los_Angeles"

    @model_validator(mode="after")
    def _ordered(self) -> ChangeWindow:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.timezone))
        return WEEKDAYS[local.weekday()] in self.days and self.start <= local.time() < self.end

    def describe(self) -> str:
        days = self.days
        ordered = [d for d in WEEKDAYS if d in days]
        run = (
            "–".join((ordered[0].title(), ordered[-1].title()))
            if _consecutive(ordered) and len(ordered) > 2
            else ", ".join(d.title() for d in ordered)
        )
        zone = "PT" if self.timezone == "America/Los_Angeles" else self.timezone
        return f"{run} {self.start:%H:%M}–{self.end:%H:%M} {zone}"


def _consecutive(days: Sequence[str]) -> bool:
    idx = [WEEKDAYS.index(d) for d in days]
    return idx == list(range(idx[0], idx[0] + len(idx)))


class Soak(_Strict):
    env: str = Field(description="where the same image digest must have run first")
    hours: float = Field(gt=0)


class Cadence(_Strict):
    """How many releases a week the environment plans for (the seed: prod twice a week)."""

    per_week: int = Field(ge=1, description="releases (deploys, not rollbacks) per week, Monday to Sunday")
    blocking: bool = Field(
        default=False, description="false: shown with the plan and approval; true: refused beyond"
    )


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

    timezone: TimeZone = Field(default="America/Los_Angeles")
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


class EnvironmentConfig(_Strict):
    name: str = Field(description="filled from the key in `environments`")
    cluster: str
    service: str
    task_family: str
    rds_instance: str
    database: str
    app_container: str | None = Field(
        default=None, description="container whose image deploys change; default: the essential one"
    )
    tasks: TaskBounds
    autoscaling: bool = Field(description="true: scale moves the Application Auto Scaling target's bounds")
    image_tags: ImageTagRule
    deploy_gate: Literal["none", "roles", "two_person"]
    confirm: tuple[Literal["deploy", "rollback", "scale"], ...] = Field(
        default=(), description="changes that need a confirmation click before they run"
    )
    rollback: Literal["fast", "incident"]
    change_window: ChangeWindow | None = Field(default=None, description="deploys only inside it")
    soak: Soak | None = Field(default=None, description="deploys need the digest to have run there first")
    watch_minutes: int = Field(
        default=0,
        ge=0,
        description="after a deployment completes, alarms firing this long are tied to it; 0: off",
    )
    cadence: Cadence | None = Field(default=None, description="planned releases per week")
    alerts_channel: str | None = None
    channel: str | None = Field(
        default=None,
        description="where changes, approvals and rollouts are posted; default: alerts_channel, else ops",
    )
    alarm_prefix: str | None = Field(default=None, description="default: menotime-<env>-")
    alarm_topics: tuple[str, ...] = Field(
        default=(),
        description="SNS topic ARNs whose messages belong to this environment (beside the name rules)",
    )
    retention_days: int | None = Field(default=None, ge=1, description="null: kept indefinitely")
    budget: Budget

    @property
    def alarm_name_prefix(self) -> str:
        return self.alarm_prefix if self.alarm_prefix is not None else f"menotime-{self.name}-"


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


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) in ``override`` replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# libyaml's safe loader when PyYAML was built with it: the same YAML, read in C, several times faster.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(text: str, source: str) -> tuple[dict[str, Any], yaml.Node | None]:
    try:
        node = yaml.compose(text, Loader=_YAML_LOADER)
        data = yaml.load(text, Loader=_YAML_LOADER)  # a safe loader (above)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the configuration must be a mapping at the top level")
    return data, node


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest YAML node along ``loc`` that the file itself defines."""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for knode, vnode in node.value:
                if str(knode.value) == str(key):
                    line = knode.start_mark.line + 1
                    node = vnode
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _explain(exc: ValidationError, source: str, node: yaml.Node | None) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after", "function-before"))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(node, loc)
        where = f"{source}:{line}" if line else source
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {field}: {message}")
    return "\n".join(lines)


def load_config(path: Path | str | None = None, *, overrides: dict[str, Any] | None = None) -> Config:
    """The shipped defaults with the operator's file (if any) and then ``overrides`` merged over
    them, validated."""
    defaults_text = resources.files("bot").joinpath("defaults.yaml").read_text(encoding="utf-8")
    data, _ = _read_yaml(defaults_text, "defaults.yaml")
    node = None
    source = "defaults.yaml"
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
        override, node = _read_yaml(text, str(path))
        data = deep_merge(data, override)
        source = str(path)
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source, node)) from None
