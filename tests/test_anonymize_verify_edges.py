"""The anonymizer's verification at its edges, on a real PostgreSQL: a table keyed by two columns is
compared row by row on both, the leak report names each column's own strategy and counts each
column's own leaks, a table with nothing to compare does not stop the others from being compared,
PHI patterns are counted per column, and a broken two-column foreign key is reported by name."""

from __future__ import annotations

import pytest

from jobs.anonymize import anonymize, parse_rules
from jobs.anonymize.report import ForeignKeyCheck, PatternHits
from jobs.anonymize.sql import connect
from tests.test_anonymize import SALT, MakeDb, make_db, rows  # noqa: F401 - make_db is a fixture

pytestmark = pytest.mark.postgres

RULES = {
    "tables": {
        # Sorted before `notes` and with nothing to compare with its originals (redact is scanned).
        "alerts": {"id": "keep", "body": "redact"},
        "notes": {
            "clinic": "keep",
            "seq": "keep",
            "author": {"strategy": "fake_name"},
            "ward": {"strategy": "replace", "value": "Ward"},
            "mail": {"strategy": "email"},
            "fax": "null",
        },
    }
}


def _notes(dsn: str, trigger_body: str) -> None:
    """Three notes keyed by (clinic, seq), and a trigger that undoes part of the masking UPDATE."""
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE alerts (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO alerts VALUES (1, 'Fridge door left open')")
        conn.execute(
            "CREATE TABLE notes (clinic int, seq int, author text, ward text, mail text, fax text, "
            "PRIMARY KEY (clinic, seq))"
        )
        conn.execute(
            "INSERT INTO notes VALUES (1, 1, 'Ann Lee', 'North', 'ann@clinic.test', '555-0101'), "
            "(1, 2, 'Bob Ray', 'South', 'bob@clinic.test', NULL), "
            "(2, 1, 'Cy Fox', 'East', 'cy@clinic.test', '555-0103')"
        )
        conn.execute(
            "CREATE FUNCTION undo_masking() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {trigger_body} RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER undo_masking BEFORE UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION undo_masking()"
        )


def _report(dsn: str) -> list[tuple[str, str, str, str, int, int]]:
    report = anonymize(dsn=dsn, rules=parse_rules(RULES), salt=SALT)
    return [(c.table, c.column, c.strategy, c.check, c.checked, c.leaks) for c in report.leaks]


def test_a_table_keyed_by_two_columns_verifies_row_by_row(make_db: MakeDb) -> None:
    dsn = make_db()
    _notes(dsn, "")
    assert _report(dsn) == [
        ("notes", "author", "fake_name", "row", 3, 0),
        ("notes", "ward", "replace", "row", 3, 0),
        ("notes", "mail", "email", "set", 3, 0),
        ("notes", "fax", "null", "not_null", 3, 0),
    ]


def test_an_original_left_in_one_row_of_a_two_column_key_is_caught(make_db: MakeDb) -> None:
    dsn = make_db()
    # (1, 2) keeps its author; a join on `clinic` alone would also compare it with (1, 1)'s.
    _notes(dsn, "IF NEW.clinic = 1 AND NEW.seq = 2 THEN NEW.author := OLD.author; END IF;")
    assert rows(dsn, "SELECT author FROM notes WHERE clinic = 1 AND seq = 2") == [("Bob Ray",)]
    report = _report(dsn)
    assert ("notes", "author", "fake_name", "row", 3, 1) in report
    assert ("notes", "ward", "replace", "row", 3, 0) in report
    assert ("notes", "mail", "email", "set", 3, 0) in report


def test_an_original_left_in_a_replaced_column_is_counted_in_that_column_alone(make_db: MakeDb) -> None:
    dsn = make_db()
    # (1, 2) keeps its ward: a replaced value is a leak unless the original already was the constant.
    _notes(dsn, "IF NEW.clinic = 1 AND NEW.seq = 2 THEN NEW.ward := OLD.ward; END IF;")
    assert rows(dsn, "SELECT count(*) FROM notes WHERE ward = 'Ward'") == [(0,)]  # before the run
    report = _report(dsn)
    assert rows(dsn, "SELECT ward FROM notes ORDER BY clinic, seq") == [("Ward",), ("South",), ("Ward",)]
    assert report[:2] == [
        ("notes", "author", "fake_name", "row", 3, 0),
        ("notes", "ward", "replace", "row", 3, 1),
    ]


def test_phi_patterns_are_counted_per_column_and_named_with_their_table(make_db: MakeDb) -> None:
    dsn = make_db()
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE intake (id int PRIMARY KEY, subject text, body text, footer text)")
        conn.execute(
            "INSERT INTO intake VALUES "
            "(1, 'from jane@gmail.com', 'call (415) 555-2671', 'seen 03/15/1968'), "
            "(2, 'no contact', 'or 212-555-0199, SSN 123-45-6789', 'ok')"
        )
    rules = {"tables": {"intake": {"id": "keep", "subject": "keep", "body": "keep", "footer": "keep"}}}

    report = anonymize(dsn=dsn, rules=parse_rules(rules), salt=None, verify_only=True)

    assert report.patterns == (
        PatternHits("intake", "subject", email=1),
        PatternHits("intake", "body", phone=2, ssn=1),
        PatternHits("intake", "footer", date=1),
    )
    assert [p.describe() for p in report.pattern_columns] == [
        "intake.subject: 1 email",
        "intake.body: 2 phone, 1 SSN",
        "intake.footer: 1 date",
    ]
    assert not report.ok and report.pattern_count == 5


def test_a_broken_two_column_foreign_key_is_reported_by_name_with_its_orphans(make_db: MakeDb) -> None:
    dsn = make_db()
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE wards (clinic int, code int, PRIMARY KEY (clinic, code))")
        conn.execute("INSERT INTO wards VALUES (1, 1), (2, 2)")
        conn.execute("CREATE TABLE beds (id int PRIMARY KEY, clinic int, ward int)")
        # (1, 2) and (2, 1) point at no ward, though each column alone matches one; NULL is no reference.
        conn.execute("INSERT INTO beds VALUES (1, 1, 1), (2, 1, 2), (3, 2, 1), (4, 2, 2), (5, NULL, 9)")
        conn.execute(
            "ALTER TABLE beds ADD CONSTRAINT beds_ward_fkey FOREIGN KEY (clinic, ward) "
            "REFERENCES wards (clinic, code) NOT VALID"
        )
    rules = {
        "tables": {
            "wards": {"clinic": "keep", "code": "keep"},
            "beds": {"id": "keep", "clinic": "keep", "ward": "keep"},
        }
    }

    report = anonymize(dsn=dsn, rules=parse_rules(rules), salt=None, verify_only=True)

    assert report.foreign_keys == (ForeignKeyCheck("beds_ward_fkey", "beds", ("clinic", "ward"), "wards", 2),)
    assert not report.ok and report.orphan_count == 2
