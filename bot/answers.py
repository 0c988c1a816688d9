"""Result objects: what a command produced, rendered to Slack blocks or console text at the edge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from bot.render import Audience, Renderable


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
class ChangeEntry:
    """One change of an environment in `history`: a deployment, rollback or scaling, anyone's."""

    at: datetime
    env: str
    kind: str  # deploy | rollback | scale
    what: str  # e.g. "`v1.2.4` (rev 12)", "2 → 3 tasks"
    user: str | None  # the Slack user who asked, when the bot made it
    actor: str | None  # who else made it ("CI/CD or console"), when the bot did not
    outcome: str
    detail: str | None = None


@dataclass(frozen=True)
class HistoryResult:
    template: ClassVar[str] = "history"
    audience: ClassVar[Audience] = "ephemeral"

    entries: tuple[ChangeEntry, ...]
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

    result: Renderable
    verb: str
    env: str | None
    outcome: str  # ok | denied | invalid | failed | error
    at: datetime


@dataclass(frozen=True)
class Button:
    """A button in Slack, a command to type in the console: both run the same `/menotime` line."""

    label: str
    action_id: str
    value: str
    command: str
    style: str | None = None  # "primary" | "danger"
    url: str | None = None  # a link button (the runbook): Slack opens it, nothing is run


@dataclass(frozen=True)
class ChangeResult:
    """Any answer about a change (plan, confirmation, approval, deploy, rollout, scale, lock).

    ``headline`` and fact values may hold `code`, and people and links as ``bot.rich.Rich``; the renderers take care of
    the rest (escaping for Slack, plain text for the console)."""

    template: ClassVar[str] = "change"

    headline: str
    emoji: str = ":information_source:"
    facts: tuple[tuple[str, str], ...] = ()
    details: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()
    footer: str | None = None
    public: bool = True
    request_id: str | None = None  # the confirmation or approval request this answer opened

    @property
    def audience(self) -> Audience:
        return "in_channel" if self.public else "ephemeral"
