"""Result objects: what a command produced, rendered to Slack blocks or console text at the edge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from bot.render import Audience
from bot.store.audit import AuditEntry


@dataclass(frozen=True)
class VerbHelp:
    name: str
    usage: str
    summary: str
    envs: tuple[str, ...]  # where this user may use it; empty for env-less verbs
    args: tuple[tuple[str, str], ...] = ()  # (usage name, help)
    flags: tuple[tuple[str, str], ...] = ()
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class HelpResult:
    template: ClassVar[str] = "help"
    audience: ClassVar[Audience] = "ephemeral"

    verbs: tuple[VerbHelp, ...]
    detail: VerbHelp | None
    has_role: bool


@dataclass(frozen=True)
class EnvPermissions:
    env: str
    verbs: tuple[str, ...]


@dataclass(frozen=True)
class WhoamiResult:
    template: ClassVar[str] = "whoami"
    audience: ClassVar[Audience] = "ephemeral"

    user_id: str
    roles: tuple[str, ...]
    per_env: tuple[EnvPermissions, ...]


@dataclass(frozen=True)
class HistoryResult:
    template: ClassVar[str] = "history"
    audience: ClassVar[Audience] = "ephemeral"

    entries: tuple[AuditEntry, ...]
    env: str | None
    limit: int


@dataclass(frozen=True)
class ErrorResult:
    """A refusal or failure, as one sentence. ``kind`` is the typed error's kind."""

    template: ClassVar[str] = "error"
    audience: ClassVar[Audience] = "ephemeral"

    kind: str
    message: str
    correlation_id: str | None = None

    @property
    def emoji(self) -> str:
        return {"denied": ":no_entry:", "aws_unavailable": ":cloud:", "internal": ":warning:"}.get(
            self.kind, ":warning:"
        )


@dataclass(frozen=True)
class Reply:
    """What the service hands to an adapter: the result and how the request was judged."""

    result: object
    verb: str
    env: str | None
    outcome: str  # ok | denied | invalid | failed | error
    at: datetime
