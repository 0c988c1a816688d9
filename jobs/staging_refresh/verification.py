"""The anonymize step the refresh runs on its copy, and the verification it answers with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Verification:
    ok: bool
    summary: str  # the anonymizer's own summary: counts and checks, never data


class AnonymizeStep(Protocol):
    def __call__(
        self, *, dsn: str, rules_path: str | None, salt: bytes, on_progress: Callable[[str], None]
    ) -> Verification: ...


def anonymize_with_engine(
    *,
    dsn: str,
    rules_path: str | None,
    salt: bytes,
    on_progress: Callable[[str], None] = lambda _message: None,
) -> Verification:
    """The real step: ``jobs.anonymize`` masks the copy and verifies it before any swap (no surviving
    original, then every masked value of its strategy's shape, PHI patterns, keys, counts). It calls
    ``on_progress`` between its phases and tables (the refresh renews its lock there)."""
    from jobs.anonymize import DatabaseUnreachable, anonymize, load_rules

    try:
        report = anonymize(dsn=dsn, rules=load_rules(rules_path), salt=salt, on_progress=on_progress)
    except DatabaseUnreachable:
        return Verification(ok=False, summary="the restored copy's database could not be reached")
    summary = str(report.summary)
    if report.coverage_problems:  # table and column names: what the operator has to rule
        summary += ": " + "; ".join(report.coverage_problems[:5])
    elif report.unmasked_columns:  # after the leak check, the shape check: names and counts, never values
        summary += ": " + "; ".join(c.describe() for c in report.unmasked_columns[:5])
    return Verification(ok=bool(report.ok), summary=summary)
