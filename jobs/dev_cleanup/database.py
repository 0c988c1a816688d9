"""Rows older than dev's retention in the configured dev-database tables.

Plain retention, not two-phase: rows are not resources anyone would want back a week later, so a
real run deletes them, in batches (one short transaction per ``batch_size`` rows, so the table is
never locked for long), and a dry run counts them. Nothing read from the database reaches the
report but table names and counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from jobs.dev_cleanup.model import TOO_NEW, ItemError, Resource, Scope, Survey, Tally
from jobs.dev_cleanup.options import DevDatabase, TableRule

KIND = "db_rows"


def _engine(database: DevDatabase) -> Engine:
    return create_engine(database.dsn.get_secret_value(), poolclass=NullPool, hide_parameters=True)


def _quoted(engine: Engine, name: str) -> str:
    prepare = engine.dialect.identifier_preparer
    return ".".join(prepare.quote(part) for part in name.split("."))


def _utc(conn: Connection) -> None:
    # A `timestamp without time zone` column is compared as UTC, like everything the bot stores.
    conn.execute(text("SET TIME ZONE 'UTC'"))


def _error(table: str, exc: SQLAlchemyError) -> ItemError:
    """The error's class and SQLSTATE only: a driver's message can name the host and user (a
    connection error) or quote row values (a constraint's DETAIL)."""
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None)
    where = f"SQLSTATE {state}" if state else "no SQLSTATE (the database could not be reached?)"
    return ItemError(kind=KIND, resource=table, message=f"{type(orig).__name__}: {where}")


class DatabaseRows:
    kind = KIND
    label = "Dev database rows"
    usd_per_gib_month = 0.0  # RDS storage is allocated, not used: deleting rows saves nothing by itself

    def survey(self, scope: Scope) -> Survey:
        tally = Tally(self.kind)
        database = scope.options.database
        if database is None:
            return tally.survey()
        engine = _engine(database)
        try:
            for rule in database.tables:
                self._count(engine, rule, scope, tally)
        finally:
            engine.dispose()
        return tally.survey()

    def _count(self, engine: Engine, rule: TableRule, scope: Scope, tally: Tally) -> None:
        table, column = _quoted(engine, rule.table), _quoted(engine, rule.column)
        try:
            with engine.connect() as conn:
                _utc(conn)
                total = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                old = int(
                    conn.execute(
                        text(f"SELECT count(*) FROM {table} WHERE {column} < :cutoff"),
                        {"cutoff": scope.cutoff},
                    ).scalar_one()
                )
        except SQLAlchemyError as exc:
            tally.errors.append(_error(rule.table, exc))
            return
        tally.total += total
        if total - old:
            tally.spared[TOO_NEW] += total - old
        if old:
            tally.candidates.append(
                Resource(
                    kind=self.kind,
                    id=rule.table,
                    count=old,
                    label=f"{rule.table}: {old:,} rows older than {scope.cutoff:%Y-%m-%d}",
                    handle={"column": rule.column},
                )
            )

    def delete(self, scope: Scope, resources: Sequence[Resource]) -> tuple[list[Resource], list[ItemError]]:
        database = scope.options.database
        if database is None or not resources:
            return [], []
        engine = _engine(database)
        done: list[Resource] = []
        errors: list[ItemError] = []
        try:
            for res in resources:
                batches: list[int] = []
                try:
                    self._delete_table(engine, res, scope, database.batch_size, batches)
                except SQLAlchemyError as exc:
                    errors.append(_error(res.id, exc))
                if batches:
                    deleted = sum(batches)
                    done.append(
                        replace(
                            res,
                            count=deleted,
                            handle={**res.handle, "batches": tuple(batches)},
                            label=f"{res.id}: {deleted:,} rows in {len(batches)} batch(es)",
                        )
                    )
        finally:
            engine.dispose()
        return done, errors

    @staticmethod
    def _delete_table(
        engine: Engine, res: Resource, scope: Scope, batch_size: int, batches: list[int]
    ) -> None:
        table, column = _quoted(engine, res.id), _quoted(engine, str(res.handle["column"]))
        statement = text(
            f"DELETE FROM {table} WHERE ctid IN "
            f"(SELECT ctid FROM {table} WHERE {column} < :cutoff LIMIT :batch)"
        )
        while True:
            with engine.begin() as conn:
                _utc(conn)
                deleted = conn.execute(statement, {"cutoff": scope.cutoff, "batch": batch_size}).rowcount
            if deleted:
                batches.append(deleted)
            if deleted < batch_size:
                return
