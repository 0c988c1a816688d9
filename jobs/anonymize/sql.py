"""SQL building blocks: connections, the keyed hash, and one masking expression per strategy.

The keyed hash is HMAC-SHA256 (RFC 2104) computed by PostgreSQL's built-in ``sha256(bytea)``
(PostgreSQL 11+), so no extension is needed (pgcrypto may be missing or not installable on a
restored RDS instance)::

    HMAC(K, m) = sha256((K xor opad) || sha256((K xor ipad) || m))

The padded keys ``K xor ipad`` and ``K xor opad`` are computed here once per run and sent as bound
parameters (never spliced into the SQL text, so they do not appear in ``pg_stat_activity``). A plain
``sha256(salt || value)`` would also be keyed, but HMAC is the construction with a security proof
and no length-extension weakness, at the cost of one more ``sha256`` call per value.

Two keys are derived from the operator's salt: one for pseudonyms, one for the verification
hashes of the original values, so the scratch schema holds nothing that equals a pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg.sql
from sqlalchemy.engine import make_url

from jobs.anonymize.names import FIRST_NAMES, LAST_NAMES
from jobs.anonymize.rules import ColumnRule, DateShift, Email, FakeName, Hmac, Phone, Redact, Replace, Shape

if TYPE_CHECKING:
    from jobs.anonymize.report import LeakCheck

BLOCK = 64  # SHA-256 block size, bytes

# PostgreSQL ARE syntax, case-sensitive with explicit classes (case-insensitive matching is several
# times slower). Used both to redact and to verify. A date is numeric (03/15/1968, 1968-03-15) or
# a word then day and year (March 15, 1968; Mar. 15th 1968) or day, word, year (15 March 1968):
# any word, not just month names, because over-redacting costs nothing and the alternation of
# month names is slow.
REGEX = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "ssn": r"\m[0-9]{3}-[0-9]{2}-[0-9]{4}\M",
    "date": (
        r"\m([0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{2}([0-9]{2})?|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2})\M"
        r"|\m[A-Za-z]{3,9}\.? [0-9]{1,2}(st|nd|rd|th)?,? [0-9]{4}\M|\m[0-9]{1,2} [A-Za-z]{3,9}\.?,? [0-9]{4}\M"
    ),
    "phone": r"(\+?1[-. ]?)?(\([0-9]{3}\) ?|\m[0-9]{3}[-. ]?)[0-9]{3}[-. ]?[0-9]{4}\M",
}
# Redaction order: an SSN or a date must be replaced before the looser phone pattern sees it.
REDACT_ORDER = ("email", "ssn", "date", "phone")
PLACEHOLDER = {"email": "[EMAIL]", "ssn": "[SSN]", "date": "[DATE]", "phone": "[PHONE]"}

TEXT_TYPES = {"text", "character varying", "character", "citext", "name"}
DATE_TYPES = {"date", "timestamp without time zone", "timestamp with time zone"}

# How the leak check compares a masked column with the originals (see report.ColumnLeak). Phone
# numbers are checked row by row: their 80,000 fictional values collide by chance between patients
# (harmlessly), and a fictional number can equal no real patient's.
CHECK: dict[str, LeakCheck] = {
    "hmac": "set",
    "email": "set",
    "phone": "row",
    "fake_name": "row",
    "date_shift": "row",
    "replace": "row",
    "null": "not_null",
}
UNIQUE_SAFE = {"hmac", "email", "null", "keep"}  # strategies whose output keeps a unique column unique


class DatabaseUnreachable(Exception):
    """The database could not be reached; nothing was changed. The message holds no credentials."""


def libpq_dsn(dsn: str) -> str:
    """A libpq connection string from a libpq URL/key=value string or a SQLAlchemy URL."""
    if "://" not in dsn:
        return dsn
    url = make_url(dsn)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def database_name(dsn: str) -> str:
    try:
        if "://" in dsn:
            return make_url(dsn).database or "(default database)"
        params = dict(part.split("=", 1) for part in dsn.split() if "=" in part)
        return params.get("dbname", "(default database)")
    except Exception:  # noqa: BLE001 - a DSN we cannot parse is never echoed
        return "(database)"


def connect(dsn: str) -> psycopg.Connection[Any]:
    """An autocommit connection whose string literals mean what they say: a database or role may
    default to ``standard_conforming_strings = off``, where a backslash in '...' is an escape."""
    try:
        conn = psycopg.connect(libpq_dsn(dsn), autocommit=True, connect_timeout=10)
    except (psycopg.Error, ValueError) as exc:
        raise DatabaseUnreachable(
            f"cannot connect to PostgreSQL database {database_name(dsn)} ({type(exc).__name__})"
        ) from None
    conn.execute("SET standard_conforming_strings = on")
    return conn


def ident(name: str) -> str:
    """A quoted identifier, also safe inside a psycopg query string (``%`` doubled)."""
    return '"' + name.replace('"', '""').replace("%", "%%") + '"'


def literal(value: str) -> str:
    """A string literal, also safe inside a psycopg query string (``%`` doubled). psycopg writes one
    with a backslash as ``E'...'``, which means the same whatever ``standard_conforming_strings`` is."""
    return psycopg.sql.Literal(value).as_string(None).replace("%", "%%")


def qualified(schema: str, table: str) -> str:
    return f"{ident(schema)}.{ident(table)}"


@dataclass(frozen=True)
class Keys:
    """The bound parameters every statement of a run may use."""

    params: dict[str, Any]

    @classmethod
    def from_salt(cls, salt: bytes) -> Keys:
        params: dict[str, Any] = {}
        for purpose in ("p", "v"):  # pseudonyms, verification
            key = hmac.new(salt, f"menotime-anonymize:{purpose}".encode(), hashlib.sha256).digest()
            padded = key.ljust(BLOCK, b"\0")
            params[f"k{purpose}_i"] = bytes(b ^ 0x36 for b in padded)
            params[f"k{purpose}_o"] = bytes(b ^ 0x5C for b in padded)
        params["first_names"] = list(FIRST_NAMES)
        params["last_names"] = list(LAST_NAMES)
        params.update({f"re_{name}": pattern for name, pattern in REGEX.items()})
        return cls(params)

    @staticmethod
    def python_hmac(salt: bytes, purpose: str, message: bytes) -> bytes:
        """The same HMAC in Python, for tests."""
        key = hmac.new(salt, f"menotime-anonymize:{purpose}".encode(), hashlib.sha256).digest()
        return hmac.new(key, message, hashlib.sha256).digest()


def keyed(message_sql: str, purpose: str = "p") -> str:
    """HMAC-SHA256 of the text expression ``message_sql`` under the run's key (bytea)."""
    return (
        f"sha256(%(k{purpose}_o)s::bytea || sha256(%(k{purpose}_i)s::bytea || "
        f"convert_to({message_sql}, 'UTF8')))"
    )


