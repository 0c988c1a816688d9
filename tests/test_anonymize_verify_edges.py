"""The anonymizer's verification at its edges, on a real PostgreSQL: a table keyed by two columns is
compared row by row on both, and the leak report names each column's own strategy."""

from __future__ import annotations

import pytest

from jobs.anonymize import anonymize, parse_rules
from jobs.anonymize.sql import connect
from tests.test_anonymize import SALT, MakeDb, make_db, rows  # noqa: F401 - make_db is a fixture

pytestmark = pytest.mark.postgres

RULES = {
    "tables": {
        "notes": {
            "clinic": "keep",
            "seq": "keep",
            "author": {"strategy": "fake_name"},
            "mail": {"strategy": "email"},
            "fax": "null",
        }
    }
}


def _notes(dsn: str, trigger_body: str) -> None:
    """Three notes keyed by (clinic, seq), and a trigger that undoes part of the masking UPDATE."""
    with connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE notes (clinic int, seq int, author text, mail text, fax text, PRIMARY KEY (clinic, seq))"
        )
        conn.execute(
            "INSERT INTO notes VALUES (1, 1, 'Ann Lee', 'ann@clinic.test', '555-0101'), "
            "(1, 2, 'Bob Ray', 'bob@clinic.test', NULL), (2, 1, 'Cy Fox', 'cy@clinic.test', '555-0103')"
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
    assert ("notes", "mail", "email", "set", 3, 0) in report
