"""The anonymizer's SQL at its edges, on a real PostgreSQL: every pseudonym is the documented keyed
function of its original (so an operator holding the salt can recompute the one of a known patient),
a fake name never gives the original back, quotes and percent signs in names are only names, a
varchar column is refused exactly when the strategy's longest value would not fit, each table is
committed as soon as it is masked, and connection errors name the database and never a password."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from jobs.anonymize import RulesError, anonymize, parse_rules, plan
from jobs.anonymize.names import FIRST_NAMES, LAST_NAMES
from jobs.anonymize.rules import ColumnRule, Keep, Shape
from jobs.anonymize.sql import (
    DatabaseUnreachable,
    Keys,
    connect,
    database_name,
    libpq_dsn,
    mask_expression,
    unmasked_expression,
)
from tests.test_anonymize import SALT, MakeDb, make_db, rows  # noqa: F401 - make_db is a fixture

pytestmark = pytest.mark.postgres


def _hmac(domain: str, value: object) -> bytes:
    return Keys.python_hmac(SALT, "p", f"{domain}:{value}".encode())


def _int24(digest: bytes, byte: int) -> int:
    return int.from_bytes(digest[byte : byte + 3], "big")


def _shift(domain: str, key: object, days: int) -> int:
    shifts = [*range(-days, 0), *range(1, days + 1)]
    return shifts[_int24(_hmac(domain, key), 12) % len(shifts)]


def _first(domain: str, key: object) -> str:
    return FIRST_NAMES[_int24(_hmac(domain, key), 0) % len(FIRST_NAMES)]


def _last(domain: str, key: object) -> str:
    return LAST_NAMES[_int24(_hmac(domain, key), 4) % len(LAST_NAMES)]


# ------------------------------------------------------------------------------------------
# Pseudonyms: the documented keyed function of the original, value by value

CHARTS = {
    "tables": {
        "charts": {
            "id": "keep",
            "patient_id": "keep",
            "mrn": {"strategy": "hmac", "prefix": "MRN-", "length": 16, "domain": "mrn"},
            "badge": {"strategy": "hmac", "length": 9, "domain": "badge"},  # odd: half a byte
            "account": {"strategy": "hmac", "alphabet": "digits", "length": 10, "domain": "account"},
            "member": {"strategy": "hmac", "alphabet": "digits", "length": 18, "domain": "member"},
            "email": {"strategy": "email", "length": 13, "email_domain": "mail.invalid"},
            "phone": "phone",
            "author": "fake_name",
            "first_name": {"strategy": "fake_name", "part": "first", "key": "patient_id", "domain": "p"},
            "last_name": {"strategy": "fake_name", "part": "last", "key": "patient_id", "domain": "p"},
            "seen_on": {"strategy": "date_shift", "key": "patient_id", "domain": "p", "days": 9},
            "seen_at": {"strategy": "date_shift", "key": "patient_id", "domain": "p", "days": 9},
        }
    }
}
CHART_ROWS = [
    (1, 11, "A-1001", "B1", "4000123", "M77", "ann@clinic.test", "(415) 555-2671", "Ann Lee", "Ann", "Lee"),
    (2, 12, "A-1002", "B2", "4000124", "M78", "bob@clinic.test", "(212) 555-0199", "Bob Ray", "Bob", "Ray"),
    (3, 13, "A-1003", "B3", "4000125", "M79", "cy@clinic.test", "646.555.0123", "Cy Fox", "Cy", "Fox"),
]
SEEN_ON = dt.date(2021, 3, 4)
SEEN_AT = dt.datetime(2021, 3, 4, 9, 30)


def _charts(dsn: str) -> None:
    with connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE charts (id int PRIMARY KEY, patient_id int NOT NULL, mrn text, badge text, "
            "account text, member text, email text, phone text, author text, first_name text, "
            "last_name text, seen_on date, seen_at timestamp)"
        )
        for row in CHART_ROWS:
            conn.execute(
                "INSERT INTO charts VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (*row, SEEN_ON, SEEN_AT),
            )


def test_every_pseudonym_is_the_documented_keyed_value_of_its_original(make_db: MakeDb) -> None:
    dsn = make_db()
    _charts(dsn)

    report = anonymize(dsn=dsn, rules=parse_rules(CHARTS), salt=SALT)

    assert report.ok, report.summary
    got = rows(
        dsn,
        "SELECT id, mrn, badge, account, member, email, phone, author, first_name, last_name, seen_on, "
        "seen_at FROM charts ORDER BY id",
    )
    expected = []
    for rid, pid, mrn, badge, account, member, email, phone, author, *_ in CHART_ROWS:
        number = 20000 + _int24(_hmac("phone", phone), 0) % 80000
        shift = _shift("p", pid, 9)
        expected.append(
            (
                rid,
                "MRN-" + _hmac("mrn", mrn).hex()[:16],
                _hmac("badge", badge).hex()[:9],
                str(int(_hmac("account", account).hex()[:15], 16) % 10**10).zfill(10),
                str(int(_hmac("member", member).hex()[:15], 16) % 10**18).zfill(18),
                "p" + _hmac("email", email).hex()[:13] + "@mail.invalid",
                f"+1-{number // 100:03d}-555-01{number % 100:02d}",
                f"{_first('name', author)} {_last('name', author)}",
                _first("p", pid),
                _last("p", pid),
                SEEN_ON + dt.timedelta(days=shift),
                SEEN_AT + dt.timedelta(days=shift),
            )
        )
    assert got == expected
    # A shifted date column stays a date, a shifted timestamp a timestamp.
    assert rows(dsn, "SELECT pg_typeof(seen_on)::text, pg_typeof(seen_at)::text FROM charts LIMIT 1") == [
        ("date", "timestamp without time zone")
    ]


def _key_whose_pick_is(pick: Any, name: str) -> int:
    """A patient id whose keyed pick (first or last name, default domain `name`) is ``name``."""
    return next(k for k in range(1, 100_000) if pick("name", k) == name)


@pytest.mark.parametrize(
    ("part", "names", "pick"),
    [("first", FIRST_NAMES, _first), ("last", LAST_NAMES, _last)],
)
def test_a_fake_name_never_gives_the_original_back(make_db: MakeDb, part: str, names: Any, pick: Any) -> None:
    """The pick is keyed by the patient id, not by the name: it can land on the very name the row
    holds. Then a fixed other name is written: the list's first, or its second for the first itself."""
    dsn = make_db()
    on_first, on_second, on_other = (_key_whose_pick_is(pick, names[i]) for i in (0, 1, 5))
    plain = next(k for k in range(1, 10) if k not in (on_first, on_second, on_other))  # named Zed
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE people (id int PRIMARY KEY, name text)")
        conn.execute(
            "INSERT INTO people VALUES (%s, 'Zed'), (%s, %s), (%s, %s), (%s, %s), (0, NULL)",
            (plain, on_first, names[0], on_second, names[1], on_other, names[5]),
        )
    rules = {
        "tables": {"people": {"id": "keep", "name": {"strategy": "fake_name", "part": part, "key": "id"}}}
    }

    report = anonymize(dsn=dsn, rules=parse_rules(rules), salt=SALT)

    assert report.ok, report.summary
    assert dict(rows(dsn, "SELECT id, name FROM people")) == {
        plain: pick("name", plain),
        on_first: names[1],
        on_second: names[0],
        on_other: names[0],
        0: None,  # NULL stays NULL
    }


