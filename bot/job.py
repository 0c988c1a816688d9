"""What a scheduled job is, to the scheduler, the CLI and `/menotime jobs`.

A job (one module in ``jobs/``) is a plain function of a :class:`JobContext` returning a report
(a renderable result with an outcome and a one-line summary). The scheduler in ``bot.scheduler``
only decides *when*; the composition root (``handlers``) hands it the list of :class:`JobSpec`, so
nothing in ``bot/`` imports ``jobs/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

from bot.aws import AwsGateway
from bot.clock import Clock
from bot.config import Config
from bot.notify import MessageRef, Notifier
from bot.render import Audience, Renderable
from bot.settings import Settings
from bot.store.db import Database

Outcome = Literal["succeeded", "failed", "refused"]


@dataclass(frozen=True)
class Attachment:
    """A file posted with the report (the cost chart)."""

    filename: str
    content: bytes
    title: str


class JobReport(Protocol):
    """What a run produced: rendered by ``templates/{slack,text}/<template>`` like any result."""

    template: ClassVar[str]
    audience: ClassVar[Audience]

    @property
    def outcome(self) -> Outcome: ...

    @property
    def summary(self) -> str: ...  # one line, for `jobs list` and the run record


class JobAudit(Protocol):
    """Writes one event to the audit trail as the run's actor (``scheduler``, ``cli:<OS user>`` or the
    Slack user who ran it), tied to the run: what a job records for each change it makes."""

    def __call__(
        self, *, verb: str, env: str | None, args: Mapping[str, Any], outcome: str, detail: str | None = None
    ) -> None: ...


def not_audited(
    *, verb: str, env: str | None, args: Mapping[str, Any], outcome: str, detail: str | None = None
) -> None:
    """A context built outside the job runner (unit tests of a job) records nothing."""


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    config: Config
    db: Database
    aws: AwsGateway
    clock: Clock
    notifier: Notifier
    options: BaseModel  # the job's own section of `jobs.options`, validated by its `options_model`
    run_id: int
    dry_run: bool = False
    override: bool = False  # an operator's explicit "go past the caps"
    requested_by: str | None = None
    # One living progress message (the staging refresh): post once, then edit in place.
    progress: Callable[[Renderable], MessageRef | None] = field(default=lambda _result: None)
    attach: Callable[[Attachment], None] = field(default=lambda _file: None)
    audit: JobAudit = field(default=not_audited)


@dataclass(frozen=True)
class JobSpec:
    name: str  # "dev-cleanup": the CLI, `/menotime jobs run`, the schedule key
    summary: str
    env: str  # whose `jobs_run` permission runs it by hand
    run: Callable[[JobContext], JobReport]
    options_model: type[BaseModel]
    options_key: str  # section under `jobs.options` (cost-report and cost-digest share `cost`)
    iam_actions: tuple[str, ...] = ()
    supports_override: bool = False

    def options(self, config: Config) -> BaseModel:
        """This job's options from the configuration; a bad section is a ConfigError naming it."""
        from pydantic import ValidationError

        from bot.errors import ConfigError

        raw: Mapping[str, Any] = config.jobs.options.get(self.options_key, {}) or {}
        try:
            return self.options_model.model_validate(dict(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"jobs.options.{self.options_key}.{where}: {first['msg']}") from None
