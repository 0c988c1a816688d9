"""The typed result of an anonymization run: what was masked, how it was verified, how long it took.

It carries counts and names of tables and columns only, never a value from the database, so it is
safe to log and to post to Slack (template ``anonymize_report``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from bot.render import Audience

LeakCheck = Literal["set", "row", "not_null"]


@dataclass(frozen=True)
class TableCount:
    table: str
    rows_before: int | None  # None in --verify-only (nothing to compare against)
    rows_after: int
    masked_columns: int = 0
    seconds: float = 0.0  # the masking UPDATE of this table

    @property
    def ok(self) -> bool:
        return self.rows_before is None or self.rows_before == self.rows_after


@dataclass(frozen=True)
class ColumnLeak:
    """(b) masked values whose keyed hash equals an original's: ``set`` = any original of the same
    key domain (pseudonyms), ``row`` = the same row's original (names, dates, replaced text),
    ``not_null`` = values left in a nulled column."""

    table: str
    column: str
    strategy: str
    check: LeakCheck
    checked: int
    leaks: int


@dataclass(frozen=True)
class ColumnShape:
    """(e) rows of a masked column holding a value of another shape than its strategy writes (the
    constant, NULL, a pseudonym's form, a fictional number, a listed name): provable without the
    originals, so also in --verify-only. ``rows`` is None where the shape proves nothing (date_shift)."""

    table: str
    column: str
    strategy: str
    expected: str  # from the rules, never from the database
    rows: int | None
    unmasked: int = 0

    @property
    def where(self) -> str:
        return f"{self.table}.{self.column}"

    @property
    def checkable(self) -> bool:
        return self.rows is not None

    def describe(self) -> str:
        if self.rows is None:
            return f"{self.where}: {self.strategy}, not checkable without the originals"
        return (
            f"{self.where}: {self.unmasked:,} of {self.rows:,} rows look unmasked (expected {self.expected})"
        )


@dataclass(frozen=True)
class PatternHits:
    """(c) rows of a free-text column still matching a PHI pattern."""

    table: str
    column: str
    email: int = 0
    phone: int = 0
    ssn: int = 0
    date: int = 0

    @property
    def total(self) -> int:
        return self.email + self.phone + self.ssn + self.date

    def describe(self) -> str:
        found = [
            f"{n} {k}"
            for k, n in (("email", self.email), ("phone", self.phone), ("SSN", self.ssn), ("date", self.date))
            if n
        ]
        return f"{self.table}.{self.column}: " + ", ".join(found)


@dataclass(frozen=True)
class ForeignKeyCheck:
    """(d) rows whose foreign key points at no row (set-based anti-join)."""

    name: str
    table: str
    columns: tuple[str, ...]
    ref_table: str
    orphans: int


@dataclass(frozen=True)
class AnonymizationReport:
    template: ClassVar[str] = "anonymize_report"
    audience: ClassVar[Audience] = "in_channel"

    database: str  # the database name only: no host, user or password
    verify_only: bool
    coverage_problems: tuple[str, ...] = ()  # (a) and every other reason the plan was refused
    tables: tuple[TableCount, ...] = ()
    leaks: tuple[ColumnLeak, ...] = ()  # empty in --verify-only: needs the originals
    shapes: tuple[ColumnShape, ...] = ()  # every masked column with a shape, checkable or not
    patterns: tuple[PatternHits, ...] = ()  # every scanned column, hits or not
    foreign_keys: tuple[ForeignKeyCheck, ...] = ()
    durations: tuple[tuple[str, float], ...] = ()  # (phase, seconds) in order
    error: str | None = None  # a failure while masking (SQLSTATE and constraint, never a value)

    @property
    def refused(self) -> bool:
        """The plan was refused: nothing was run."""
        return bool(self.coverage_problems)

    @property
    def leak_count(self) -> int:
        return sum(c.leaks for c in self.leaks)

    @property
    def unmasked_count(self) -> int:
        return sum(c.unmasked for c in self.shapes)

    @property
    def pattern_count(self) -> int:
        return sum(p.total for p in self.patterns)

    @property
    def orphan_count(self) -> int:
        return sum(f.orphans for f in self.foreign_keys)

    @property
    def count_mismatches(self) -> tuple[TableCount, ...]:
        return tuple(t for t in self.tables if not t.ok)

    @property
    def ok(self) -> bool:
        return not (
            self.refused
            or self.error
            or self.leak_count
            or self.unmasked_count
            or self.pattern_count
            or self.orphan_count
            or self.count_mismatches
        )

    @property
    def outcome(self) -> Literal["succeeded", "failed", "refused"]:
        return "refused" if self.refused else ("succeeded" if self.ok else "failed")

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.durations)

    @property
    def rows(self) -> int:
        return sum(t.rows_after for t in self.tables)

    @property
    def summary(self) -> str:
        mode = "verification" if self.verify_only else "anonymization"
        if self.refused:
            return (
                f"{mode} of {self.database} refused before anything ran: "
                f"{len(self.coverage_problems)} rules problem(s)"
            )
        if self.error:
            return f"{mode} of {self.database} FAILED: {self.error}"
        leaks = (
            "leaks not checked (verify-only)"
            if self.verify_only
            else f"{self.leak_count} surviving originals"
        )
        verdict = "verified" if self.ok else "NOT VERIFIED"
        return (
            f"{mode} of {self.database} {verdict}: {len(self.tables)} tables, {self.rows} rows; {leaks}, "
            f"{self.unmasked_count} rows looking unmasked, {self.pattern_count} PHI pattern hits, "
            f"{self.orphan_count} FK orphans, "
            f"{len(self.count_mismatches)} count mismatches ({self.seconds:.1f} s)"
        )

    @property
    def leaking_columns(self) -> tuple[ColumnLeak, ...]:
        return tuple(c for c in self.leaks if c.leaks)

    @property
    def unmasked_columns(self) -> tuple[ColumnShape, ...]:
        return tuple(c for c in self.shapes if c.unmasked)

    @property
    def unchecked_shapes(self) -> tuple[ColumnShape, ...]:
        return tuple(c for c in self.shapes if not c.checkable)

    @property
    def pattern_columns(self) -> tuple[PatternHits, ...]:
        return tuple(p for p in self.patterns if p.total)

    @property
    def orphaned_keys(self) -> tuple[ForeignKeyCheck, ...]:
        return tuple(f for f in self.foreign_keys if f.orphans)