def test_a_full_fake_name_never_gives_the_original_back(make_db: MakeDb) -> None:
    dsn = make_db()
    first_pair = f"{FIRST_NAMES[0]} {LAST_NAMES[0]}"
    second_pair = f"{FIRST_NAMES[1]} {LAST_NAMES[1]}"

    def full(domain: str, key: object) -> str:
        return f"{_first(domain, key)} {_last(domain, key)}"

    # Keys whose full pick is the row's own name (a name that is also the fixed fallback, or not).
    same = {}
    for k in range(1, 200_000):
        name = full("name", k)
        if name in (first_pair, second_pair) and name not in same:
            same[name] = k
        if len(same) == 2:
            break
    other = next(k for k in range(1, 100_000) if full("name", k) not in (first_pair, second_pair))
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE people (id int PRIMARY KEY, name text)")
        conn.execute(
            "INSERT INTO people VALUES (%s, %s), (%s, %s), (%s, %s)",
            (same[first_pair], first_pair, same[second_pair], second_pair, other, full("name", other)),
        )
    rules = {"tables": {"people": {"id": "keep", "name": {"strategy": "fake_name", "key": "id"}}}}

    assert anonymize(dsn=dsn, rules=parse_rules(rules), salt=SALT).ok

    assert dict(rows(dsn, "SELECT id, name FROM people")) == {
        same[first_pair]: second_pair,
        same[second_pair]: first_pair,
        other: first_pair,
    }


