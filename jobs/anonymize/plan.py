"""The rules checked against the live schema: what will be masked, scanned and verified, or why not.

Every problem is collected (not just the first) and raised together as :class:`RulesError`, one
line per table and column, before anything runs. The schema-coverage gate lives here: a column of
any table, materialized view or foreign table, in any schema but PostgreSQL's own (not only the
rules' ``schemas``), that the rules neither mask nor declare safe (``keep``) refuses the run, so a
column or schema added to production is never copied to staging unreviewed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from jobs.anonymize import sql
from jobs.anonymize.rules import ColumnRule, DateShift, FakeName, Hmac, Rules, RulesError, table_label

# Every table-like relation of every schema but PostgreSQL's own (and our scratch schemas): a table
# in a schema the rules do not mention (an `archive` or `audit` schema restored with the snapshot),
# a materialized view or a foreign table holds data too, so the coverage gate has to see it.
_USER_SCHEMA = r"""
  n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%%'
  AND n.nspname NOT LIKE 'pg\_temp\_%%' AND n.nspname NOT LIKE 'anon\_scratch\_%%'
"""

_COLUMNS = f"""
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, NULL), a.attnotnull,
       CASE WHEN a.atttypmod > 4 AND t.typname IN ('varchar', 'bpchar') THEN a.atttypmod - 4 END,
       a.attgenerated <> '', c.relkind
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p', 'm', 'f') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
  AND (n.nspname = ANY(%(schemas)s) OR ({_USER_SCHEMA}))
ORDER BY n.nspname, c.relname, a.attnum
"""

_KEYS = """
SELECT n.nspname, c.relname, i.indisprimary,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(num, pos)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.num ORDER BY k.pos)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indisunique AND n.nspname = ANY(%(schemas)s)
"""

_FOREIGN_KEYS = """
SELECT con.conname, n.nspname, c.relname,
       array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, pos)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.num ORDER BY k.pos),
       rn.nspname, rc.relname,
       array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, pos)
             JOIN pg_attribute a ON a.attrelid = rc.oid AND a.attnum = k.num ORDER BY k.pos)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype = 'f' AND (n.nspname = ANY(%(schemas)s) OR rn.nspname = ANY(%(schemas)s))
