"""Anonymization of a MenoTime PostgreSQL database, in plain set-based SQL, and its verification.

The stable API (the staging refresh and ``menotime-bot anonymize`` call only these)::

    rules = load_rules(path_or_None)                       # default: the packaged MenoTime rules
    the_plan = plan(dsn=dsn, rules=rules)                  # raises RulesError listing every problem
    report = anonymize(dsn=dsn, rules=rules, salt=salt)    # AnonymizationReport; report.ok gates the swap
    report = anonymize(dsn=dsn, rules=rules, salt=None, verify_only=True)  # shapes, not originals
    counts = create_synthetic(dsn=dsn, patients=300, seed=7)

``dsn`` is a libpq URL or key=value string, or a SQLAlchemy ``postgresql+psycopg://`` URL.
"""

from jobs.anonymize.engine import DatabaseUnreachable, anonymize
from jobs.anonymize.plan import Plan, plan
from jobs.anonymize.report import (
    AnonymizationReport,
    ColumnLeak,
    ColumnShape,
    ForeignKeyCheck,
    PatternHits,
    TableCount,
)
from jobs.anonymize.rules import DEFAULT_RULES, ColumnRule, Rules, RulesError, Shape, load_rules, parse_rules
from jobs.anonymize.synthetic import create_synthetic

__all__ = [
    "DEFAULT_RULES",
    "AnonymizationReport",
    "ColumnLeak",
    "ColumnRule",
    "ColumnShape",
    "DatabaseUnreachable",
    "ForeignKeyCheck",
    "PatternHits",
    "Plan",
    "Rules",
    "RulesError",
    "Shape",
    "TableCount",
    "anonymize",
    "create_synthetic",
    "load_rules",
    "parse_rules",
    "plan",
]
