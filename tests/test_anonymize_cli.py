"""`menotime-bot anonymize` and `synthetic-db` through click: exit codes and what the operator reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from handlers.cli import cli
from jobs.anonymize.sql import connect
from tests.test_anonymize import MakeDb, make_db  # noqa: F401 - the fixture

pytestmark = pytest.mark.postgres


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def synthetic_dsn(runner: CliRunner, make_db: MakeDb) -> str:
    dsn = make_db()
    result = runner.invoke(cli, ["synthetic-db", "--dsn", dsn, "--patients", "120", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "patients 120" in result.stdout
    return dsn


def test_anonymize_exits_0_with_a_report_of_zero_leaks(runner: CliRunner, synthetic_dsn: str) -> None:
    result = runner.invoke(cli, ["anonymize", "--dsn", synthetic_dsn])
    assert result.exit_code == 0, result.output
    assert "verified: 7 tables" in result.stdout and "0 surviving originals" in result.stdout
    assert (
        "patients.email" in result.stdout
        and "(c) PHI patterns in free text (9 columns scanned): 0 hits" in result.stdout
    )
    assert "ANONYMIZE_SALT is not set: this run uses a random salt" in result.stderr


def test_the_salt_setting_is_used_and_never_printed(
    runner: CliRunner, synthetic_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANONYMIZE_SALT", "operator-salt-0123456789")
    result = runner.invoke(cli, ["anonymize", "--dsn", synthetic_dsn])
    assert result.exit_code == 0, result.output
    assert "random salt" not in result.output and "operator-salt" not in result.output
    with connect(synthetic_dsn) as conn:
        first = conn.execute("SELECT mrn FROM patients WHERE id = 1").fetchone()
    assert first is not None and first[0].startswith("MRN-")


def test_an_unruled_phi_column_exits_non_zero_naming_it(runner: CliRunner, synthetic_dsn: str) -> None:
    with connect(synthetic_dsn) as conn:
        conn.execute("ALTER TABLE patients ADD COLUMN ssn text")
        conn.execute("UPDATE patients SET ssn = '123-45-' || lpad(id::text, 4, '0')")
    result = runner.invoke(cli, ["anonymize", "--dsn", synthetic_dsn])
    assert result.exit_code == 2
    assert "patients.ssn: column is not ruled" in result.stdout
    assert "refused before anything ran" in result.stdout
    with connect(synthetic_dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM patients WHERE email LIKE '%%example.invalid'"
        ).fetchone() == (0,)


def test_verify_only_changes_nothing_and_fails_on_raw_phi(runner: CliRunner, synthetic_dsn: str) -> None:
    result = runner.invoke(cli, ["anonymize", "--dsn", synthetic_dsn, "--verify-only"])
    assert result.exit_code == 1
    assert "NOT VERIFIED" in result.stdout and "symptom_logs.notes:" in result.stdout
    assert "(b) surviving originals: not checked (--verify-only" in result.stdout
    assert runner.invoke(cli, ["anonymize", "--dsn", synthetic_dsn]).exit_code == 0
    assert runner.invoke(cli, ["anonymize", "--dsn", synthetic_dsn, "--verify-only"]).exit_code == 0


def test_a_bad_rules_file_is_refused_naming_the_column(
    runner: CliRunner, synthetic_dsn: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "tables:\n  patients:\n    id: keep\n    email: emial\n    phone: {strategy: hmac, size: 3}\n"
    )
    result = runner.invoke(cli, ["anonymize", "--dsn", synthetic_dsn, "--rules", str(rules)])
    assert result.exit_code == 2
    assert "patients.email: unknown strategy `emial` (did you mean `email`?" in result.stderr
    assert "patients.phone: hmac option `size`: extra inputs are not permitted" in result.stderr


def test_a_production_database_is_never_anonymized_in_place(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["anonymize", "--dsn", "postgresql://u@menotime-prod.x.rds.amazonaws.com/app"]
    )
    assert result.exit_code == 2 and "mentions prod" in result.stderr


def test_an_unreachable_database_exits_3(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["anonymize", "--dsn", "postgresql://u:pw-secret@127.0.0.1:1/staging_copy"])
    assert result.exit_code == 3
    assert (
        "cannot connect to PostgreSQL database staging_copy" in result.stderr
        and "pw-secret" not in result.output
    )