ORDER BY n.nspname, c.relname, con.conname
"""


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    not_null: bool
    max_length: int | None
    generated: bool


@dataclass(frozen=True)
class ForeignKey:
    name: str
    schema: str
    table: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]

    @property
    def label(self) -> str:
        return table_label(self.schema, self.table)

    @property
    def ref_label(self) -> str:
        return table_label(self.ref_schema, self.ref_table)


@dataclass(frozen=True)
class TablePlan:
    schema: str
    table: str
    columns: Mapping[str, Column]
    primary_key: tuple[str, ...]
    masked: tuple[ColumnRule, ...]  # rules other than keep, in file order
    scanned: tuple[str, ...]  # text columns kept or redacted: searched for PHI patterns

    @property
    def label(self) -> str:
        return table_label(self.schema, self.table)

    @property
    def name(self) -> str:
        return sql.qualified(self.schema, self.table)


@dataclass(frozen=True)
class Plan:
    rules: Rules
    tables: tuple[TablePlan, ...]
    foreign_keys: tuple[ForeignKey, ...]

    @property
    def masked_columns(self) -> int:
        return sum(len(t.masked) for t in self.tables)


def plan(*, dsn: str, rules: Rules) -> Plan:
    """Check ``rules`` against the database at ``dsn``. Raises RulesError listing every problem,
    or DatabaseUnreachable. Reads the catalog only."""
    with sql.connect(dsn) as conn:
        return build_plan(conn, rules)


def build_plan(conn: psycopg.Connection[Any], rules: Rules) -> Plan:
    named = sorted({*rules.schemas, *(schema for schema, _ in rules.tables)})
    live: dict[tuple[str, str], dict[str, Column]] = {}
    kinds: dict[tuple[str, str], str] = {}
    for schema, table, name, data_type, not_null, max_length, generated, kind in conn.execute(
        _COLUMNS, {"schemas": named}
    ):
        live.setdefault((schema, table), {})[name] = Column(name, data_type, not_null, max_length, generated)
        kinds[(schema, table)] = kind
    params = {"schemas": sorted({*named, *(schema for schema, _ in live)})}
    primary: dict[tuple[str, str], tuple[str, ...]] = {}
    unique: dict[tuple[str, str], set[str]] = {}
    for schema, table, is_primary, columns in conn.execute(_KEYS, params):
        if is_primary:
            primary[(schema, table)] = tuple(columns)
        unique.setdefault((schema, table), set()).update(columns)
    foreign_keys = tuple(
        ForeignKey(name, s, t, tuple(cols), rs, rt, tuple(rcols))
        for name, s, t, cols, rs, rt, rcols in conn.execute(_FOREIGN_KEYS, params)
    )

    problems: list[str] = []
    for schema, table in rules.tables:
        if (schema, table) not in live:
            problems.append(
                f"{table_label(schema, table)}: table named in the rules does not exist in the database"
            )
    key_columns = {(fk.schema, fk.table, c): fk for fk in foreign_keys for c in fk.columns}
    key_columns |= {(fk.ref_schema, fk.ref_table, c): fk for fk in foreign_keys for c in fk.ref_columns}
    tables: list[TablePlan] = []
    for (schema, table), columns in sorted(live.items()):
        # Every schema is covered, not only those the rules list: an unruled table anywhere refuses the run.
        ruled = rules.tables.get((schema, table), {})
        label = table_label(schema, table)
        kind = kinds[(schema, table)]
        if kind == "f":
            problems.append(
                f"{label}: is a foreign table (its rows live on another server, out of reach of the "
                "anonymizer, and its user mapping may reach production); drop it from the copy's source"
            )
            continue
        for column in ruled:
            if column not in columns:
                problems.append(f"{label}.{column}: column named in the rules does not exist in the table")
        for column in columns:
            if column not in ruled:
                problems.append(
                    f"{label}.{column}: column is not ruled: give it a strategy, or declare it safe "
                    "with `keep`"
                )
        masked = tuple(r for r in ruled.values() if r.masks and r.column in columns)
        if kind == "m" and masked:
            problems.append(
                f"{label}: is a materialized view, which cannot be masked in place; rule its columns "
                "`keep` only if it holds no PHI, or drop it"
            )
            masked = ()
        for rule in masked:
            problems += _column_problems(
                rule,
                columns,
                unique.get((schema, table), set()),
                key_columns,
                primary.get((schema, table), ()),
            )
        row_checked = [r.column for r in masked if sql.CHECK.get(r.strategy) == "row"]
        if row_checked and (schema, table) not in primary:
            problems.append(
                f"{label}: has no primary key, needed to verify {', '.join(row_checked)} row by row"
            )
        scanned = tuple(
            c
            for c, rule in ruled.items()
            if c in columns and rule.strategy in ("keep", "redact") and columns[c].data_type in sql.TEXT_TYPES
        )
        tables.append(TablePlan(schema, table, columns, primary.get((schema, table), ()), masked, scanned))
    if problems:
        raise RulesError(problems, source=rules.source)
    return Plan(rules=rules, tables=tuple(tables), foreign_keys=foreign_keys)


def _column_problems(
    rule: ColumnRule,
    columns: Mapping[str, Column],
    unique: set[str],
    key_columns: Mapping[tuple[str, str, str], ForeignKey],
    primary_key: tuple[str, ...] = (),
) -> list[str]:
    column = columns[rule.column]
    where, strategy = rule.where, rule.strategy
    problems: list[str] = []
    if rule.column in primary_key:
        # The leak check matches each masked row to its original by primary key (and the scratch schema
        # stores the key as it is): a masked key would match nothing and store PHI in the scratch schema.
        problems.append(
            f"{where}: is part of the primary key, by which verification matches rows to their "
            "originals; keys must be `keep` (pseudonymize an external id that is not the key)"
        )
    wants_text = strategy not in ("null", "date_shift")
    if wants_text and column.data_type not in sql.TEXT_TYPES:
        problems.append(f"{where}: {strategy} needs a text column, this one is {column.data_type}")
    if strategy == "date_shift" and column.data_type not in sql.DATE_TYPES:
        problems.append(
            f"{where}: date_shift needs a date or timestamp column, this one is {column.data_type}"
        )
    if strategy == "null" and column.not_null:
        problems.append(f"{where}: null on a NOT NULL column; use replace or hmac")
    if column.generated:
        problems.append(
            f"{where}: is a generated column and cannot be written; declare it `keep` and rule its inputs"
        )
    if rule.column in unique and strategy not in sql.UNIQUE_SAFE:
        problems.append(f"{where}: has a unique constraint, which {strategy} cannot keep; use hmac or email")
    fk = key_columns.get((rule.schema, rule.table, rule.column))
    if fk is not None:
        problems.append(
            f"{where}: is a key of foreign key {fk.name} ({fk.label} -> {fk.ref_label}); keys must "
            "be `keep` (surrogate ids are not PHI; pseudonymize external ids that are not keys)"
        )
    key = rule.options.key if isinstance(rule.options, DateShift | FakeName) else None
    if key is not None and key not in columns:
        problems.append(
            f"{where}: key column `{key}` does not exist in {table_label(rule.schema, rule.table)}"
        )
    if isinstance(rule.options, Hmac) and rule.options.alphabet == "digits" and rule.options.length > 18:
        problems.append(f"{where}: hmac with digits gives at most 18 digits")
    longest = sql.max_output_length(rule)
    if longest is not None and column.max_length is not None and longest > column.max_length:
        problems.append(
            f"{where}: {column.data_type}({column.max_length}) is too short for {strategy} values of "
            f"{longest} characters"
        )
    return problems
