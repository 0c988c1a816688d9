"""Storage: SQLAlchemy 2 models, the engine, Alembic migrations and the audit trail."""
