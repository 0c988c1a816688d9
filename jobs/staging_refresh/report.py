"""What a refresh shows: one object for the living progress message and the final report.

It carries names, step outcomes and durations, and the anonymizer's verification summary — never a
value read from the database, never a password or a DSN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from bot.job import Outcome
from bot.render import Audience

Status = Literal["running", "succeeded", "failed", "refused"]

STEP_LABELS: dict[str, str] = {
    "retire-old": "Delete replaced instances older than the retention",
    "snapshot": "Find the latest automated prod snapshot",
    "restore": "Restore it as the next staging instance",
    "password": "Reset its master password, turn its backups off",
    "wait": "Wait until it is available",
    "anonymize": "Anonymize and verify",
    "swap": "Swap it in as staging",
    "deploy": "Turn its backups back on, redeploy the staging service",
    "cleanup": "Delete the unswapped copy",
}


@dataclass(frozen=True)
class StepLine:
    step: str
    outcome: str  # running | done | failed | skipped
    seconds: float | None
    detail: str | None = None

    @property
    def label(self) -> str:
        return STEP_LABELS.get(self.step, self.step)

    @property
    def emoji(self) -> str:
        return {"done": ":white_check_mark:", "failed": ":x:", "skipped": ":fast_forward:"}.get(
            self.outcome, ":hourglass_flowing_sand:"
        )

    @property
    def duration(self) -> str:
        if self.seconds is None:
            return "…"
        seconds = round(self.seconds)
        return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass(frozen=True)
class RefreshReport:
    template: ClassVar[str] = "staging_refresh"
    audience: ClassVar[Audience] = "in_channel"

    status: Status
    run_id: str | None
    headline: str
    steps: tuple[StepLine, ...] = ()
    names: tuple[tuple[str, str], ...] = ()  # (label, name): snapshot, restored copy, staging, replaced
    verification: str | None = None
    verification_ok: bool | None = None
    notes: tuple[str, ...] = field(default=())
    dry_run: bool = False

    @property
    def outcome(self) -> Outcome:
        return "succeeded" if self.status == "running" else self.status

    @property
    def summary(self) -> str:
        return self.headline

    @property
    def emoji(self) -> str:
        return {
            "running": ":arrows_counterclockwise:",
            "succeeded": ":white_check_mark:",
            "failed": ":x:",
            "refused": ":no_entry:",
        }[self.status]
