"""`anonymize --verify-only` proves what it can without the originals: every masked column holds only
values of the shape its strategy writes. A raw copy fails naming each column and how many rows look
unmasked; the same copy after `anonymize` passes; date_shift is reported as not checkable."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from handlers.cli import cli
from jobs.anonymize import anonymize, load_rules, parse_rules
from jobs.anonymize.rules import STRATEGIES, _Options
from jobs.anonymize.sql import connect
from tests.test_anonymize import SALT, MakeDb, make_db, rows  # noqa: F401 - the fixture

pytestmark = pytest.mark.postgres

DATE_SHIFTED = (
    "appointments.starts_at",
    "messages.sent_at",
    "patients.dob",
    "patients.created_at",
    "payments.paid_at",
    "prescriptions.prescribed_on",
    "symptom_logs.logged_at",
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def raw_copy(runner: CliRunner, make_db: MakeDb) -> str:
    """A synthetic MenoTime database, never anonymized, whose free text holds no PHI pattern: before
    the shape check, `--verify-only` passed it (exit 0) although every patient's email, phone and
    address was there in clear."""
    dsn = make_db()
    result = runner.invoke(cli, ["synthetic-db", "--dsn", dsn, "--patients", "120", "--seed", "5"])
    assert result.exit_code == 0, result.output
    with connect(dsn) as conn:
        conn.execute("UPDATE symptom_logs SET notes = 'Feeling better this week.'")
        conn.execute("UPDATE appointments SET reason = 'Annual visit'")
    return dsn


def _unmasked_lines(output: str) -> dict[str, str]:
    """``table.column`` -> its line of the (e) section."""
    found = re.findall(r"^  (\S+): (.* rows look unmasked \(expected .*\))$", output, re.MULTILINE)
    return dict(found)


def test_verify_only_fails_a_raw_copy_naming_each_column_and_its_count(
    runner: CliRunner, raw_copy: str
) -> None:
    result = runner.invoke(cli, ["anonymize", "--dsn", raw_copy, "--verify-only"])

    assert result.exit_code == 1, result.output
    assert (
        "NOT VERIFIED" in result.stdout and "0 PHI pattern hits" in result.stdout
    )  # the shapes alone fail it
    unmasked = _unmasked_lines(result.stdout)
    assert unmasked["patients.email"] == "120 of 120 rows look unmasked (expected p<16 hex>@example.invalid)"
    assert unmasked["patients.mrn"] == "120 of 120 rows look unmasked (expected MRN-<16 hex>)"
    assert unmasked["patients.city"] == "120 of 120 rows look unmasked (expected the constant “Springfield”)"
    assert unmasked["payments.card_last4"] == "120 of 120 rows look unmasked (expected NULL)"
    assert unmasked["messages.sender_email"].startswith("240 of 240 rows")
    phones = rows(raw_copy, "SELECT count(phone) FROM patients")[0][0]
    assert 0 < phones < 120 and unmasked["patients.phone"].startswith(
        f"{phones} of 120 rows"
    )  # NULL stays NULL
    # The synthetic copy's NPIs (10 digits), customer ids (cus_ + 14 hex) and names (drawn from the
    # fake-name lists) already have their pseudonyms' shape: no shape can tell those apart.
    assert set(unmasked) == {
        "messages.sender_email",
        "messages.recipient_email",
        "messages.body",
        "patients.mrn",
        "patients.email",
        "patients.phone",
        "patients.address_line",
        "patients.city",
        "patients.postal_code",
        "payments.card_last4",
        "providers.email",
    }
    total = sum(int(line.split(" of ")[0].replace(",", "")) for line in unmasked.values())
    assert f"{total} rows looking unmasked" in result.stdout.splitlines()[0]


def test_the_same_copy_passes_after_anonymize_and_date_shift_is_not_checkable(
    runner: CliRunner, raw_copy: str
) -> None:
    assert runner.invoke(cli, ["anonymize", "--dsn", raw_copy]).exit_code == 0

    result = runner.invoke(cli, ["anonymize", "--dsn", raw_copy, "--verify-only"])

    assert result.exit_code == 0, result.output
    assert "verified" in result.stdout and "0 rows looking unmasked" in result.stdout
    assert (
        "(e) shape of masked values (17 columns checked, no originals needed): 0 rows look unmasked"
        in result.stdout
    )
    assert _unmasked_lines(result.stdout) == {}
    [unchecked] = [
        line for line in result.stdout.splitlines() if "not checkable without the originals (" in line
    ]
    assert "date_shift" in unchecked and "hmac" in unchecked
    assert all(column in unchecked for column in (*DATE_SHIFTED, "providers.npi"))


def test_one_value_put_back_after_anonymization_is_found(raw_copy: str) -> None:
    assert anonymize(dsn=raw_copy, rules=load_rules(), salt=SALT).ok
    with connect(raw_copy) as conn:
        conn.execute("UPDATE patients SET email = 'jane.doe@gmail.com' WHERE id = 7")
        conn.execute("UPDATE patients SET phone = '(415) 555-2671' WHERE id = 8")
        conn.execute("UPDATE patients SET first_name = 'Jeanette' WHERE id = 9")

    report = anonymize(dsn=raw_copy, rules=load_rules(), salt=None, verify_only=True)

    assert not report.ok and report.unmasked_count == 3
    assert {c.where: (c.unmasked, c.rows) for c in report.unmasked_columns} == {
        "patients.email": (1, 120),
        "patients.phone": (1, 120),
        "patients.first_name": (1, 120),
    }
    assert {c.where for c in report.unchecked_shapes} == {*DATE_SHIFTED, "providers.npi"}
    assert "jane.doe" not in report.summary  # counts and names, never a value


# ------------------------------------------------------------------------------------------
# One shape per strategy, declared next to it


PEOPLE = """
CREATE TABLE people (id int PRIMARY KEY, full_name text, first text, last text, mrn text, npi text, email text,
                     phone text, addr text, secret text, born date);
