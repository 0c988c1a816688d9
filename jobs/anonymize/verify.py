"""Verification, all of it set-based SQL: originals' keyed hashes (b), PHI patterns (c), counts and
foreign keys (d), the shape of masked values (e). Coverage (a) is the plan's gate.

Before masking, :func:`snapshot` stores in a scratch schema, per table, the primary key and the
keyed hash (verification key, not the pseudonym key) of every checked column's original value;
after masking, :func:`leaks` joins the masked values' hashes against them. Plain values never
leave the table they are in and the scratch schema is dropped by the caller, also on failure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import psycopg

from jobs.anonymize import sql
from jobs.anonymize.plan import Plan, TablePlan
from jobs.anonymize.report import ColumnLeak, ColumnShape, ForeignKeyCheck, PatternHits
from jobs.anonymize.rules import ColumnRule, Replace

PATTERNS = ("email", "phone", "ssn", "date")


def _checked(table: TablePlan) -> list[ColumnRule]:
    """Masked columns whose originals are hashed (null needs none: the check is `IS NOT NULL`)."""
    return [r for r in table.masked if sql.CHECK.get(r.strategy) in ("row", "set")]


def _scratch_table(scratch: str, table: TablePlan) -> str:
    return sql.qualified(scratch, f"{table.schema}__{table.table}")


def _hash_column(rule: ColumnRule) -> str:
    return sql.ident(f"h__{rule.column}")


# Passed to a query that has no parameters but names tables or columns: psycopg reads `%%` as `%`
# only in a query given parameters, and sql.ident() doubles every `%` of a name (a table named
# `notes 100%` was not found, and the run stopped).
_NO_PARAMETERS: dict[str, Any] = {}


def create_scratch(conn: psycopg.Connection[Any], scratch: str) -> None:
    """A fresh scratch schema, after dropping any a crashed run left behind (keyed hashes only)."""
    stale = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'anon\\_scratch\\_%'"
    ).fetchall()
    for (name,) in stale:
        drop_scratch(conn, name)
    conn.execute(f"CREATE SCHEMA {sql.ident(scratch)}")


def drop_scratch(conn: psycopg.Connection[Any], scratch: str) -> None:
    conn.execute(f"DROP SCHEMA IF EXISTS {sql.ident(scratch)} CASCADE")


def snapshot(conn: psycopg.Connection[Any], plan: Plan, scratch: str, params: dict[str, Any]) -> None:
    """Keyed hashes of the original values of every checked column, one scratch table per table."""
    for table in plan.tables:
        rules = _checked(table)
        if not rules:
            continue
        keys = [sql.ident(c) for c in table.primary_key]
        hashes = [f"{sql.verify_hash(sql.ident(r.column))} AS {_hash_column(r)}" for r in rules]
        conn.execute(
            f"CREATE UNLOGGED TABLE {_scratch_table(scratch, table)} AS "
            f"SELECT {', '.join(keys + hashes)} FROM {table.name}",
            params,
        )


def leaks(
    conn: psycopg.Connection[Any], plan: Plan, scratch: str, params: dict[str, Any]
) -> list[ColumnLeak]:
    """(b) per masked column: masked values whose keyed hash equals an original's."""
    by_domain: dict[str, list[str]] = defaultdict(list)  # pseudonym domain -> scratch hash columns
    for table in plan.tables:
        for rule in _checked(table):
            if sql.CHECK[rule.strategy] == "set":
                by_domain[rule.options.domain].append(  # type: ignore[attr-defined]
                    f"SELECT {_hash_column(rule)} AS h FROM {_scratch_table(scratch, table)}"
                )
    found: list[ColumnLeak] = []
    for table in plan.tables:
        found += _row_leaks(conn, table, scratch, params)
        for rule in table.masked:
            col = sql.ident(rule.column)
            if rule.strategy == "null":
                checked, leaked = conn.execute(  # type: ignore[misc]
                    f"SELECT count(*), count({col}) FROM {table.name}", _NO_PARAMETERS
                ).fetchone()
            elif sql.CHECK.get(rule.strategy) == "set":
                originals = " UNION ALL ".join(by_domain[rule.options.domain])  # type: ignore[attr-defined]
                # In WHERE (not FILTER) so the planner makes it a hash semi-join, not a per-row subplan.
                checked, leaked = conn.execute(
                    f"SELECT (SELECT count({col}) FROM {table.name}), (SELECT count(*) FROM {table.name} "
                    f"WHERE {sql.verify_hash(col)} IN ({originals}))",
                    params,
                ).fetchone()  # type: ignore[misc]
            else:
                continue
            found.append(
                ColumnLeak(table.label, rule.column, rule.strategy, sql.CHECK[rule.strategy], checked, leaked)
            )
    order = {(t.label, r.column): i for i, (t, r) in enumerate((t, r) for t in plan.tables for r in t.masked)}
    return sorted(found, key=lambda c: order[(c.table, c.column)])


