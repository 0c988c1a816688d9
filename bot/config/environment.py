"""One environment's entry under ``environments:``: its tasks, image tags, budget, change window,
soak and release cadence, each a strict model (unknown keys refused, values frozen)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.clock import DISPLAY_ZONE_NAME, zone_label

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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
    timezone: TimeZone = DISPLAY_ZONE_NAME

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
        return f"{run} {self.start:%H:%M}–{self.end:%H:%M} {zone_label(self.timezone)}"


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
    rollback: Literal["fast", "incident"] = Field(
        description="incident: rolling back is on-call's first response here, so a service alarm's thread "
        "offers it even with no deployment tied to the alarm; fast: only an alarm tied to a deployment does"
    )
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
