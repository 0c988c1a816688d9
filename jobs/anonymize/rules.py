"""Anonymization rules: per table and column, one strategy with its options, loaded from YAML.

A rules file looks like::

    schemas: [public]          # the first is the schema of unqualified table names (default: public);
                               # every column of every schema must be ruled, listed here or not
    date_shift_days: 30        # default window of date_shift: ±N days, never 0
    tables:
      patients:
        id: keep                                   # declared safe
        email: email                               # strategy with default options
        mrn: {strategy: hmac, prefix: "MRN-", length: 16, domain: mrn}

Loading checks the file alone (syntax, strategies, options); :func:`jobs.anonymize.plan.plan`
then checks it against the live schema. Every problem is one line naming the table and column.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.errors import BadInput
from jobs.anonymize.names import FIRST_NAMES, LAST_NAMES

DEFAULT_RULES = Path(__file__).with_name("menotime_rules.yaml")
PATTERNS: tuple[Literal["email", "phone", "ssn", "date"], ...] = ("email", "phone", "ssn", "date")


class RulesError(BadInput):
    """The rules (or the rules against the live schema) are unusable; nothing was run."""

    def __init__(self, problems: list[str] | tuple[str, ...], *, source: str = "rules") -> None:
        self.problems = tuple(problems)
        self.source = source
        super().__init__(
            f"{source}: {len(self.problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


@dataclass(frozen=True)
class Shape:
    """What every non-NULL value a strategy writes looks like, so that a masked column can be checked
    without the originals (``anonymize --verify-only``, the staging refresh): only NULL (``null``),
    one of ``values``, or text matching ``pattern`` whole (a regular expression valid in PostgreSQL's
    ARE and Python's ``re`` alike). With none of them the shape proves nothing (a shifted date looks
    like any date): the column is reported as not checkable."""

    expected: str  # what the operator reads: "p<16 hex>@example.invalid"
    null: bool = False
    values: tuple[str, ...] = ()
    pattern: str | None = None

    @property
    def checkable(self) -> bool:
        return self.null or bool(self.values) or self.pattern is not None


def _one_of(words: tuple[str, ...]) -> str:
    return "(" + "|".join(map(re.escape, words)) + ")"


class _Options(BaseModel):
    """A strategy's options. Each strategy also declares :meth:`shape`, next to its options, so that
    a strategy cannot be added without saying what its output looks like."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "shape" not in cls.__dict__:
            raise TypeError(
                f"strategy options {cls.__name__} must define shape(): what every value it writes "
                "looks like (or None if it masks nothing)"
            )

    def shape(self) -> Shape | None:
        """The shape of the values this strategy writes; None if it writes none to check (keep, redact)."""
        raise NotImplementedError


class Keep(_Options):
    """Declared safe: left as it is (still scanned for PHI patterns if it is text)."""

    reason: str = ""

    def shape(self) -> Shape | None:
        return None  # not masked


class Null(_Options):
    """Set to NULL (the column must be nullable)."""

    def shape(self) -> Shape | None:
        return Shape(expected="NULL", null=True)


class FakeName(_Options):
    """A plausible name from a fixed list, picked by the keyed hash of ``key`` (default: the value)."""

    part: Literal["first", "last", "full"] = "full"
    key: str | None = None
    domain: str = "name"

    def shape(self) -> Shape | None:
        if self.part == "first":
            return Shape(expected="a first name of the fake-name list", values=FIRST_NAMES)
        if self.part == "last":
            return Shape(expected="a last name of the fake-name list", values=LAST_NAMES)
        return Shape(
            expected="<first> <last> of the fake-name lists",
            pattern=f"^{_one_of(FIRST_NAMES)} {_one_of(LAST_NAMES)}$",
        )


