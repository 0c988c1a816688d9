"""The typed configuration: environment registry, roles, permission matrix and channels.

The shipped ``defaults.yaml`` holds the seed's values; the operator's file (``MENOTIME_CONFIG``) is
merged over it. A bad file fails at start-up with the file, the line and the field at fault.
"""

from __future__ import annotations

import re
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

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
    "lock",
    "unlock",
    "jobs_run",
)

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
    patterns: tuple[str, ...] = Field(min_length=1, description="regular expressions; a tag must match one whole")

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
    points: tuple[BudgetPoint, ...] = Field(default=(), description="budget by active patients, linear between points")

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
        for lo, hi in zip(pts, pts[1:], strict=False):
            if patients <= hi.patients:
                share = (patients - lo.patients) / (hi.patients - lo.patients)
                return lo.monthly_usd + share * (hi.monthly_usd - lo.monthly_usd)
        return pts[-1].monthly_usd


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
    rollback: Literal["fast", "incident"]
    alerts_channel: str | None = None
    alarm_prefix: str | None = Field(default=None, description="default: menotime-<env>-")
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
                raise ValueError(f"environment name {name!r} must be lower-case letters, digits, dashes, not 'all'")
        return envs

    @field_validator("permissions")
    @classmethod
    def _known_actions_and_roles(cls, perms: dict[str, dict[str, tuple[str, ...]]]) -> dict:
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

    @model_validator(mode="after")
    def _permissions_name_known_envs(self) -> Config:
        for action, by_env in self.permissions.items():
            for env in by_env:
                if env not in self.environments:
                    known = ", ".join(self.environments)
                    raise ValueError(f"permissions.{action}: unknown environment {env!r}; environments are {known}")
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


def _read_yaml(text: str, source: str) -> tuple[dict[str, Any], yaml.Node | None]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
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
