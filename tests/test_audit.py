"""The audit trail on SQLite and PostgreSQL: chained, tamper-evident, exportable."""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.store.audit import AuditLog
from bot.store.audit.chain import _entry_digest
from bot.store.db import Database

T0 = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def tamper(db: Database, sql: str, **params: object) -> None:
    """What someone with the database owner's rights could do: on PostgreSQL they would first have to
    switch off the append-only trigger, which ordinary writes cannot get past."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        conn.execute(text(sql), params)
        if db.dialect == "postgresql":
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))


def _fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.append(
            at=T0 + timedelta(seconds=i),
            actor=f"U0USER{i}",
            source="test",
            verb="status",
            env="prod" if i % 2 else "dev",
            args={"env": "prod", "i": i},
            rule="matrix:status/prod:oncall",
            outcome="allowed",
            request_id=f"req{i}",
        )


def test_an_intact_trail_verifies(db: Database) -> None:
    log = AuditLog(db)
    _fill(log)
    report = log.verify()
    assert report.ok and report.checked == 5


def test_an_empty_trail_verifies(db: Database) -> None:
    assert AuditLog(db).verify().ok


def test_an_edited_row_is_detected(db: Database) -> None:
    log = AuditLog(db)
    _fill(log)
    tamper(db, "UPDATE audit_events SET outcome = 'denied' WHERE seq = 3")
    report = log.verify()
    assert not report.ok
    assert any("event 3" in p and "changed" in p for p in report.problems)


def test_a_deleted_row_in_the_middle_is_detected(db: Database) -> None:
    log = AuditLog(db)
    _fill(log)
    tamper(db, "DELETE FROM audit_events WHERE seq = 2")
    report = log.verify()
    assert not report.ok
    assert any("event 2 is missing" in p for p in report.problems)


def test_deleting_the_newest_rows_is_detected(db: Database) -> None:
    log = AuditLog(db)
    _fill(log)
    tamper(db, "DELETE FROM audit_events WHERE seq >= 4")
    report = log.verify()
    assert not report.ok
    assert any("ends at event 3 but 5 were written" in p for p in report.problems)


def test_a_rehashed_forgery_is_still_detected(db: Database) -> None:
    """Editing a row and recomputing its own hash breaks the link to the next row."""
    log = AuditLog(db)
    _fill(log)
    tamper(db, "UPDATE audit_events SET hash = :h WHERE seq = 2", h="f" * 64)
    assert not log.verify().ok


CHAIN_KEY = b"k" * 40
LINK_BROKEN = "event {}: does not follow the event before it (a row was deleted or inserted)"


@pytest.mark.parametrize("key", [None, CHAIN_KEY], ids=["unkeyed", "keyed"])
def test_a_forgery_with_a_correctly_recomputed_hash_breaks_the_link_to_the_next_event(
    db: Database, key: bytes | None
) -> None:
    """Event 3's contents are changed and its hash recomputed with the trail's own function (and key,
    for whoever holds it): it verifies on its own, and only event 4's link to it gives it away."""
    log = AuditLog(db, key=key)
    _fill(log)
    [forged] = [e for e in log.entries() if e.request_id == "req2"]
    changed = replace(forged, actor="U0MALLORY", outcome="denied")
    tamper(
        db,
        "UPDATE audit_events SET actor = :actor, outcome = :outcome, hash = :h WHERE seq = :seq",
        actor=changed.actor,
        outcome=changed.outcome,
        h=_entry_digest(changed, key),
        seq=forged.seq,
    )
    assert [e.outcome for e in log.entries() if e.seq == forged.seq] == ["denied"]

    report = log.verify()

    assert not report.ok
    assert report.problems == (LINK_BROKEN.format(forged.seq + 1),)  # its own contents check out


