"""The anonymization report renders to valid Block Kit and to text, whatever it holds."""

from __future__ import annotations

import json

import pytest

from bot.render import render_slack, render_text
from jobs.anonymize import (
    AnonymizationReport,
    ColumnLeak,
    ColumnShape,
    ForeignKeyCheck,
    PatternHits,
    TableCount,
)
from tests.blockkit import assert_valid_message

HOSTILE = 'weird "col" <!channel> & `x` *y*'
DURATIONS = (("plan", 0.01), ("mask", 1.5))

VERIFIED = AnonymizationReport(
    database="menotime_staging",
    verify_only=False,
    tables=(TableCount("patients", 300, 300, 11, 0.2), TableCount("payments", 300, 300, 3, 0.1)),
    leaks=(ColumnLeak("patients", "email", "email", "set", 300, 0),),
    patterns=(PatternHits("symptom_logs", "notes"),),
    foreign_keys=(ForeignKeyCheck("payments_patient_id_fkey", "payments", ("patient_id",), "patients", 0),),
    durations=DURATIONS,
)
FAILED = AnonymizationReport(
    database="menotime_staging",
    verify_only=False,
    tables=tuple(TableCount(f"t{i}", 10, 9 if i == 3 else 10, 1, 0.1) for i in range(40)),
    leaks=tuple(ColumnLeak("patients", f"{HOSTILE}{i}", "hmac", "set", 10, 2) for i in range(30)),
    patterns=tuple(PatternHits("notes", f"c{i}", email=1, ssn=2) for i in range(30)),
    foreign_keys=tuple(ForeignKeyCheck(f"fk{i}", "a", ("b",), "c", 4) for i in range(30)),
    durations=DURATIONS,
)
REFUSED = AnonymizationReport(
    database="menotime_staging",
    verify_only=False,
    coverage_problems=tuple(
        f"patients.{HOSTILE}{i}: column is not ruled: give it a strategy" for i in range(60)
    ),
)
ERROR = AnonymizationReport(
    database="x",
    verify_only=False,
    error="masking patients failed: SQLSTATE 23505",
    tables=VERIFIED.tables,
    durations=DURATIONS,
)
VERIFY_ONLY = AnonymizationReport(
    database="x",
    verify_only=True,
    tables=(TableCount("patients", None, 300, 11),),
    patterns=(PatternHits("symptom_logs", "notes", email=3),),
)

UNMASKED = AnonymizationReport(
    database="x",
    verify_only=True,
    tables=(TableCount("patients", None, 1204, 11),),
    shapes=(
        ColumnShape("patients", "email", "email", "p<16 hex>@example.invalid", 1204, 1204),
        ColumnShape("patients", HOSTILE, "null", "NULL", 1204, 3),
        ColumnShape("patients", "phone", "phone", "+1-<200..999>-555-01xx", 1204, 0),
        ColumnShape("patients", "dob", "date_shift", "a date moved by a few days", None),
        *(ColumnShape("t", f"c{i}", "hmac", "<16 hex>", 10, 10) for i in range(30)),
    ),
)


@pytest.mark.parametrize(
    "report",
    [VERIFIED, FAILED, REFUSED, ERROR, VERIFY_ONLY, UNMASKED],
    ids=["verified", "failed", "refused", "error", "verify_only", "unmasked"],
)
def test_renders_valid_block_kit_and_text(report: AnonymizationReport) -> None:
    message = render_slack(report)
    assert_valid_message(message)
    assert "<!channel>" not in json.dumps(message)
    assert render_text(report).startswith(report.summary)


def test_outcomes_and_summaries() -> None:
    assert VERIFIED.ok and VERIFIED.outcome == "succeeded"
    assert "verified: 2 tables, 600 rows; 0 surviving originals" in VERIFIED.summary
    assert not FAILED.ok and FAILED.outcome == "failed" and FAILED.leak_count == 60
    assert "NOT VERIFIED" in FAILED.summary and len(FAILED.count_mismatches) == 1
    assert REFUSED.outcome == "refused" and "refused before anything ran: 60" in REFUSED.summary
    assert not ERROR.ok and "FAILED: masking patients failed" in ERROR.summary
    assert not VERIFY_ONLY.ok and "leaks not checked (verify-only)" in VERIFY_ONLY.summary


def test_text_lists_every_leaking_column_and_problem() -> None:
    text = render_text(FAILED)
    assert text.count("LEAK") == 30 and "t3" in text and "CHANGED" in text
    assert render_text(REFUSED).count("column is not ruled") == 60
    slack = json.dumps(render_slack(REFUSED))
    assert "and 48 more" in slack


def test_each_column_that_looks_unmasked_is_one_line() -> None:
    assert not UNMASKED.ok and UNMASKED.outcome == "failed" and UNMASKED.unmasked_count == 1507
    assert "1507 rows looking unmasked" in UNMASKED.summary
    lines = render_text(UNMASKED).splitlines()
    assert "  patients.email: 1,204 of 1,204 rows look unmasked (expected p<16 hex>@example.invalid)" in lines
    assert sum("rows look unmasked (expected" in line for line in lines) == 32  # not phone: none of its rows
    assert "  not checkable without the originals (date_shift): patients.dob" in lines
    slack = json.dumps(render_slack(UNMASKED))
    assert "looks unmasked: patients.email: 1,204 of 1,204 rows" in slack and "32 columns" in slack
