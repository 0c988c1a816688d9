"""Which databases of the restored copy the anonymizer would leave as they are.

The anonymizer masks the one database it connects to. Any other database restored from prod's
snapshot would reach staging unmasked, so the refresh refuses a copy holding one, unless the
operator declared it safe (``extra_databases_safe``). RDS's own ``rdsadmin`` is ignored, and the
``postgres`` database every instance has is accepted as long as it holds no data.
"""

from __future__ import annotations

from typing import Protocol

import psycopg
from psycopg.conninfo import make_conninfo

IGNORED = frozenset({"rdsadmin"})
DEFAULT_DATABASE = "postgres"

_LIST = (
    "SELECT current_database(), ARRAY(SELECT datname::text FROM pg_database WHERE NOT datistemplate "
    "ORDER BY datname)"
)
# Tables (plain, partitioned, foreign), materialized views, or large objects: anything that can hold rows.
_HOLDS_DATA = """
SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'p', 'f', 'm')
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%')
    OR EXISTS (SELECT 1 FROM pg_largeobject_metadata)
"""


class DatabaseGate(Protocol):
    def __call__(self, *, dsn: str, safe: frozenset[str]) -> tuple[str, ...]: ...


def unexpected_databases(*, dsn: str, safe: frozenset[str]) -> tuple[str, ...]:
    """The names of the databases beside the one at ``dsn`` that would not be anonymized and are not
    declared ``safe`` (sorted; empty when the copy may go on). Raises psycopg.Error if the server
    cannot be reached."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(_LIST).fetchone()
    assert row is not None
    current, names = row[0], row[1]
    others = [name for name in names if name != current and name not in IGNORED and name not in safe]
    if DEFAULT_DATABASE in others and not _holds_data(make_conninfo(dsn, dbname=DEFAULT_DATABASE)):
        others.remove(DEFAULT_DATABASE)
    return tuple(others)


def databases_beside(dsn: str) -> tuple[str, ...]:
    """Every other database on ``dsn``'s server (a shared test or demo server)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(_LIST).fetchone()
    assert row is not None
    return tuple(name for name in row[1] if name != row[0])


def _holds_data(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute(_HOLDS_DATA).fetchone()
    except psycopg.Error:
        return True  # cannot look inside it: count it as holding data
    return bool(row and row[0])
