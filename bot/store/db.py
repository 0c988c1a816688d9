"""The database: engine and sessions for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog
from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.pool import ConnectionPoolEntry

log = structlog.get_logger("menotime.db")

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """How long work that must outlive a database outage keeps trying (the one retry policy).

    Attempts back off exponentially from ``first`` to at most ``longest`` seconds apart, for
    ``within`` seconds of real time in all; the writes that end a piece of work (a rollout's record
    and its change lock) go on for ``final_within``. Only errors a retry can cure are retried."""

    within: float = 120.0
    final_within: float = 1800.0
    first: float = 0.5
    longest: float = 15.0


def transient(exc: BaseException) -> bool:
    """A database error that trying again can cure: the server gone, restarting, refusing
    connections, a connection dropped, a lock timeout or deadlock."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Database:
    def __init__(
        self,
        url: str,
        *,
        retry: Retry | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.retry = retry or Retry()
        self._sleep, self._monotonic = sleep, monotonic
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"future": True}
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

    def retrying(self, work: Callable[[], T], *, what: str, final: bool = False) -> T:
        """``work()`` (a whole unit of work: it opens its own sessions), tried again with backoff
        while the database cannot be reached, for :attr:`retry`'s bound (``final``: the longer one).
        Any other error, or the last transient one, propagates. Inside :meth:`transaction` it runs
        once: a broken transaction cannot be resumed, only its owner can start it again."""
        if self._ambient.get() is not None:
            return work()
        policy = self.retry
        deadline = self._monotonic() + (policy.final_within if final else policy.within)
        delay, attempt = policy.first, 0
        while True:
            try:
                result = work()
            except Exception as exc:
                left = deadline - self._monotonic()
                if not transient(exc) or left <= 0:
                    raise
                attempt += 1
                if attempt == 1:
                    log.warning("database_unavailable_retrying", what=what, error=type(exc).__name__)
                self._sleep(min(delay, left))
                delay = min(delay * 2, policy.longest)
                continue
            if attempt:
                log.info("database_back", what=what, attempts=attempt + 1)
            return result

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


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows an UPDATE or DELETE run by ``Session.execute`` matched.

    SQLAlchemy types ``Session.execute``'s answer as a plain ``Result``; for a DML statement it is a
    ``CursorResult``, the one that carries ``rowcount`` (the cast only tells mypy so)."""
    return cast("CursorResult[*tuple[Any, ...]]", result).rowcount


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