class Hmac(_Options):
    """``prefix`` + the first ``length`` hex characters (or digits) of HMAC-SHA256(salt, domain:value)."""

    prefix: str = ""
    length: int = Field(default=16, ge=8, le=64)
    alphabet: Literal["hex", "digits"] = "hex"
    domain: str = "hmac"

    def shape(self) -> Shape | None:
        if self.alphabet == "digits" and not self.prefix:
            # An NPI or an account number is already <n digits>: the shape cannot tell masked from raw.
            return Shape(
                expected=f"<{self.length} digits>: not checkable without the originals (raw values "
                "have the same shape)"
            )
        chars = "[0-9a-f]" if self.alphabet == "hex" else "[0-9]"
        return Shape(
            expected=f"{self.prefix}<{self.length} {self.alphabet}>",
            pattern=f"^{re.escape(self.prefix)}{chars}{{{self.length}}}$",
        )


class Email(_Options):
    """``p<hex>@example.invalid`` from the keyed hash of the address (same address, same pseudonym)."""

    length: int = Field(default=16, ge=12, le=40)
    email_domain: str = "example.invalid"
    domain: str = "email"

    def shape(self) -> Shape | None:
        return Shape(
            expected=f"p<{self.length} hex>@{self.email_domain}",
            pattern=f"^p[0-9a-f]{{{self.length}}}@{re.escape(self.email_domain)}$",
        )


class Phone(_Options):
    """``+1-<area>-555-01xx``: North American numbers reserved for fiction, keyed by the original."""

    domain: str = "phone"

    def shape(self) -> Shape | None:
        return Shape(expected="+1-<200..999>-555-01xx", pattern=r"^\+1-[2-9][0-9]{2}-555-01[0-9]{2}$")


class DateShift(_Options):
    """Moved by ±1..days days; the shift comes from the keyed hash of ``key`` (a patient id), so a
    patient's dates move together in every table that uses the same ``domain``."""

    key: str
    domain: str = "patient"
    days: int | None = Field(default=None, ge=1, le=3650)

    def shape(self) -> Shape | None:
        return Shape(expected="a date moved by a few days: not checkable without the originals")


class Redact(_Options):
    """Emails, phone numbers, SSNs and dates inside free text replaced by [EMAIL], [PHONE], ..."""

    patterns: tuple[Literal["email", "phone", "ssn", "date"], ...] = PATTERNS

    def shape(self) -> Shape | None:
        return None  # free text keeps its shape: the PHI pattern scan checks what is left in it


class Replace(_Options):
    """The whole value replaced by a constant (addresses, free text nobody needs in staging)."""

    value: str

    def shape(self) -> Shape | None:
        shown = self.value if len(self.value) <= 40 else self.value[:39] + "…"
        return Shape(expected=f"the constant “{shown}”", values=(self.value,))


STRATEGIES: dict[str, type[_Options]] = {
    "keep": Keep,
    "null": Null,
    "fake_name": FakeName,
    "hmac": Hmac,
    "email": Email,
    "phone": Phone,
    "date_shift": DateShift,
    "redact": Redact,
    "replace": Replace,
}


@dataclass(frozen=True)
class ColumnRule:
    schema: str
    table: str
    column: str
    strategy: str
    options: _Options

    @property
    def where(self) -> str:
        """``patients.email`` (``schema.table.column`` outside ``public``)."""
        return f"{table_label(self.schema, self.table)}.{self.column}"

    @property
    def masks(self) -> bool:
        return self.strategy != "keep"


@dataclass(frozen=True)
class Rules:
    source: str
    schemas: tuple[str, ...]
    date_shift_days: int
    # (schema, table) -> column -> rule, in file order
    tables: Mapping[tuple[str, str], Mapping[str, ColumnRule]] = field(default_factory=dict)

    def rule(self, schema: str, table: str, column: str) -> ColumnRule | None:
        return self.tables.get((schema, table), {}).get(column)

    def shift_days(self, rule: ColumnRule) -> int:
        assert isinstance(rule.options, DateShift)
        return rule.options.days or self.date_shift_days