def verify_hash(column_sql: str) -> str:
    return keyed(f"({column_sql})::text", "v")


Shared = dict[tuple[str, str], str]  # (domain, key SQL) -> a column holding its keyed hash


def pseudo_hash(domain: str, value_sql: str) -> str:
    """The pseudonym key's HMAC of ``domain:value``: the seed of every pseudonym."""
    return keyed(f"{literal(domain)} || ':' || ({value_sql})::text")


def hash_inputs(rule: ColumnRule) -> tuple[str, str] | None:
    """(domain, key SQL) whose keyed hash the rule's expression uses, if any."""
    opts = rule.options
    if isinstance(opts, FakeName | DateShift):
        return opts.domain, ident(opts.key) if opts.key else ident(rule.column)
    if isinstance(opts, Hmac | Email | Phone):
        return opts.domain, ident(rule.column)
    return None


def _int(hash_sql: str, byte: int) -> str:
    """A non-negative 24-bit integer from 3 bytes of a hash, from byte ``byte`` (0-based)."""
    return f"('x' || encode(substring({hash_sql} FROM {byte + 1} FOR 3), 'hex'))::bit(24)::int"


def _hex(hash_sql: str, length: int) -> str:
    """The first ``length`` hex digits of a hash (only the bytes needed are encoded)."""
    encoded = f"encode(substring({hash_sql} FROM 1 FOR {(length + 1) // 2}), 'hex')"
    return encoded if length % 2 == 0 else f"substr({encoded}, 1, {length})"


def _not_null(column: str, expression: str) -> str:
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE {expression} END"


