"""Run the plan: snapshot the originals' keyed hashes, mask table by table (one UPDATE per table, each
in its own transaction), verify, drop the scratch schema. Nothing is computed row by row in Python.

Unique constraints: a non-deferrable unique index is checked row by row during an UPDATE, so an
intermediate state could collide only if a pseudonym equalled another row's not yet masked
original; pseudonyms have their own shape (``p<hex>@example.invalid``, ``cus_<hex>``), so they
cannot. Deferrable constraints are checked at the table's commit. Foreign-key columns are never
rewritten (the plan refuses it), so no constraint needs to be dropped or deferred.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import structlog

from jobs.anonymize import sql, verify
from jobs.anonymize.plan import Plan, TablePlan, build_plan
from jobs.anonymize.report import AnonymizationReport, TableCount
from jobs.anonymize.rules import Rules, RulesError
from jobs.anonymize.sql import DatabaseUnreachable

__all__ = ["DatabaseUnreachable", "anonymize", "mask_table_sql"]

log = structlog.get_logger("menotime.anonymize")
MIN_SALT_BYTES = 16
# Big enough for the verification joins of a few million rows to hash in memory.
SESSION_SETTINGS = ("SET work_mem = '256MB'", "SET statement_timeout = 0", "SET lock_timeout = '30s'")

Progress = Callable[[str], None]


class _Timer:
    def __init__(self) -> None:
        self.phases: list[tuple[str, float]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases.append((name, round(time.perf_counter() - start, 3)))


def anonymize(
    *,
    dsn: str,
    rules: Rules,
    salt: bytes | None,
    verify_only: bool = False,
    on_progress: Progress | None = None,
) -> AnonymizationReport:
    """Anonymize the database at ``dsn`` in place and verify it (or, with ``verify_only``, only run
    the checks that need no originals: coverage, the shape of masked values, PHI patterns, foreign
    keys, row counts).

    Returns the report; ``report.ok`` is the only go/no-go for a swap. A refused plan returns a
    report with ``coverage_problems`` and nothing run; a failure while masking returns one with
    ``error`` (tables before it stay masked: discard the database). Raises DatabaseUnreachable if
    it cannot connect, ValueError for a salt shorter than 16 bytes.
    """
    if not verify_only and (salt is None or len(salt) < MIN_SALT_BYTES):
        raise ValueError(f"the anonymization salt must be at least {MIN_SALT_BYTES} bytes")
    progress = on_progress or (lambda _message: None)
    database = sql.database_name(dsn)
    timer = _Timer()
    with sql.connect(dsn) as conn:
        for statement in SESSION_SETTINGS:
            conn.execute(statement)
        try:
            with timer.phase("plan"):
                the_plan = build_plan(conn, rules)
        except RulesError as exc:
            return AnonymizationReport(
                database=database,
                verify_only=verify_only,
                coverage_problems=exc.problems,
                durations=tuple(timer.phases),
            )
        if verify_only:
            return _checks(
                conn,
                the_plan,
                database=database,
                timer=timer,
                progress=progress,
                verify_only=True,
                before=None,
                params=sql.Keys.from_salt(secrets.token_bytes(32)).params,
            )  # patterns only
        return _run(conn, the_plan, database=database, salt=salt or b"", timer=timer, progress=progress)


def _run(
    conn: psycopg.Connection[Any],
    the_plan: Plan,
    *,
    database: str,
    salt: bytes,
    timer: _Timer,
    progress: Progress,
) -> AnonymizationReport:
    params = sql.Keys.from_salt(salt).params
    scratch = f"anon_scratch_{secrets.token_hex(4)}"
    with timer.phase("count"):
        before = verify.row_counts(conn, the_plan)
    masked_seconds: dict[str, float] = {}
    error: str | None = None
    try:
        verify.create_scratch(conn, scratch)
        progress(f"hashing the originals of {the_plan.masked_columns} columns")
        with timer.phase("snapshot"):
            verify.snapshot(conn, the_plan, scratch, params)
        with timer.phase("mask"):
            for table in the_plan.tables:
                if not table.masked:
                    continue
                progress(f"masking {table.label} ({len(table.masked)} columns)")
                try:
                    masked_seconds[table.label] = mask_table(conn, table, the_plan.rules, params)
                except psycopg.Error as exc:
                    error = _describe(table, exc)
                    log.warning(
                        "anonymize.mask_failed", table=table.label, error=error
                    )  # no values: see _describe
                    break
        if error is not None:
            return AnonymizationReport(
                database=database,
                verify_only=False,
                error=error,
                tables=_counts(the_plan, before, before, masked_seconds),
                durations=tuple(timer.phases),
            )
        with timer.phase("verify leaks"):
            progress("comparing masked values with the originals")
            leaks = verify.leaks(conn, the_plan, scratch, params)
        return _checks(
            conn,
            the_plan,
            database=database,
            timer=timer,
            progress=progress,
            verify_only=False,
            before=before,
            params=params,
            leaks=tuple(leaks),
            masked_seconds=masked_seconds,
        )
    finally:
        verify.drop_scratch(conn, scratch)


def _checks(
    conn: psycopg.Connection[Any],
    the_plan: Plan,
    *,
    database: str,
    timer: _Timer,
    progress: Progress,
    verify_only: bool,
    before: dict[str, int] | None,
    params: dict[str, Any],
    leaks: tuple[Any, ...] = (),
    masked_seconds: dict[str, float] | None = None,
) -> AnonymizationReport:
    progress("checking that masked columns hold only masked values")
    with timer.phase("verify shapes"):
        shapes = verify.shapes(conn, the_plan)
    progress("scanning free text for PHI patterns")
    with timer.phase("verify patterns"):
        patterns = verify.patterns(conn, the_plan, params)
    progress("checking row counts and foreign keys")
    with timer.phase("verify counts and keys"):
        after = verify.row_counts(conn, the_plan)
        orphans = verify.orphans(conn, the_plan)
    return AnonymizationReport(
        database=database,
        verify_only=verify_only,
        tables=_counts(the_plan, before, after, masked_seconds or {}),
        leaks=leaks,
        shapes=tuple(shapes),
        patterns=tuple(patterns),
        foreign_keys=tuple(orphans),
        durations=tuple(timer.phases),
    )


def _counts(
    the_plan: Plan, before: dict[str, int] | None, after: dict[str, int], seconds: dict[str, float]
) -> tuple[TableCount, ...]:
    return tuple(
        TableCount(
            t.label,
            before[t.label] if before is not None else None,
            after[t.label],
            len(t.masked),
            seconds.get(t.label, 0.0),
        )
        for t in the_plan.tables
    )


def mask_table_sql(table: TablePlan, rules: Rules) -> str:
    """The one UPDATE that masks every ruled column of ``table`` (bound parameters: Keys.params).

    A keyed hash that several columns derive from (a patient's id seeds their fake name and the
    shift of every date) is computed once per row, in a self-join on ``ctid``: HMAC is the
    expensive part of masking and PostgreSQL does not share common subexpressions.
    """
    uses = Counter(i for i in map(sql.hash_inputs, table.masked) if i is not None)
    shared_inputs = [i for i, n in uses.items() if n > 1]
    shared = {i: f"anon_s.anon_h{n}" for n, i in enumerate(shared_inputs)}
    sets = [
        f"{sql.ident(r.column)} = "
        + sql.mask_expression(
            r,
            data_type=table.columns[r.column].data_type,
            shared=shared,
            shift_days=rules.shift_days(r) if r.strategy == "date_shift" else 0,
        )
        for r in table.masked
    ]
    statement = f"UPDATE {table.name} SET " + ", ".join(sets)
    if not shared:
        return statement
    hashes = ", ".join(f"{sql.pseudo_hash(*i)} AS anon_h{n}" for n, i in enumerate(shared_inputs))
    return (
        f"{statement} FROM (SELECT ctid AS anon_rid, {hashes} FROM {table.name}) anon_s "
        f"WHERE {table.name}.ctid = anon_s.anon_rid"
    )


def mask_table(
    conn: psycopg.Connection[Any], table: TablePlan, rules: Rules, params: dict[str, Any]
) -> float:
    """Mask one table in its own transaction; the seconds it took."""
    start = time.perf_counter()
    with conn.transaction():
        conn.execute("SET CONSTRAINTS ALL DEFERRED")  # deferrable unique keys: checked once, at commit
        conn.execute(mask_table_sql(table, rules), params)
    return round(time.perf_counter() - start, 3)


def _describe(table: TablePlan, exc: psycopg.Error) -> str:
    """SQLSTATE and constraint only: a PostgreSQL message may quote a row's values (PHI)."""
    diag = exc.diag
    constraint = f", constraint {diag.constraint_name}" if diag.constraint_name else ""
    return f"masking {table.label} failed: SQLSTATE {diag.sqlstate or '?'} ({type(exc).__name__}{constraint})"
