"""The anonymization engine on a real PostgreSQL: the synthetic MenoTime database goes in, no PHI
comes out, joins/keys/counts survive, and bad rules or an unruled column stop it before it runs."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from jobs.anonymize import (
    AnonymizationReport,
    RulesError,
    anonymize,
    create_synthetic,
    load_rules,
    parse_rules,
    plan,
)
from jobs.anonymize.sql import Keys, connect, libpq_dsn

pytestmark = pytest.mark.postgres

SALT = b"test-salt-0123456789abcdef"
PATIENTS = 300
MakeDb = Callable[[], str]


@pytest.fixture
def make_db(postgres_server: str) -> Iterator[MakeDb]:
    """Empty databases of its own on the test server, dropped afterwards."""
    created: list[str] = []

    def make() -> str:
        name = f"anon_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(libpq_dsn(postgres_server), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(postgres_server).set(database=name).render_as_string(hide_password=False)

    yield make
    with psycopg.connect(libpq_dsn(postgres_server), autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def synthetic(make_db: MakeDb) -> str:
    dsn = make_db()
    create_synthetic(dsn=dsn, patients=PATIENTS, seed=7)
    return dsn


def rows(dsn: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def checksum(dsn: str) -> str:
    """One digest of every row of every table: equal means untouched."""
    tables = [
        t for (t,) in rows(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    ]
    parts = [
        rows(dsn, f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{t}\" t")[0][0]
        for t in tables
    ]
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def whole_database_text(dsn: str) -> str:
    tables = [t for (t,) in rows(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    return "\n".join(r[0] for t in tables for r in rows(dsn, f'SELECT t::text FROM "{t}" t'))


# ------------------------------------------------------------------------------------------
# The synthetic database


def test_synthetic_database_is_deterministic_by_seed(make_db: MakeDb) -> None:
    first, again, other = make_db(), make_db(), make_db()
    counts = create_synthetic(dsn=first, patients=50, seed=3)
    assert create_synthetic(dsn=again, patients=50, seed=3) == counts
    create_synthetic(dsn=other, patients=50, seed=4)
    assert counts == {
        "providers": 10,
        "patients": 50,
        "appointments": 100,
        "symptom_logs": 150,
        "messages": 100,
        "prescriptions": 50,
        "payments": 50,
    }
    assert checksum(first) == checksum(again)
    assert checksum(first) != checksum(other)


def test_synthetic_database_holds_plausible_phi(synthetic: str) -> None:
    email, phone, customer = rows(
        synthetic,
        "SELECT email, phone, processor_customer_id FROM patients "
        "WHERE phone IS NOT NULL ORDER BY id LIMIT 1",
    )[0]
    assert "@" in email and phone.startswith("(") and customer.startswith("cus_")
    notes = " ".join(n for (n,) in rows(synthetic, "SELECT notes FROM symptom_logs"))
    assert "@" in notes and "SSN" in notes and "DOB" in notes
    report = anonymize(dsn=synthetic, rules=load_rules(), salt=None, verify_only=True)
    hits = {p.column: p for p in report.pattern_columns}
    assert hits["notes"].email and hits["notes"].phone and hits["notes"].ssn and hits["notes"].date
    assert not report.ok and report.verify_only and report.leaks == ()


def test_refuses_to_fill_a_database_that_has_the_tables(synthetic: str) -> None:
    with pytest.raises(ValueError, match="already has MenoTime tables"):
        create_synthetic(dsn=synthetic, patients=5, seed=1)


# ------------------------------------------------------------------------------------------
# Anonymization


def _originals(dsn: str) -> dict[str, Any]:
    return {
        "patients": {
            r[0]: r
            for r in rows(
                dsn,
                "SELECT id, mrn, first_name, last_name, dob, email, phone, "
                "address_line, processor_customer_id, created_at FROM patients",
            )
        },
        "providers": {
            r[0]: r for r in rows(dsn, "SELECT id, npi, first_name, last_name, email FROM providers")
        },
        "notes": [n for (n,) in rows(dsn, "SELECT notes FROM symptom_logs")],
        "appointments": dict(rows(dsn, "SELECT id, starts_at FROM appointments")),
        "counts": {
            t: rows(dsn, f"SELECT count(*) FROM {t}")[0][0]
            for t in (
                "patients",
                "providers",
                "appointments",
                "symptom_logs",
                "messages",
                "prescriptions",
                "payments",
            )
        },
    }


def test_anonymize_leaves_no_original_and_verifies(synthetic: str) -> None:
    before = _originals(synthetic)
    report = anonymize(dsn=synthetic, rules=load_rules(), salt=SALT)

    assert report.ok, report.summary
    assert report.leak_count == 0 and report.pattern_count == 0 and report.orphan_count == 0
    assert {t.table: t.rows_after for t in report.tables} == before["counts"]
    assert all(t.rows_before == t.rows_after for t in report.tables)
    assert len(report.foreign_keys) == 8 and len(report.leaks) == 25
    # Independently of the engine's own check: no identifier of any patient or provider is left
    # anywhere in the database, and no name or date is left in its row.
    text = whole_database_text(synthetic)
    for p in before["patients"].values():
        for value in (p[1], p[5], p[6], p[7], p[8]):
            assert value is None or value not in text
    for p in before["providers"].values():
        assert p[1] not in text and p[4] not in text
    after = {
        r[0]: r
        for r in rows(
            synthetic,
            "SELECT id, mrn, first_name, last_name, dob, email, phone, "
            "address_line, processor_customer_id, created_at FROM patients",
        )
    }
    for pid, old in before["patients"].items():
        new = after[pid]
        assert all(new[i] != old[i] for i in (1, 2, 3, 4, 5, 8, 9)), pid
        assert new[5].endswith("@example.invalid") and new[8].startswith("cus_")
        assert new[6] is None if old[6] is None else new[6].startswith("+1-") and "-555-01" in new[6]
    assert rows(synthetic, "SELECT count(*) FROM payments WHERE card_last4 IS NOT NULL") == [(0,)]
    assert rows(synthetic, "SELECT count(*) FROM messages WHERE body NOT LIKE '[message text removed%%'") == [
        (0,)
    ]
    redacted = " ".join(n for (n,) in rows(synthetic, "SELECT notes FROM symptom_logs"))
    assert "[EMAIL]" in redacted and "[SSN]" in redacted and "[DATE]" in redacted and "[PHONE]" in redacted
    assert "Hot flashes" in redacted  # the clinical text itself is kept
    assert rows(synthetic, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'anon_scratch%%'") == [(0,)]


def test_joins_and_unique_keys_survive(synthetic: str) -> None:
    pairs_before = rows(
        synthetic,
        "SELECT m.id, m.sender_email = p.email OR m.recipient_email = p.email "
        "FROM messages m JOIN patients p ON p.id = m.patient_id",
    )
    assert all(same for _, same in pairs_before)
    shifts_before = {
        r[0]: r[1:]
        for r in rows(
            synthetic,
            "SELECT p.id, p.created_at, a.starts_at, p.dob "
            "FROM patients p JOIN appointments a ON a.patient_id = p.id",
        )
    }
    assert anonymize(dsn=synthetic, rules=load_rules(), salt=SALT).ok

    # Same patient, same pseudonym in every table that carries the value.
    assert rows(
        synthetic,
        "SELECT count(*) FROM payments y JOIN patients p ON p.id = y.patient_id "
        "WHERE y.processor_customer_id <> p.processor_customer_id",
    ) == [(0,)]
    assert rows(
        synthetic,
        "SELECT count(*) FROM messages m JOIN patients p ON p.id = m.patient_id "
        "WHERE p.email NOT IN (m.sender_email, m.recipient_email)",
    ) == [(0,)]
    assert rows(
        synthetic,
        "SELECT count(*) FROM messages m JOIN providers d ON d.id = m.provider_id "
        "WHERE d.email NOT IN (m.sender_email, m.recipient_email)",
    ) == [(0,)]
    # Unique columns are still unique, and still complete.
    for table, column in (
        ("patients", "email"),
        ("patients", "mrn"),
        ("patients", "processor_customer_id"),
        ("providers", "email"),
        ("providers", "npi"),
    ):
        assert rows(synthetic, f"SELECT count(DISTINCT {column}) = count(*) FROM {table}") == [(True,)]
    # One shift per patient, the same in every table, never zero, within ±30 days.
    after = {
        r[0]: r[1:]
        for r in rows(
            synthetic,
            "SELECT p.id, p.created_at, a.starts_at, p.dob "
            "FROM patients p JOIN appointments a ON a.patient_id = p.id",
        )
    }
    for pid, (created, starts, dob) in shifts_before.items():
        shift = after[pid][0] - created
        assert after[pid][1] - starts == shift and (after[pid][2] - dob).days == shift.days
        assert 1 <= abs(shift.days) <= 30


def test_same_salt_same_pseudonyms_other_salt_others(make_db: MakeDb) -> None:
    dsns = [make_db() for _ in range(3)]
    for dsn in dsns:
        create_synthetic(dsn=dsn, patients=40, seed=11)
    for dsn, salt in zip(dsns, (SALT, SALT, b"another-salt-of-enough-bytes"), strict=True):
        assert anonymize(dsn=dsn, rules=load_rules(), salt=salt).ok
    query = "SELECT id, mrn, email, first_name, dob FROM patients ORDER BY id"
    same, again, other = (rows(dsn, query) for dsn in dsns)
    assert same == again
    assert all(a[1] != b[1] and a[2] != b[2] for a, b in zip(same, other, strict=True))


def test_keyed_hash_in_sql_is_hmac_sha256() -> None:
    keys = Keys.from_salt(SALT)
    key = hmac.new(SALT, b"menotime-anonymize:p", hashlib.sha256).digest()
    expected = hmac.new(key, b"patient:42", hashlib.sha256).digest()
    assert Keys.python_hmac(SALT, "p", b"patient:42") == expected
    assert keys.params["kp_i"] != keys.params["kv_i"]


def test_sql_hmac_matches_python(synthetic: str) -> None:
    from jobs.anonymize.sql import keyed

    message = "'patient:42'"
    (digest,) = rows(synthetic, f"SELECT {keyed(message)}", Keys.from_salt(SALT).params)[0]
    assert bytes(digest) == Keys.python_hmac(SALT, "p", b"patient:42")


# ------------------------------------------------------------------------------------------
# Refusals: before anything runs


def test_an_unruled_column_refuses_the_run_and_changes_nothing(synthetic: str) -> None:
    with connect(synthetic) as conn:
        conn.execute("ALTER TABLE patients ADD COLUMN insurance_member_id text")
        conn.execute("UPDATE patients SET insurance_member_id = 'MBR' || id")
    before = checksum(synthetic)
    report = anonymize(dsn=synthetic, rules=load_rules(), salt=SALT)
    assert report.refused and not report.ok and report.outcome == "refused"
    assert report.coverage_problems == (
        "patients.insurance_member_id: column is not ruled: give it a strategy, or declare it safe with `keep`",
    )
    assert checksum(synthetic) == before
    with pytest.raises(RulesError) as raised:
        plan(dsn=synthetic, rules=load_rules())
    assert "patients.insurance_member_id" in raised.value.message


def test_a_new_table_is_unruled_column_by_column(synthetic: str) -> None:
    with connect(synthetic) as conn:
        conn.execute("CREATE TABLE referrals (id int PRIMARY KEY, clinic_email text)")
    with pytest.raises(RulesError) as raised:
        plan(dsn=synthetic, rules=load_rules())
    assert [p.split(":")[0] for p in raised.value.problems] == ["referrals.id", "referrals.clinic_email"]


def _rules_with(change: Callable[[dict[str, Any]], None]) -> Any:
    import yaml

    from jobs.anonymize import DEFAULT_RULES

    data = yaml.safe_load(DEFAULT_RULES.read_text())
    change(data)
    return parse_rules(data, source="test-rules.yaml")


def test_rules_naming_missing_tables_and_columns_are_refused(synthetic: str) -> None:
    def change(data: dict[str, Any]) -> None:
        data["tables"]["insurance_claims"] = {"id": "keep"}
        data["tables"]["patients"]["middle_name"] = "fake_name"

    before = checksum(synthetic)
    with pytest.raises(RulesError) as raised:
        plan(dsn=synthetic, rules=_rules_with(change))
    assert raised.value.problems == (
        "insurance_claims: table named in the rules does not exist in the database",
        "patients.middle_name: column named in the rules does not exist in the table",
    )
    report = anonymize(dsn=synthetic, rules=_rules_with(change), salt=SALT)
    assert report.refused and len(report.coverage_problems) == 2
    assert checksum(synthetic) == before


@pytest.mark.parametrize(
    ("column", "spec", "problem"),
    [
        ("phone", "fake_name", "patients.phone: has a unique constraint, which fake_name cannot keep"),
        ("dob", "email", "patients.dob: email needs a text column, this one is date"),
        ("first_name", "null", "patients.first_name: null on a NOT NULL column"),
        ("id", {"strategy": "hmac"}, "patients.id: hmac needs a text column"),
        (
            "city",
            {"strategy": "date_shift", "key": "nope"},
            "patients.city: key column `nope` does not exist",
        ),
    ],
)
def test_rules_the_schema_cannot_take_are_refused(
    synthetic: str, column: str, spec: Any, problem: str
) -> None:
    with connect(synthetic) as conn:
        conn.execute("CREATE UNIQUE INDEX ON patients (phone)")

    def change(data: dict[str, Any]) -> None:
        data["tables"]["patients"][column] = spec

    with pytest.raises(RulesError) as raised:
        plan(dsn=synthetic, rules=_rules_with(change))
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_foreign_key_columns_cannot_be_rewritten(synthetic: str) -> None:
    def change(data: dict[str, Any]) -> None:
        data["tables"]["appointments"]["patient_id"] = "null"

    with pytest.raises(RulesError) as raised:
        plan(dsn=synthetic, rules=_rules_with(change))
    assert any(
        p.startswith("appointments.patient_id: is a key of foreign key") for p in raised.value.problems
    )


def test_a_failure_while_masking_is_reported_without_values(synthetic: str) -> None:
    with connect(synthetic) as conn:
        conn.execute("ALTER TABLE patients ADD CONSTRAINT real_emails CHECK (email NOT LIKE '%%.invalid')")
    emails = {e for (e,) in rows(synthetic, "SELECT email FROM patients")}
    report = anonymize(dsn=synthetic, rules=load_rules(), salt=SALT)
    assert not report.ok and report.outcome == "failed"
    assert report.error == "masking patients failed: SQLSTATE 23514 (CheckViolation, constraint real_emails)"
    assert {
        e for (e,) in rows(synthetic, "SELECT email FROM patients")
    } == emails  # its transaction rolled back
    assert not any(e in report.summary for e in emails)
    assert rows(synthetic, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'anon_scratch%%'") == [(0,)]


def test_verify_only_passes_after_anonymization(synthetic: str) -> None:
    assert anonymize(dsn=synthetic, rules=load_rules(), salt=SALT).ok
    report = anonymize(dsn=synthetic, rules=load_rules(), salt=None, verify_only=True)
    assert report.ok and report.verify_only and report.leaks == ()
    assert all(t.rows_before is None for t in report.tables)
    assert "leaks not checked (verify-only)" in report.summary


def test_a_short_salt_is_refused(synthetic: str) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        anonymize(dsn=synthetic, rules=load_rules(), salt=b"short")


def test_an_unreachable_database_is_one_clear_error() -> None:
    from jobs.anonymize import DatabaseUnreachable

    with pytest.raises(DatabaseUnreachable, match="cannot connect to PostgreSQL database nowhere") as raised:
        anonymize(dsn="postgresql://u:secret-pw@127.0.0.1:1/nowhere", rules=load_rules(), salt=SALT)
    assert "secret-pw" not in str(raised.value)


def test_report_is_typed_for_the_refresh_job(synthetic: str) -> None:
    messages: list[str] = []
    report = anonymize(dsn=synthetic, rules=load_rules(), salt=SALT, on_progress=messages.append)
    assert isinstance(report, AnonymizationReport)
    assert report.outcome == "succeeded" and report.summary.startswith(
        f"anonymization of {make_url(synthetic).database} verified"
    )
    assert [phase for phase, _ in report.durations] == [
        "plan",
        "count",
        "snapshot",
        "mask",
        "verify leaks",
        "verify shapes",
        "verify patterns",
        "verify counts and keys",
    ]
    assert "masking patients (11 columns)" in messages


def test_a_second_run_on_an_anonymized_database_still_verifies(synthetic: str) -> None:
    assert anonymize(dsn=synthetic, rules=load_rules(), salt=SALT).ok
    once = rows(synthetic, "SELECT mrn, email, dob FROM patients ORDER BY id")
    report = anonymize(dsn=synthetic, rules=load_rules(), salt=SALT)
    assert report.ok, report.leaking_columns  # replaced constants that were already constants are no leak
    assert all(
        a != b
        for a, b in zip(
            once, rows(synthetic, "SELECT mrn, email, dob FROM patients ORDER BY id"), strict=True
        )
    )


def test_a_patients_hash_is_computed_once_per_row(synthetic: str) -> None:
    from jobs.anonymize.engine import mask_table_sql

    the_plan = plan(dsn=synthetic, rules=load_rules())
    patients = next(t for t in the_plan.tables if t.table == "patients")
    statement = mask_table_sql(patients, the_plan.rules)
    # first_name, last_name, dob and created_at all derive from HMAC('patient:' || id): one HMAC.
    assert statement.count("'patient' || ':'") == 1 and "anon_s.anon_rid" in statement


def test_a_scratch_schema_left_by_a_crashed_run_is_dropped(synthetic: str) -> None:
    with connect(synthetic) as conn:
        conn.execute("CREATE SCHEMA anon_scratch_deadbeef")
        conn.execute("CREATE TABLE anon_scratch_deadbeef.public__patients (id bigint, h bytea)")
    assert anonymize(dsn=synthetic, rules=load_rules(), salt=SALT).ok
    assert rows(synthetic, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'anon_scratch%%'") == [(0,)]


# ------------------------------------------------------------------------------------------
# Second reading: ways PHI could have slipped past the gate or the checks


def test_a_table_in_a_schema_the_rules_do_not_list_is_unruled(synthetic: str) -> None:
    with connect(synthetic) as conn:
        conn.execute("CREATE SCHEMA archive")
        conn.execute("CREATE TABLE archive.patients_2019 AS SELECT id, email, dob FROM patients")
    before = checksum(synthetic)
    report = anonymize(dsn=synthetic, rules=load_rules(), salt=SALT)
    assert report.refused and not report.ok
    assert [p.split(":")[0] for p in report.coverage_problems] == [
        "archive.patients_2019.id",
        "archive.patients_2019.email",
        "archive.patients_2019.dob",
    ]
    assert checksum(synthetic) == before


def test_a_materialized_view_must_be_ruled_and_cannot_be_masked(synthetic: str) -> None:
    with connect(synthetic) as conn:
        conn.execute("CREATE MATERIALIZED VIEW patient_contacts AS SELECT id, email FROM patients")
    with pytest.raises(RulesError) as raised:
        plan(dsn=synthetic, rules=load_rules())
    assert [p.split(":")[0] for p in raised.value.problems] == [
        "patient_contacts.id",
        "patient_contacts.email",
    ]

    def change(data: dict[str, Any]) -> None:
        data["tables"]["patient_contacts"] = {"id": "keep", "email": "email"}

    with pytest.raises(RulesError) as raised:
        plan(dsn=synthetic, rules=_rules_with(change))
    assert raised.value.problems == (
        "patient_contacts: is a materialized view, which cannot be masked in place; "
        "rule its columns `keep` only if it holds no PHI, or drop it",
    )


def test_a_foreign_table_is_refused(synthetic: str) -> None:
    with connect(synthetic) as conn:
        conn.execute("CREATE FOREIGN DATA WRAPPER anon_test_fdw")
        conn.execute("CREATE SERVER anon_test_prod FOREIGN DATA WRAPPER anon_test_fdw")
        conn.execute("CREATE FOREIGN TABLE prod_patients (id bigint, email text) SERVER anon_test_prod")

    def change(data: dict[str, Any]) -> None:
        data["tables"]["prod_patients"] = {"id": "keep", "email": "keep"}

    with pytest.raises(RulesError) as raised:
        plan(dsn=synthetic, rules=_rules_with(change))
    assert [p.split(":")[0] for p in raised.value.problems] == ["prod_patients"]
    assert "is a foreign table" in raised.value.problems[0]


def test_a_masked_primary_key_is_refused(make_db: MakeDb) -> None:
    dsn = make_db()
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE charts (mrn text PRIMARY KEY, author text NOT NULL)")
    rules = parse_rules({"tables": {"charts": {"mrn": {"strategy": "hmac"}, "author": "fake_name"}}})
    with pytest.raises(RulesError) as raised:
        plan(dsn=dsn, rules=rules)
    assert [p.split(":")[0] for p in raised.value.problems] == ["charts.mrn"]
    assert "is part of the primary key" in raised.value.problems[0]


def test_rows_the_leak_check_cannot_match_to_their_originals_count_as_leaks(make_db: MakeDb) -> None:
    from jobs.anonymize import verify
    from jobs.anonymize.plan import build_plan

    dsn = make_db()
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE charts (id int PRIMARY KEY, author text)")
        conn.execute("INSERT INTO charts VALUES (1, 'Jane Doe'), (2, 'John Roe'), (3, NULL)")
        rules = parse_rules({"tables": {"charts": {"id": "keep", "author": "fake_name"}}})
        the_plan, params = build_plan(conn, rules), Keys.from_salt(SALT).params
        verify.create_scratch(conn, "anon_scratch_test")
        verify.snapshot(conn, the_plan, "anon_scratch_test", params)
        conn.execute(
            "UPDATE charts SET id = id + 10"
        )  # nothing masked, and no row matches its original by key
        [leak] = verify.leaks(conn, the_plan, "anon_scratch_test", params)
        verify.drop_scratch(conn, "anon_scratch_test")
    assert (leak.checked, leak.leaks) == (2, 2)  # not "0 compared, 0 leaked"


# The two strategies below write values of the same shape as the originals (a shifted date looks like
# any date, a 10-digit pseudonym like any 10-digit account number): the shape check cannot tell a
# surviving original, only the comparison with the originals' keyed hashes can.
VISIT_RULES = {
    "tables": {
        "visits": {
            "id": "keep",
            "patient_id": "keep",
            "seen_on": {"strategy": "date_shift", "key": "patient_id", "domain": "patient"},
            "account": {"strategy": "hmac", "alphabet": "digits", "length": 10, "domain": "account"},
        }
    }
}


def _visits(dsn: str, trigger_body: str) -> None:
    """Three visits, and a BEFORE UPDATE trigger that undoes part of the masking UPDATE as it runs."""
    with connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE visits (id int PRIMARY KEY, patient_id int NOT NULL, seen_on date NOT NULL, "
            "account text NOT NULL)"
        )
        conn.execute(
            "INSERT INTO visits VALUES (1, 11, '2021-03-04', '1234567890'), "
            "(2, 12, '2021-05-06', '2345678901'), (3, 13, '2021-07-08', '3456789012')"
        )
        conn.execute(
            "CREATE FUNCTION undo_masking() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {trigger_body} RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER undo_masking BEFORE UPDATE ON visits FOR EACH ROW EXECUTE FUNCTION undo_masking()"
        )


def _leaks(report: AnonymizationReport) -> dict[str, tuple[str, int, int]]:
    return {f"{c.table}.{c.column}": (c.check, c.checked, c.leaks) for c in report.leaks}


def test_a_date_left_unshifted_in_one_row_fails_the_run(make_db: MakeDb) -> None:
    dsn = make_db()
    _visits(dsn, "IF NEW.id = 2 THEN NEW.seen_on := OLD.seen_on; END IF;")

    report = anonymize(dsn=dsn, rules=parse_rules(VISIT_RULES), salt=SALT)

    assert rows(dsn, "SELECT seen_on::text FROM visits WHERE id = 2") == [("2021-05-06",)]  # it survived
    assert _leaks(report)["visits.seen_on"] == ("row", 3, 1)  # the row-level comparison caught it
    assert _leaks(report)["visits.account"] == ("set", 3, 0)
    assert report.unmasked_count == 0 and report.pattern_count == 0  # nothing else could have
    assert not report.ok and report.outcome == "failed"
    assert "NOT VERIFIED" in report.summary and "1 surviving originals" in report.summary
    assert [(c.table, c.column) for c in report.leaking_columns] == [("visits", "seen_on")]


def test_an_original_account_number_kept_or_copied_to_another_row_fails_the_run(make_db: MakeDb) -> None:
    dsn = make_db()
    # Row 2 keeps its own original; row 3 gets row 1's original (only the set-level check sees that one).
    _visits(
        dsn,
        "IF NEW.id = 2 THEN NEW.account := OLD.account; END IF; "
        "IF NEW.id = 3 THEN NEW.account := '1234567890'; END IF;",
    )

    report = anonymize(dsn=dsn, rules=parse_rules(VISIT_RULES), salt=SALT)

    assert rows(dsn, "SELECT id, account FROM visits WHERE id > 1 ORDER BY id") == [
        (2, "2345678901"),
        (3, "1234567890"),
    ]
    assert _leaks(report)["visits.account"] == ("set", 3, 2)
    assert _leaks(report)["visits.seen_on"] == ("row", 3, 0)
    assert report.unmasked_count == 0 and report.pattern_count == 0  # nothing else could have
    assert not report.ok and report.outcome == "failed"
    assert "NOT VERIFIED" in report.summary and "2 surviving originals" in report.summary
    assert [(c.table, c.column) for c in report.leaking_columns] == [("visits", "account")]


def test_the_same_rules_verify_when_the_masking_is_not_undone(make_db: MakeDb) -> None:
    # The control for the two tests above: their leaks come from the trigger, not from the rules.
    dsn = make_db()
    _visits(dsn, "")
    report = anonymize(dsn=dsn, rules=parse_rules(VISIT_RULES), salt=SALT)
    assert report.ok, report.summary
    assert _leaks(report) == {"visits.seen_on": ("row", 3, 0), "visits.account": ("set", 3, 0)}


def test_a_key_given_twice_in_the_rules_file_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("tables:\n  patients:\n    id: keep\n    email: email\n    email: keep\n")
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    assert raised.value.problems == ("not valid YAML at line 5: `email` is given twice",)
    with pytest.raises(RulesError) as raised:
        parse_rules({"tables": {"patients": {"id": "keep"}, "public.patients": {"id": "keep"}}})
    assert raised.value.problems == ("patients: the table is named twice in the rules",)


# ------------------------------------------------------------------------------------------
# A database whose default is standard_conforming_strings = off (a backslash in '...' is an escape)

HOSTILE_TEXT = ("O'Brien", "a\\b", "100% \\' E'x' \\\\", "tab\\there")


@pytest.fixture
def old_style_db(make_db: MakeDb) -> str:
    dsn = make_db()
    with psycopg.connect(libpq_dsn(dsn), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{make_url(dsn).database}" SET standard_conforming_strings = off')
        conn.execute(f'ALTER DATABASE "{make_url(dsn).database}" SET escape_string_warning = off')
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("off",)
    return dsn


def test_replacements_with_quotes_and_backslashes_are_written_exactly(old_style_db: str) -> None:
    with connect(old_style_db) as conn:
        conn.execute(
            "CREATE TABLE people (id int PRIMARY KEY, surname text, note text, motto text, code text)"
        )
        conn.execute(
            "INSERT INTO people SELECT g, 'Smith', 'note ' || g, 'motto', 'C' || g "
            "FROM generate_series(1, 5) g"
        )
    rules = parse_rules(
        {
            "tables": {
                "people": {
                    "id": "keep",
                    "surname": {"strategy": "replace", "value": HOSTILE_TEXT[0]},
                    "note": {"strategy": "replace", "value": HOSTILE_TEXT[1]},
                    "motto": {"strategy": "replace", "value": HOSTILE_TEXT[2]},
                    "code": {"strategy": "hmac", "prefix": HOSTILE_TEXT[3], "domain": "d\\'x"},
                }
            }
        }
    )

    report = anonymize(dsn=old_style_db, rules=rules, salt=SALT)

    assert report.ok, report.error or report.summary
    expected_codes = {
        HOSTILE_TEXT[3] + Keys.python_hmac(SALT, "p", f"d\\'x:C{i}".encode()).hex()[:16] for i in range(1, 6)
    }
    assert set(rows(old_style_db, "SELECT surname, note, motto FROM people")) == {HOSTILE_TEXT[:3]}
    assert {c for (c,) in rows(old_style_db, "SELECT code FROM people")} == expected_codes
    assert anonymize(dsn=old_style_db, rules=rules, salt=None, verify_only=True).ok


def test_the_anonymizers_literals_mean_the_same_whatever_the_session_setting(old_style_db: str) -> None:
    from jobs.anonymize.sql import literal

    with psycopg.connect(libpq_dsn(old_style_db), autocommit=True) as conn:  # the database's default: off
        for value in HOSTILE_TEXT:
            assert conn.execute(f"SELECT {literal(value)}", {}).fetchone() == (value,)


def test_a_schema_only_looking_like_a_scratch_schema_is_still_ruled(old_style_db: str) -> None:
    # With standard_conforming_strings off, 'anon\_scratch\_%' would be the LIKE pattern anon_scratch_%,
    # whose `_` match any character: this schema would escape the coverage gate and be dropped as a
    # crashed run's scratch schema.
    with connect(old_style_db) as conn:
        assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("on",)
        conn.execute("CREATE SCHEMA anonXscratchXarchive")
        conn.execute("CREATE TABLE anonXscratchXarchive.emails AS SELECT 'jane@example.com'::text AS email")
    report = anonymize(dsn=old_style_db, rules=parse_rules({"tables": {"keepme": {"id": "keep"}}}), salt=SALT)
    assert report.refused
    assert "anonxscratchxarchive.emails.email: column is not ruled" in "\n".join(report.coverage_problems)