INSERT INTO people
SELECT g, 'Zed Quux' || g, 'Zed', 'Quux', 'MRN' || g, (10000 + g)::text, 'zed' || g || '@gmail.com',
       '(415) 555-01' || lpad(g::text, 2, '0'), g || ' Main St', 'pin ' || g, date '1970-01-01' + g
FROM generate_series(1, 40) g;
INSERT INTO people (id) VALUES (41);
"""
EVERY_STRATEGY = {
    "tables": {
        "people": {
            "id": "keep",
            "full_name": "fake_name",
            "first": {"strategy": "fake_name", "part": "first", "key": "id"},
            "last": {"strategy": "fake_name", "part": "last", "key": "id"},
            "mrn": {"strategy": "hmac", "prefix": "M.R+N(", "length": 9},  # odd length, regex characters
            "npi": {"strategy": "hmac", "alphabet": "digits", "length": 10},
            "email": {"strategy": "email", "length": 12, "email_domain": "mail.example.invalid"},
            "phone": "phone",
            "addr": {"strategy": "replace", "value": "O'Brien's 100% a\\b"},
            "secret": "null",
            "born": {"strategy": "date_shift", "key": "id"},
        }
    }
}


def test_every_strategy_writes_exactly_the_shape_it_declares(make_db: MakeDb) -> None:
    dsn = make_db()
    with connect(dsn) as conn:
        conn.execute(PEOPLE)
    rules = parse_rules(EVERY_STRATEGY)

    raw = anonymize(dsn=dsn, rules=rules, salt=None, verify_only=True)
    assert {c.column: c.unmasked for c in raw.shapes if c.checkable} == {
        "full_name": 40,
        "first": 40,
        "last": 40,
        "mrn": 40,
        "email": 40,
        "phone": 40,
        "addr": 40,
        "secret": 40,
    }
    # Bare digits look like the raw identifiers they replace: said to be unprovable, not passed.
    assert [c.column for c in raw.unchecked_shapes] == ["npi", "born"]

    masked = anonymize(dsn=dsn, rules=rules, salt=SALT)
    assert masked.ok, [c.describe() for c in masked.unmasked_columns]
    assert len(masked.shapes) == 10 and masked.unmasked_count == 0
    assert anonymize(dsn=dsn, rules=rules, salt=None, verify_only=True).ok
    assert rows(dsn, "SELECT count(*) FROM people WHERE addr = %s", ["O'Brien's 100% a\\b"]) == [(40,)]
    assert rows(dsn, "SELECT count(*) FROM people WHERE mrn LIKE 'M.R+N(%%' AND length(mrn) = 15") == [(40,)]


def test_every_strategy_declares_its_shape() -> None:
    required = {"date_shift": {"key": "id"}, "replace": {"value": "x"}}
    shapes = {
        name: model.model_validate(required.get(name, {})).shape() for name, model in STRATEGIES.items()
    }
    assert {n for n, s in shapes.items() if s is None} == {"keep", "redact"}  # unmasked / the pattern scan's
    assert {n for n, s in shapes.items() if s is not None and not s.checkable} == {"date_shift"}

    with pytest.raises(TypeError, match="must define shape"):

        class Scramble(_Options):  # a new strategy without a shape cannot even be declared
            seed: int = 0