def test_redact_replaces_only_the_patterns_it_is_given(make_db: MakeDb) -> None:
    dsn = make_db()
    note = "Call (415) 555-2671 or mail jane@gmail.com about the 03/15/1968 visit, SSN 123-45-6789."
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text, memo text)")
        conn.execute("INSERT INTO notes VALUES (1, %s, %s)", (note, note))
    rules = {
        "tables": {
            "notes": {
                "id": "keep",
                "body": {"strategy": "redact", "patterns": ["email", "ssn"]},
                "memo": "redact",
            }
        }
    }

    report = anonymize(dsn=dsn, rules=parse_rules(rules), salt=SALT)

    assert rows(dsn, "SELECT body, memo FROM notes") == [
        (
            "Call (415) 555-2671 or mail [EMAIL] about the 03/15/1968 visit, SSN [SSN].",
            "Call [PHONE] or mail [EMAIL] about the [DATE] visit, SSN [SSN].",
        )
    ]
    # What the narrower rule left is still found by the pattern scan, and fails the run.
    assert {(p.column, p.phone, p.date, p.email, p.ssn) for p in report.patterns} == {
        ("body", 1, 1, 0, 0),
        ("memo", 0, 0, 0, 0),
    }
    assert not report.ok


# ------------------------------------------------------------------------------------------
# Names are only names: quotes and percent signs


def test_a_table_and_columns_named_with_quotes_or_percent_signs_are_masked_and_verified(
    make_db: MakeDb,
) -> None:
    # The percent sign in the table's name and in the nulled column's too: the row counts, the
    # foreign-key check and the nulled column's leak count run queries without parameters.
    dsn = make_db()
    with connect(dsn) as conn:
        conn.execute(
            'CREATE TABLE "Intake ""2019"" 100%" (id int PRIMARY KEY, "e-mail ""home"" %" text, '
            '"fax ""home"" %" text, "Name %(x)s" text)'
        )
        conn.execute(
            'INSERT INTO "Intake ""2019"" 100%%" VALUES (1, %s, %s, %s), (2, %s, %s, %s)',
            ("ann@clinic.test", "555-0101", "Ann Lee", "bob@clinic.test", "555-0102", "Bob Ray"),
        )
        conn.execute(
            'CREATE TABLE "Visits 50%" (id int PRIMARY KEY, "intake %" int CONSTRAINT "visit % intake" '
            'REFERENCES "Intake ""2019"" 100%" (id))'
        )
        conn.execute('INSERT INTO "Visits 50%" VALUES (1, 1), (2, 2), (3, NULL)')
    rules = {
        "tables": {
            'Intake "2019" 100%': {
                "id": "keep",
                'e-mail "home" %': "email",
                'fax "home" %': "null",
                "Name %(x)s": "fake_name",
            },
            "Visits 50%": {"id": "keep", "intake %": "keep"},
        }
    }

    report = anonymize(dsn=dsn, rules=parse_rules(rules), salt=SALT)

    assert report.ok, report.error or report.summary
    assert [(c.column, c.checked, c.leaks) for c in report.leaks] == [
        ('e-mail "home" %', 2, 0),
        ('fax "home" %', 2, 0),
        ("Name %(x)s", 2, 0),
    ]
    assert [(f.name, f.columns, f.orphans) for f in report.foreign_keys] == [
        ("visit % intake", ("intake %",), 0)
    ]
    assert rows(
        dsn, 'SELECT id, "e-mail ""home"" %", "fax ""home"" %" FROM "Intake ""2019"" 100%" ORDER BY id'
    ) == [
        (1, "p" + _hmac("email", "ann@clinic.test").hex()[:16] + "@example.invalid", None),
        (2, "p" + _hmac("email", "bob@clinic.test").hex()[:16] + "@example.invalid", None),
    ]


# ------------------------------------------------------------------------------------------
# varchar(n): refused exactly when the strategy's longest value would not fit

LENGTHS = {
    # column: (strategy, its longest value)
    "mrn": ({"strategy": "hmac", "prefix": "MRN-", "length": 12}, 16),
    "email": ({"strategy": "email", "length": 12, "email_domain": "x.invalid"}, 23),
    "phone": ("phone", len("+1-200-555-0100")),
    "city": ({"strategy": "replace", "value": "Springfield"}, 11),
    "given": ({"strategy": "fake_name", "part": "first"}, max(map(len, FIRST_NAMES))),
    "family": ({"strategy": "fake_name", "part": "last"}, max(map(len, LAST_NAMES))),
    "full_name": ("fake_name", max(map(len, FIRST_NAMES)) + 1 + max(map(len, LAST_NAMES))),
}


def _sized(dsn: str, table: str, shorter_by: int) -> None:
    columns = ", ".join(f"{c} varchar({n - shorter_by})" for c, (_, n) in LENGTHS.items())
    with connect(dsn) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, {columns})")