def mask_expression(
    rule: ColumnRule, *, data_type: str, shift_days: int, shared: Shared | None = None
) -> str:
    """The SQL expression that replaces ``rule.column`` in the table's UPDATE. NULL stays NULL.
    ``shared`` names columns already holding keyed hashes that several expressions use."""
    col = ident(rule.column)
    opts = rule.options
    inputs = hash_inputs(rule)
    digest = ""
    if inputs is not None:
        digest = (shared or {}).get(inputs) or pseudo_hash(*inputs)
    if rule.strategy == "null":
        return "NULL"
    if isinstance(opts, Replace):
        return _not_null(col, literal(opts.value))
    if isinstance(opts, Hmac):
        if opts.alphabet == "hex":
            body = _hex(digest, opts.length)
        else:  # up to 18 digits from 60 bits
            body = (
                f"lpad(((('x' || {_hex(digest, 15)})::bit(60)::bigint) "
                f"%% {10**opts.length}::bigint)::text, {opts.length}, '0')"
            )
        return f"{literal(opts.prefix)} || {body}" if opts.prefix else body
    if isinstance(opts, Email):
        return f"'p' || {_hex(digest, opts.length)} || {literal('@' + opts.email_domain)}"
    if isinstance(opts, Phone):
        # 200..999 area code and 00..99 line: +1-AAA-555-01XX, numbers reserved for fiction.
        number = f"(20000 + {_int(digest, 0)} %% 80000)"
        return f"'+1-' || to_char({number}, 'FM000\"-555-01\"00')"
    if isinstance(opts, FakeName):
        return _fake_name(col, opts, digest)
    if isinstance(opts, DateShift):
        shifts = [*range(-shift_days, 0), *range(1, shift_days + 1)]  # never 0
        array = "ARRAY[" + ",".join(map(str, shifts)) + "]"
        pick = f"({array})[1 + {_int(digest, 12)} %% {len(shifts)}]"
        if data_type == "date":
            return f"{col} + {pick}"
        return f"{col} + make_interval(days => {pick})"
    if isinstance(opts, Redact):
        expression = col
        for name in REDACT_ORDER:
            if name in opts.patterns:
                expression = f"regexp_replace({expression}, %(re_{name})s, {literal(PLACEHOLDER[name])}, 'g')"
        return expression
    raise ValueError(f"{rule.where}: no SQL for strategy {rule.strategy}")  # keep is never masked


def _fake_name(col: str, opts: FakeName, digest: str) -> str:
    first = f"(%(first_names)s::text[])[1 + {_int(digest, 0)} %% {len(FIRST_NAMES)}]"
    last = f"(%(last_names)s::text[])[1 + {_int(digest, 4)} %% {len(LAST_NAMES)}]"
    if opts.part == "first":
        pick, fallback = first, (FIRST_NAMES[0], FIRST_NAMES[1])
    elif opts.part == "last":
        pick, fallback = last, (LAST_NAMES[0], LAST_NAMES[1])
    else:
        pick = f"{first} || ' ' || {last}"
        fallback = (f"{FIRST_NAMES[0]} {LAST_NAMES[0]}", f"{FIRST_NAMES[1]} {LAST_NAMES[1]}")
    # Never the original name back: a pick equal to the original becomes a fixed other name.
    other = f"CASE WHEN {col} = {literal(fallback[0])} THEN {literal(fallback[1])} ELSE {literal(fallback[0])} END"
    return _not_null(col, f"coalesce(nullif({pick}, {col}), {other})")


def unmasked_expression(column_sql: str, shape: Shape, param: str) -> tuple[str, Any]:
    """A condition true for a value that is not of ``shape``, and the bound parameter it uses as
    ``%(param)s`` (None if none). Every strategy leaves NULL as NULL, so NULL is of every shape."""
    if shape.null:
        return f"{column_sql} IS NOT NULL", None
    if shape.values:
        return f"{column_sql} IS NOT NULL AND {column_sql}::text <> ALL(%({param})s::text[])", list(
            shape.values
        )
    if shape.pattern is not None:
        return f"{column_sql} IS NOT NULL AND {column_sql}::text !~ %({param})s", shape.pattern
    raise ValueError(f"the shape {shape.expected!r} cannot be checked")


def scan_expression(column_sql: str, pattern: str) -> str:
    return f"{column_sql} ~ %(re_{pattern})s"


def max_output_length(rule: ColumnRule) -> int | None:
    """The longest value a strategy writes (for varchar(n) columns), or None if unbounded/unchanged."""
    opts = rule.options
    if isinstance(opts, Hmac):
        return len(opts.prefix) + opts.length
    if isinstance(opts, Email):
        return 2 + opts.length + len(opts.email_domain)
    if rule.strategy == "phone":
        return len("+1-200-555-0100")
    if isinstance(opts, Replace):
        return len(opts.value)
    if isinstance(opts, FakeName):
        first, last = max(map(len, FIRST_NAMES)), max(map(len, LAST_NAMES))
        return {"first": first, "last": last}.get(opts.part, first + 1 + last)
    return None