def _row_leaks(
    conn: psycopg.Connection[Any], table: TablePlan, scratch: str, params: dict[str, Any]
) -> list[ColumnLeak]:
    rules = [r for r in _checked(table) if sql.CHECK[r.strategy] == "row"]
    if not rules:
        return []
    join = " AND ".join(f"t.{sql.ident(c)} = s.{sql.ident(c)}" for c in table.primary_key)
    # A LEFT JOIN: a row that cannot be matched to its original (its key changed, or it was inserted
    # while masking) cannot be shown to differ from it, so it counts as a leak, never as not checked.
    unmatched = f"s.{sql.ident(table.primary_key[0])} IS NULL"
    counts = []
    for rule in rules:
        col = f"t.{sql.ident(rule.column)}"
        leaked = f"{col} IS NOT NULL AND ({unmatched} OR {sql.verify_hash(col)} = s.{_hash_column(rule)})"
        if isinstance(rule.options, Replace):  # an original equal to the constant reveals nothing
            leaked += f" AND {col} <> {sql.literal(rule.options.value)}"
        counts += [f"count({col})", f"count(*) FILTER (WHERE {leaked})"]
    row = conn.execute(
        f"SELECT {', '.join(counts)} FROM {table.name} t "
        f"LEFT JOIN {_scratch_table(scratch, table)} s ON {join}",
        params,
    ).fetchone()
    assert row is not None
    return [
        ColumnLeak(table.label, r.column, r.strategy, "row", row[2 * i], row[2 * i + 1])
        for i, r in enumerate(rules)
    ]


def shapes(conn: psycopg.Connection[Any], plan: Plan) -> list[ColumnShape]:
    """(e) per masked column: rows whose value is not of the shape its strategy writes (one scan per
    table). Needs no originals, so it also proves that a copy given to --verify-only was masked at all."""
    found: list[ColumnShape] = []
    for table in plan.tables:
        ruled = [(rule, shape) for rule in table.masked if (shape := rule.options.shape()) is not None]
        counts: list[str] = []
        params: dict[str, Any] = {}
        for i, (rule, shape) in enumerate(ruled):
            if shape.checkable:
                condition, param = sql.unmasked_expression(sql.ident(rule.column), shape, f"shape_{i}")
                counts.append(f"count(*) FILTER (WHERE {condition})")
                if param is not None:
                    params[f"shape_{i}"] = param
        rows: int | None = None
        unmasked: Iterator[int] = iter(())
        if counts:
            row = conn.execute(f"SELECT count(*), {', '.join(counts)} FROM {table.name}", params).fetchone()
            assert row is not None
            rows, unmasked = row[0], iter(row[1:])
        found += [
            ColumnShape(table.label, rule.column, rule.strategy, shape.expected, rows, next(unmasked))
            if shape.checkable
            else ColumnShape(table.label, rule.column, rule.strategy, shape.expected, None)
            for rule, shape in ruled
        ]
    return found


def patterns(conn: psycopg.Connection[Any], plan: Plan, params: dict[str, Any]) -> list[PatternHits]:
    """(c) per kept or redacted text column: rows matching each PHI pattern (one scan per table)."""
    found: list[PatternHits] = []
    for table in plan.tables:
        if not table.scanned:
            continue
        counts = [
            f"count(*) FILTER (WHERE {sql.scan_expression(sql.ident(c), p)})"
            for c in table.scanned
            for p in PATTERNS
        ]
        row = conn.execute(f"SELECT {', '.join(counts)} FROM {table.name}", params).fetchone()
        assert row is not None
        for i, column in enumerate(table.scanned):
            found.append(
                PatternHits(table.label, column, **dict(zip(PATTERNS, row[4 * i : 4 * i + 4], strict=True)))
            )
    return found


def orphans(conn: psycopg.Connection[Any], plan: Plan) -> list[ForeignKeyCheck]:
    """(d) per foreign key: referencing rows whose target row is missing (anti-join)."""
    found: list[ForeignKeyCheck] = []
    for fk in plan.foreign_keys:
        present = " AND ".join(f"c.{sql.ident(c)} IS NOT NULL" for c in fk.columns)
        match = " AND ".join(
            f"p.{sql.ident(r)} = c.{sql.ident(c)}" for c, r in zip(fk.columns, fk.ref_columns, strict=True)
        )
        row = conn.execute(
            f"SELECT count(*) FROM {sql.qualified(fk.schema, fk.table)} c WHERE {present} AND NOT "
            f"EXISTS (SELECT 1 FROM {sql.qualified(fk.ref_schema, fk.ref_table)} p WHERE {match})",
            _NO_PARAMETERS,
        ).fetchone()
        assert row is not None
        found.append(ForeignKeyCheck(fk.name, fk.label, fk.columns, fk.ref_label, row[0]))
    return found


def row_counts(conn: psycopg.Connection[Any], plan: Plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in plan.tables:
        row = conn.execute(f"SELECT count(*) FROM {table.name}", _NO_PARAMETERS).fetchone()
        assert row is not None
        counts[table.label] = row[0]
    return counts
