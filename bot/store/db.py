"""The database: engine and sessions for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict = {"future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=5)
        # Statement parameters are user input (and could one day be PHI): never in logs or errors.
        kwargs["hide_parameters"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # pysqlite's own transaction handling defers BEGIN; a writing unit of work takes the write
            # lock at BEGIN instead, so read-then-write sequences (the audit chain head) cannot
            # interleave. Read-only units of work begin deferred and never queue behind writers.
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._ambient: ContextVar[Session | None] = ContextVar(f"menotime_session_{id(self)}", default=None)

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error. ``write=False`` for reads.

        Inside :meth:`transaction`, every session is that one transaction, so several stores'
        writes (an inbox row, an alarm thread, the Slack outbox) commit or roll back together."""
        ambient = self._ambient.get()
        if ambient is not None:
            yield ambient
            return
        with self._sessions() as session, session.begin():
            if not write:
                session.connection(execution_options={_READ_ONLY: True})
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One writing unit of work that the sessions opened inside it (in this thread) join."""
        if self._ambient.get() is not None:
            raise RuntimeError("transactions do not nest")
        with self.session() as session:
            token = self._ambient.set(session)
            try:
                yield session
            finally:
                self._ambient.reset(token)
        for callback in session.info.pop(_AFTER_COMMIT, ()):  # committed: nothing ran on a rollback
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Runs ``callback`` once what this thread has written is committed: at once outside
        :meth:`transaction`, after its commit inside one (and never if it rolls back)."""
        ambient = self._ambient.get()
        if ambient is None:
            callback()
        else:
            ambient.info.setdefault(_AFTER_COMMIT, []).append(callback)

    def ping(self) -> None:
        with self.engine.connect().execution_options(**{_READ_ONLY: True}) as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


_READ_ONLY = "menotime_read_only"
_AFTER_COMMIT = "menotime_after_commit"


def stored_utc(value: datetime) -> datetime:
    """A datetime read back from the store, as aware UTC: SQLite hands back naive datetimes, and
    everything the bot stores is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_begin(conn) -> None:  # noqa: ANN001 - SQLAlchemy Connection
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API connection
    dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
