"""Alembic, driven from code: `menotime-bot migrate`, start-up, tests and /readyz use it."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from bot.store.db import Database


def _alembic_config(db: Database) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "bot:migrations")
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


# Any constant: replicas starting together take turns instead of racing to create the same tables.
_MIGRATION_LOCK = 0x6D656E6F  # "meno"


def upgrade(db: Database, revision: str = "head") -> None:
    cfg = _alembic_config(db)
    with db.engine.begin() as connection:
        if db.dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def head_revision(db: Database) -> str | None:
    return ScriptDirectory.from_config(_alembic_config(db)).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_current(db: Database) -> bool:
    return current_revision(db) == head_revision(db)
