"""Migrations on SQLite and PostgreSQL: they apply, and they describe exactly the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.store import migrate
from bot.store.db import Database
from bot.store.models import Base


def test_the_schema_is_current_and_matches_the_models(db: Database) -> None:
    assert migrate.is_current(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ; add an Alembic revision: {diff}"


def test_upgrading_twice_is_harmless(db: Database) -> None:
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision(db)