@pytest.mark.parametrize("key", [None, CHAIN_KEY], ids=["unkeyed", "keyed"])
def test_a_middle_event_deleted_and_the_gap_closed_with_recomputed_hashes_is_detected(
    db: Database, key: bytes | None
) -> None:
    """Event 3 deleted, the later events renumbered down and re-chained among themselves with
    recomputed hashes, the head moved: no seq is missing, every row verifies on its own, the head
    matches the last row. Only the new event 3's link (to the deleted event's hash) gives it away."""
    log = AuditLog(db, key=key)
    _fill(log)
    entries = list(log.entries())
    gone, later = entries[2], entries[3:]
    tamper(db, "DELETE FROM audit_events WHERE seq = :seq", seq=gone.seq)
    prev_hash = later[0].prev_hash  # the deleted event's hash: the one link not rewritten
    for entry in later:
        moved = replace(entry, seq=entry.seq - 1, prev_hash=prev_hash)
        prev_hash = _entry_digest(moved, key)
        tamper(
            db,
            "UPDATE audit_events SET seq = :new, prev_hash = :p, hash = :h WHERE seq = :old",
            new=moved.seq,
            p=moved.prev_hash,
            h=prev_hash,
            old=entry.seq,
        )
    last = list(log.entries())[-1]
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_head SET seq = :seq, hash = :h"), {"seq": last.seq, "h": last.hash})
    assert [e.seq for e in log.entries()] == [e.seq for e in entries[:-1]]

    report = log.verify()

    assert not report.ok
    assert report.problems == (LINK_BROKEN.format(gone.seq),)


def test_appends_continue_the_chain_after_reopening(db: Database) -> None:
    _fill(AuditLog(db), 2)
    again = AuditLog(Database(db.url))
    _fill(again, 2)
    assert again.verify().ok and again.verify().checked == 4


def test_export_csv_and_json(db: Database) -> None:
    log = AuditLog(db)
    _fill(log, 3)
    out = io.StringIO()
    assert log.export(out, "csv") == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["seq"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["actor"] == "U0USER0" and json.loads(rows[0]["args"]) == {"env": "prod", "i": 0}
    out = io.StringIO()
    log.export(out, "json")
    events = json.loads(out.getvalue())
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[2]["prev_hash"] == events[1]["hash"]


def test_recent_is_newest_first_and_filters_by_env(db: Database) -> None:
    log = AuditLog(db)
    _fill(log, 6)
    assert [e.seq for e in log.recent(limit=3)] == [6, 5, 4]
    assert {e.env for e in log.recent(envs=["dev"])} == {"dev"}


@pytest.mark.postgres
def test_postgres_refuses_to_change_or_delete_audit_rows(postgres_server: str) -> None:
    from bot.store import migrate
    from tests.conftest import _reset_postgres

    _reset_postgres(postgres_server)
    db = Database(postgres_server)
    migrate.upgrade(db)
    _fill(AuditLog(db), 2)
    for statement in (
        "UPDATE audit_events SET actor = 'U0MALLORY'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    assert AuditLog(db).verify().ok
    db.dispose()


def test_verify_during_appends_never_cries_wolf(db: Database) -> None:
    """A verify running beside a busy bot judges the chain up to the head it saw, not later rows."""
    log = AuditLog(db)
    _fill(log, 3)
    stop = threading.Event()

    def keep_appending() -> None:
        other = AuditLog(Database(db.url))
        while not stop.is_set():
            _fill(other, 1)

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        reports = [AuditLog(Database(db.url)).verify() for _ in range(15)]
    finally:
        stop.set()
        writer.join()
    assert all(r.ok for r in reports), [r.problems for r in reports if not r.ok]


@pytest.mark.postgres
def test_concurrent_appends_from_many_replicas_keep_one_chain(postgres_server: str) -> None:
    """Several replicas append at once, the very first append included: one unbroken chain."""
    from bot.store import migrate
    from tests.conftest import _reset_postgres

    _reset_postgres(postgres_server)
    migrate.upgrade(Database(postgres_server))
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def replica(n: int) -> None:
        log = AuditLog(Database(postgres_server))  # its own engine and pool, like another process
        barrier.wait()
        try:
            for i in range(20):
                log.append(
                    at=T0,
                    actor=f"U0R{n}",
                    source="test",
                    verb="status",
                    env="prod",
                    args={"i": i},
                    rule="r",
                    outcome="allowed",
                )
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = AuditLog(Database(postgres_server)).verify()
    assert report.ok and report.checked == 120
