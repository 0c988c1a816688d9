"""Anonymization throughput against a plain UPDATE of the same columns (DESIGN §9).

    .venv/bin/python -m bench.anonymize [--patients N] [--seed S] [--repeat R]

Creates its own database on the PostgreSQL server of TEST_DATABASE_URL (else DATABASE_URL), fills
it with the synthetic MenoTime data (N patients, default 1,000,000, plus 9 related rows each), and
times, each on a fresh copy of ``patients`` with all its indexes (in a schema the rules do not
cover) after a CHECKPOINT, ``--repeat`` times in alternating order, median shown:

- plain: one ``UPDATE`` of the copy setting the same 11 columns the rules mask to trivially
  changed values (``text || '~'``, dates + 1 day): the cost of rewriting those rows and indexes;
- anonymize: the engine's own masking ``UPDATE`` of ``patients`` (keyed HMACs, fake names, date
  shifts), by the function ``anonymize()`` calls for each table (``engine.mask_table``).

Both run in one session with the engine's settings. Then a full ``anonymize()`` of the whole
database (all tables: snapshot of the originals' keyed hashes, masking, verification) is timed
too, for scale. The figures are printed, not asserted. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence

import psycopg

from jobs.anonymize import anonymize, create_synthetic, load_rules, plan
from jobs.anonymize.engine import SESSION_SETTINGS, mask_table
from jobs.anonymize.sql import DATE_TYPES, TEXT_TYPES, Keys, ident, libpq_dsn

RATIO_TARGET = 2.0
TABLE = "patients"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    if not url.startswith("postgresql"):
        raise SystemExit(
            "set TEST_DATABASE_URL (or DATABASE_URL) to a PostgreSQL server, e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        )
    return libpq_dsn(url)


def with_database(url: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(url)
    info["dbname"] = name
    return make_conninfo(**info)


def fresh_copy(conn: psycopg.Connection, name: str) -> str:
    """``bench.<name>``: patients with all its indexes, freshly written and analyzed."""
    conn.execute(f"CREATE TABLE bench.{name} (LIKE public.{TABLE} INCLUDING ALL)")
    conn.execute(f"INSERT INTO bench.{name} SELECT * FROM public.{TABLE}")
    conn.execute(f"VACUUM ANALYZE bench.{name}")
    return name


def plain_update_sql(conn: psycopg.Connection, copy: str, columns: Sequence[str]) -> str:
    types = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'bench' AND table_name = %s",
            [copy],
        ).fetchall()
    )
    sets = []
    for column in columns:
        data_type = types[column]
        if data_type in TEXT_TYPES:
            sets.append(f"{ident(column)} = {ident(column)} || '~'")
        elif data_type == "date":
            sets.append(f"{ident(column)} = {ident(column)} + 1")
        elif data_type in DATE_TYPES:
            sets.append(f"{ident(column)} = {ident(column)} + interval '1 day'")
        else:
            sets.append(f"{ident(column)} = NULL")
    return f"UPDATE bench.{copy} SET " + ", ".join(sets)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.anonymize", description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000, help="patients (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="synthetic data seed (default 1)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs of each UPDATE, median shown (default 3)"
    )
    args = parser.parse_args(argv)
    if args.patients < 1 or args.repeat < 1:
        parser.error("--patients and --repeat must be >= 1")
    server = server_url()
    name = f"menotime_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {ident(name)}")
    dsn = with_database(server, name)
    try:
        return run(dsn, args.patients, args.seed, args.repeat)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)")


def run(dsn: str, patients: int, seed: int, repeat: int) -> int:
    rules = load_rules()
    started = time.perf_counter()
    counts = create_synthetic(dsn=dsn, patients=patients, seed=seed)
    generated = time.perf_counter() - started
    print(
        f"synthetic data: {sum(counts.values()):,} rows in {generated:.1f} s "
        f"({', '.join(f'{t} {n:,}' for t, n in counts.items())})",
        file=sys.stderr,
        flush=True,
    )
    table_plan = next(t for t in plan(dsn=dsn, rules=rules).tables if t.table == TABLE)
    columns = [r.column for r in table_plan.masked]
    salt = os.urandom(32)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in SESSION_SETTINGS:
            conn.execute(statement)
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        conn.execute("CREATE SCHEMA bench")
        plain_runs: list[float] = []
        engine_runs: list[float] = []
        params = Keys.from_salt(salt).params
        for i in range(repeat):
            # Alternating which goes first, so neither always runs after the other's WAL.
            for kind in ("plain", "engine") if i % 2 == 0 else ("engine", "plain"):
                copy = fresh_copy(conn, f"{TABLE}_{kind}_{i}")
                conn.execute("CHECKPOINT")
                if kind == "plain":
                    start = time.perf_counter()
                    with conn.transaction():
                        conn.execute(plain_update_sql(conn, copy, columns))
                    plain_runs.append(time.perf_counter() - start)
                else:
                    engine_copy = dataclasses.replace(table_plan, schema="bench", table=copy)
                    engine_runs.append(mask_table(conn, engine_copy, rules, params))
                conn.execute(f"DROP TABLE bench.{copy}")
        conn.execute("DROP SCHEMA bench CASCADE")
        conn.execute("CHECKPOINT")
    plain_seconds, anon_seconds = statistics.median(plain_runs), statistics.median(engine_runs)
    print("running the anonymization of the whole database ...", file=sys.stderr, flush=True)
    report = anonymize(dsn=dsn, rules=rules, salt=salt)

    rows = counts[TABLE]
    header = f"{'target':<14}{'rows':>12}{'columns':>9}{'seconds':>10}{'rows/s':>12}"
    print()
    print(
        f"Anonymization vs plain UPDATE of {TABLE} (PostgreSQL {version}; same columns; median of {repeat} "
        f"runs each, alternating; load average {os.getloadavg()[0]:.1f})"
    )
    print(header)
    print("-" * len(header))
    for label, seconds, runs in (
        ("plain UPDATE", plain_seconds, plain_runs),
        ("anonymize", anon_seconds, engine_runs),
    ):
        print(
            f"{label:<14}{rows:>12,}{len(columns):>9}{seconds:>10.2f}{rows / seconds:>12,.0f}   "
            f"runs: {', '.join(f'{r:.2f}' for r in runs)}"
        )
    ratio = anon_seconds / plain_seconds if plain_seconds > 0 else float("inf")
    print()
    print(
        f"ratio anonymize/plain {ratio:6.2f}    target <= {RATIO_TARGET}    {verdict(ratio <= RATIO_TARGET)}"
    )
    print()
    print(
        f"Whole run of anonymize(), {len(report.tables)} tables, {report.rows:,} rows, {sum(t.masked_columns for t in report.tables)} "
        f"masked columns: {report.seconds:.1f} s"
    )
    print("  " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in report.durations))
    print(
        "  mask per table: "
        + ", ".join(f"{t.table} {t.seconds:.1f} s" for t in report.tables if t.masked_columns)
    )
    print(f"  {report.summary}")
    if not report.ok:
        from bot.render import render_text

        print(render_text(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
