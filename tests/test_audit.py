"""The audit trail on SQLite and PostgreSQL: chained, tamper-evident, exportable."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from bot.store.audit import AuditLog
from bot.store.db import Database

T0 = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def _fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.append(at=T0 + timedelta(seconds=i), actor=f"U0USER{i}", source="test", verb="status",
                   env="prod" if i % 2 else "dev", args={"env": "prod", "i": i}, rule="matrix:status/prod:oncall",
                   outcome="allowed", request_id=f"req{i}")


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
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET outcome = 'denied' WHERE seq = 3"))
    report = log.verify()
    assert not report.ok
    assert any("event 3" in p and "changed" in p for p in report.problems)


def test_a_deleted_row_in_the_middle_is_detected(db: Database) -> None:
    log = AuditLog(db)
    _fill(log)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    report = log.verify()
    assert not report.ok
    assert any("event 2 is missing" in p for p in report.problems)


def test_deleting_the_newest_rows_is_detected(db: Database) -> None:
    log = AuditLog(db)
    _fill(log)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 4"))
    report = log.verify()
    assert not report.ok
    assert any("ends at event 3 but 5 were written" in p for p in report.problems)


def test_a_rehashed_forgery_is_still_detected(db: Database) -> None:
    """Editing a row and recomputing its own hash breaks the link to the next row."""
    log = AuditLog(db)
    _fill(log)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET hash = :h WHERE seq = 2"), {"h": "f" * 64})
    assert not log.verify().ok


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
    assert {e.env for e in log.recent(envs=["dev"], include_envless=False)} == {"dev"}