def table_label(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


class _UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]  # no PyYAML stubs in the lock: its base is Any
    """YAML's safe loader, except that a key given twice in one mapping is an error: PyYAML keeps the
    last one silently, so a second ``email: keep`` further down would undo a reviewed ``email: email``."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"`{key}` is given twice", key_node.start_mark
            )
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_rules(path: str | Path | None = None) -> Rules:
    """The rules in ``path`` (default: the packaged MenoTime rules). Raises :class:`RulesError`
    listing every problem of the file, one line each."""
    source = Path(path) if path is not None else DEFAULT_RULES
    try:
        data = yaml.load(source.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except OSError as exc:
        raise RulesError(
            [f"cannot read the file ({exc.strerror or type(exc).__name__})"], source=str(source)
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        twice = f": {problem}" if isinstance(problem, str) and problem.endswith("is given twice") else ""
        raise RulesError([f"not valid YAML{where}{twice}"], source=str(source)) from None
    return parse_rules(data, source=str(source))


def parse_rules(data: Any, *, source: str = "rules") -> Rules:
    """Rules from an already parsed mapping (a config section, a test)."""
    if not isinstance(data, dict):
        raise RulesError(["the top level must be a mapping with `tables:`"], source=source)
    problems: list[str] = []
    unknown = sorted(set(data) - {"schemas", "date_shift_days", "tables"})
    problems += [f"unknown key `{key}` (valid: schemas, date_shift_days, tables)" for key in unknown]
    schemas = data.get("schemas", ["public"])
    if not (isinstance(schemas, list) and schemas and all(isinstance(s, str) and s for s in schemas)):
        problems.append("`schemas` must be a non-empty list of schema names")
        schemas = ["public"]
    days = data.get("date_shift_days", 30)
    if not (isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 3650):
        problems.append("`date_shift_days` must be a whole number of days between 1 and 3650")
        days = 30
    tables = data.get("tables")
    parsed: dict[tuple[str, str], dict[str, ColumnRule]] = {}
    if not isinstance(tables, dict) or not tables:
        problems.append("`tables` must map each table to its columns' rules")
        tables = {}
    for table_name, columns in tables.items():
        schema, _, table = str(table_name).rpartition(".")
        schema = schema or schemas[0]
        label = table_label(schema, table)
        if not isinstance(columns, dict) or not columns:
            problems.append(f"{label}: must map each column to a strategy (e.g. `id: keep`)")
            continue
        if (
            schema,
            table,
        ) in parsed:  # `patients` and `public.patients`: one would silently replace the other
            problems.append(f"{label}: the table is named twice in the rules")
            continue
        parsed[(schema, table)] = {}
        for column, spec in columns.items():
            rule = _column_rule(schema, table, str(column), spec, problems)
            if rule is not None:
                parsed[(schema, table)][str(column)] = rule
    if problems:
        raise RulesError(problems, source=source)
    return Rules(source=source, schemas=tuple(schemas), date_shift_days=days, tables=parsed)


def _column_rule(schema: str, table: str, column: str, spec: Any, problems: list[str]) -> ColumnRule | None:
    where = f"{table_label(schema, table)}.{column}"
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, dict) and isinstance(spec.get("strategy"), str):
        name, options = spec["strategy"], {k: v for k, v in spec.items() if k != "strategy"}
    elif spec is None:
        problems.append(f'{where}: no strategy (for the null strategy write "null" in quotes)')
        return None
    else:
        problems.append(f"{where}: give a strategy name or a mapping with `strategy:` ({_choices()})")
        return None
    model = STRATEGIES.get(name)
    if model is None:
        close = difflib.get_close_matches(name, STRATEGIES, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        problems.append(f"{where}: unknown strategy `{name}` ({hint}valid: {_choices()})")
        return None
    try:
        parsed = model.model_validate(options)
    except ValidationError as exc:
        for error in exc.errors():
            option = ".".join(str(p) for p in error["loc"]) or "options"
            problems.append(f"{where}: {name} option `{option}`: {error['msg'].lower()}")
        return None
    return ColumnRule(schema=schema, table=table, column=column, strategy=name, options=parsed)


def _choices() -> str:
    return ", ".join(STRATEGIES)