def test_a_varchar_exactly_as_long_as_the_longest_value_is_accepted_one_shorter_is_refused(
    make_db: MakeDb,
) -> None:
    dsn = make_db()
    _sized(dsn, "fits", 0)
    _sized(dsn, "short", 1)
    rules = {
        "tables": {
            table: {"id": "keep", **{c: spec for c, (spec, _) in LENGTHS.items()}}
            for table in ("fits", "short")
        }
    }

    with pytest.raises(RulesError) as raised:
        plan(dsn=dsn, rules=parse_rules(rules))

    strategies = {"mrn": "hmac", "email": "email", "phone": "phone", "city": "replace"}
    assert raised.value.problems == tuple(
        f"short.{c}: character varying({n - 1}) is too short for "
        f"{strategies.get(c, 'fake_name')} values of {n} characters"
        for c, (_, n) in LENGTHS.items()
    )


# ------------------------------------------------------------------------------------------
# Connections


def test_each_table_is_committed_as_soon_as_it_is_masked(make_db: MakeDb) -> None:
    """One transaction per table: another session (the refresh's progress, an operator's psql) sees a
    table masked before the next one is, and a long run holds no table's locks to the end."""
    dsn = make_db()
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE a_first (id int PRIMARY KEY, email text)")
        conn.execute("CREATE TABLE b_second (id int PRIMARY KEY, email text)")
        conn.execute("INSERT INTO a_first VALUES (1, 'ann@clinic.test')")
        conn.execute("INSERT INTO b_second VALUES (1, 'bob@clinic.test')")
    seen: dict[str, list[tuple[Any, ...]]] = {}

    def progress(message: str) -> None:
        if message.startswith("masking b_second"):
            seen["a_first"] = rows(dsn, "SELECT email FROM a_first")

    rules = {"tables": {t: {"id": "keep", "email": "email"} for t in ("a_first", "b_second")}}
    assert anonymize(dsn=dsn, rules=parse_rules(rules), salt=SALT, on_progress=progress).ok

    assert seen == {"a_first": [("p" + _hmac("email", "ann@clinic.test").hex()[:16] + "@example.invalid",)]}


def test_an_unreachable_database_is_named_with_the_error_class_and_no_password() -> None:
    with pytest.raises(DatabaseUnreachable) as raised:
        connect("postgresql+psycopg://u:secret-pw@127.0.0.1:1/clinic_copy")
    assert str(raised.value) == "cannot connect to PostgreSQL database clinic_copy (OperationalError)"


@pytest.mark.parametrize(
    ("dsn", "name"),
    [
        ("postgresql+psycopg://u:pw@db.internal:5432/staging_copy", "staging_copy"),
        ("postgresql://u:pw@db.internal:5432", "(default database)"),
        ("host=db.internal dbname=staging_copy user=u password=a=b", "staging_copy"),
        ("host=db.internal user=u", "(default database)"),
        ("postgresql://u:pw@db.internal:notaport/staging_copy", "(database)"),
    ],
)
def test_the_database_is_named_by_its_name_alone(dsn: str, name: str) -> None:
    """What a report or an error says about the database: its name, never host, user or password."""
    assert database_name(dsn) == name


def test_a_sqlalchemy_url_becomes_a_libpq_url_with_its_password() -> None:
    assert libpq_dsn("postgresql+psycopg://u:s3cret@db.internal:5432/copy") == (
        "postgresql://u:s3cret@db.internal:5432/copy"
    )
    assert libpq_dsn("host=db.internal dbname=copy") == "host=db.internal dbname=copy"


# ------------------------------------------------------------------------------------------
# Misuse is an error, not silently unmasked SQL


def test_keep_has_no_masking_sql_and_a_shape_without_a_check_cannot_be_checked() -> None:
    rule = ColumnRule("public", "patients", "id", "keep", Keep())
    with pytest.raises(ValueError, match=r"^patients\.id: no SQL for strategy keep$"):
        mask_expression(rule, data_type="integer", shift_days=0)
    with pytest.raises(ValueError, match=r"^the shape 'a date' cannot be checked$"):
        unmasked_expression('"dob"', Shape(expected="a date"), "shape_0")


def test_a_connection_gives_up_after_ten_seconds_rather_than_hang(make_db: MakeDb) -> None:
    """A database endpoint that takes the connection and never answers must fail the run (or the
    staging refresh) in 10 s, not hang it: the live connection carries libpq's connect_timeout."""
    with connect(make_db()) as conn:
        assert conn.info.get_parameters()["connect_timeout"] == "10"
