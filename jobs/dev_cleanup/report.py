"""The dev cleanup's report: per kind what was marked, deleted, spared and why, and what it saves.

Monthly saving is an estimate from list prices per GiB-month (us-west-1, before any discount):
ECR storage $0.10, EBS gp3 $0.08, RDS manual snapshot storage $0.095 (billed incrementally, so the
allocated size is an upper bound), CloudWatch Logs stored data $0.03. Task-definition revisions and
dev-database rows cost nothing by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from bot.job import Outcome
from bot.render import Audience
from jobs.dev_cleanup.model import GIB, ItemError, Resource

PRICES_TEXT = (
    "ECR $0.10, EBS gp3 $0.08, RDS snapshots $0.095, CloudWatch Logs $0.03 per GiB-month "
    "(list prices; snapshots billed incrementally, so an upper bound)"
)


def size_text(size_bytes: int) -> str:
    if size_bytes >= GIB:
        return f"{size_bytes / GIB:,.1f} GiB"
    if size_bytes >= 1024**2:
        return f"{size_bytes / 1024**2:,.1f} MiB"
    if size_bytes >= 1024:
        return f"{size_bytes / 1024:,.1f} KiB"
    return f"{size_bytes} bytes"


@dataclass(frozen=True)
class KindReport:
    kind: str
    label: str
    total: int
    marked: tuple[Resource, ...]  # newly marked this run (or that a dry run would mark)
    deleted: tuple[Resource, ...]  # deleted this run (or that a dry run would delete)
    next_week: tuple[Resource, ...]  # marked after this run: deleted next run if they still match
    waiting: int  # marked earlier, not yet past the grace period
    dropped: int  # marks whose resources no longer match
    spared: tuple[tuple[str, int], ...]
    errors: tuple[ItemError, ...]
    bytes_freed: int
    monthly_saving_usd: float
    cap: str  # "500 or 90 %"
    cap_exceeded: bool
    failed: bool = False  # the kind could not be listed at all
    two_phase: bool = True

    @property
    def marked_count(self) -> int:
        return sum(r.count for r in self.marked)

    @property
    def deleted_count(self) -> int:
        return sum(r.count for r in self.deleted)

    @property
    def spared_count(self) -> int:
        return sum(n for _, n in self.spared)

    @property
    def spared_text(self) -> str:
        return ", ".join(f"{reason}: {n:,}" for reason, n in self.spared)

    @property
    def freed_text(self) -> str:
        return size_text(self.bytes_freed)


@dataclass(frozen=True)
class DevCleanupReport:
    template: ClassVar[str] = "dev_cleanup"
    audience: ClassVar[Audience] = "in_channel"

    outcome: Outcome
    summary: str
    started_at: datetime
    dry_run: bool
    override: bool
    retention_days: int | None
    grace_hours: float
    refused: str | None  # why nothing was deleted (guards, caps)
    kinds: tuple[KindReport, ...]
    list_limit: int
    prices: str = PRICES_TEXT

    @property
    def bytes_freed(self) -> int:
        return sum(k.bytes_freed for k in self.kinds)

    @property
    def freed_text(self) -> str:
        return size_text(self.bytes_freed)

    @property
    def monthly_saving_usd(self) -> float:
        return sum(k.monthly_saving_usd for k in self.kinds)

    @property
    def errors(self) -> tuple[ItemError, ...]:
        return tuple(e for k in self.kinds for e in k.errors)

    def kind(self, name: str) -> KindReport:
        for report in self.kinds:
            if report.kind == name:
                return report
        raise KeyError(name)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def summary_line(*, dry_run: bool, kinds: tuple[KindReport, ...]) -> str:
    resources = [k for k in kinds if k.two_phase]
    tables = [k for k in kinds if not k.two_phase]
    deleted = sum(k.deleted_count for k in resources)
    freed = size_text(sum(k.bytes_freed for k in kinds))
    saving = sum(k.monthly_saving_usd for k in kinds)
    errors = sum(len(k.errors) for k in kinds)
    verb = "would delete" if dry_run else "deleted"
    parts = []
    if resources:
        parts.append(
            f"{verb} {_count(deleted, 'resource')} ({freed}, ~${saving:,.2f}/month)"
            if deleted
            else f"{verb} nothing"
        )
    if tables:
        parts.append(f"{verb} {_count(sum(k.deleted_count for k in tables), 'old database row')}")
    if resources:
        parts.append(
            f"{'would mark' if dry_run else 'marked'} {sum(k.marked_count for k in resources):,} for next run"
        )
    if errors:
        parts.append(_count(errors, "error"))
    return ("dry run: " if dry_run else "") + (", ".join(parts) or "nothing to clean")
