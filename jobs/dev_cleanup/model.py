"""What every resource kind hands the cleanup engine: its candidates, what it spared and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from botocore.exceptions import ClientError

from bot.aws import AwsGateway, error_code
from bot.config import Config, EnvironmentConfig
from bot.errors import AwsUnavailable
from jobs.dev_cleanup.guards import Names
from jobs.dev_cleanup.options import DevCleanupOptions

GIB = 1024**3

# Spared reasons, as the report shows them.
KEEP_TAG = "keep tag"
IN_USE = "in use"
TOO_NEW = "too new"
AGE_UNKNOWN = "age unknown"
NO_ENV_TAG = "not tagged Environment=dev"
LOOKS_FOREIGN = "looks like staging/prod"
AUTOMATED = "automated snapshot"
OTHER_ENV_TAG = "tag of another environment"
NOT_DEV_NAME = "name does not say dev"  # DESIGN §7: the name and the tag, both


@dataclass(frozen=True)
class Resource:
    kind: str
    id: str  # stable across runs: what a mark stores
    label: str  # what people read
    size_bytes: int = 0
    count: int = 1  # rows for the database kind
    handle: Mapping[str, Any] = field(default_factory=dict)  # what deleting it needs


@dataclass(frozen=True)
class ItemError:
    kind: str
    resource: str
    message: str


@dataclass(frozen=True)
class Survey:
    kind: str
    total: int  # resources (or rows) of the kind in scope, candidates included
    candidates: tuple[Resource, ...]
    spared: Mapping[str, int]
    errors: tuple[ItemError, ...] = ()


class Tally:
    """Candidates and spared reasons, collected while classifying a kind's resources."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.total = 0
        self.candidates: list[Resource] = []
        self.spared: Counter[str] = Counter()
        self.errors: list[ItemError] = []

    def spare(self, reason: str) -> None:
        self.total += 1
        self.spared[reason] += 1

    def take(self, resource: Resource) -> None:
        self.total += 1
        self.candidates.append(resource)

    def fail(self, resource: str, exc: Exception) -> None:
        self.errors.append(ItemError(kind=self.kind, resource=resource, message=describe_error(exc)))

    def survey(self) -> Survey:
        return Survey(
            kind=self.kind,
            total=self.total,
            candidates=tuple(self.candidates),
            spared=dict(self.spared),
            errors=tuple(self.errors),
        )


@dataclass(frozen=True)
class Revision:
    arn: str
    family: str
    revision: int
    registered_at: datetime | None
    tags: dict[str, str] | None  # None: described on an earlier run, tags not read yet on this one
    images: tuple[str, ...]


@dataclass(frozen=True)
class Inventory:
    revisions: tuple[Revision, ...]
    errors: tuple[ItemError, ...]  # revisions that could not be described: their images count as in use

    def family(self, family: str) -> list[Revision]:
        return [r for r in self.revisions if r.family == family]

    @property
    def complete(self) -> bool:
        return not self.errors


@dataclass
class Scope:
    """One run's view of the dev environment: targets, cut-offs and shared look-ups."""

    aws: AwsGateway
    config: Config
    env: EnvironmentConfig
    options: DevCleanupOptions
    now: datetime
    retention: timedelta
    names: Names
    inventory_loader: Callable[[], Inventory] | None = field(repr=False, default=None)

    @property
    def cutoff(self) -> datetime:
        return self.now - self.retention

    @property
    def cluster(self) -> str:
        return self.options.cluster or self.env.cluster

    @property
    def task_family(self) -> str:
        return self.options.task_family or self.env.task_family

    @property
    def rds_instance(self) -> str:
        return self.options.rds_instance or self.env.rds_instance

    @cached_property
    def inventory(self) -> Inventory:
        """Every ACTIVE task definition, read once per run, shared by the revisions and the images."""
        if self.inventory_loader is None:
            raise RuntimeError("the scope has no task-definition inventory loader")
        return self.inventory_loader()


class Collector(Protocol):
    kind: str
    label: str
    usd_per_gib_month: float

    def survey(self, scope: Scope) -> Survey: ...

    def delete(
        self, scope: Scope, resources: Sequence[Resource]
    ) -> tuple[list[Resource], list[ItemError]]: ...


def delete_each(
    scope: Scope, resources: Sequence[Resource], kind: str, call: Callable[[Resource], object]
) -> tuple[list[Resource], list[ItemError]]:
    done: list[Resource] = []
    errors: list[ItemError] = []
    for res in resources:
        try:
            call(res)
        except (ClientError, AwsUnavailable) as exc:
            errors.append(ItemError(kind=kind, resource=res.label, message=describe_error(exc)))
            continue
        done.append(res)
    return done, errors


def describe_error(exc: Exception) -> str:
    """One line for the report: the AWS error code and message, never a traceback."""
    if isinstance(exc, ClientError):
        message = str(exc.response.get("Error", {}).get("Message", "")) or "no message"
        return f"{error_code(exc)}: {message}"[:300]
    if isinstance(exc, AwsUnavailable):
        return exc.message
    return f"{type(exc).__name__}: {exc}"[:300]


def tag_map(tags: Sequence[Mapping[str, Any]] | Mapping[str, str] | None) -> dict[str, str]:
    """AWS spells tags {Key, Value}, ECS {key, value}, some APIs a plain mapping."""
    if not tags:
        return {}
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    out: dict[str, str] = {}
    for tag in tags:
        key = tag.get("Key", tag.get("key"))
        if key is not None:
            out[str(key)] = str(tag.get("Value", tag.get("value", "")))
    return out


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
