"""Scheduled jobs, one module each: plain functions of (settings, gateways, store, clock) returning a report.

:func:`all_jobs` is the registry the composition root (``handlers``) hands to the core and the
scheduler: each job module declares ``SPECS: tuple[JobSpec, ...]``.
"""

from __future__ import annotations

from bot.job import JobSpec


def all_jobs() -> tuple[JobSpec, ...]:
    """Every job's spec, in module order; a name declared twice is a bug caught here."""
    from jobs import cost, dev_cleanup, staging_refresh  # the jobs import the core, not the reverse

    specs = (*dev_cleanup.SPECS, *staging_refresh.SPECS, *cost.SPECS)
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"job declared twice: {', '.join(duplicates)}")
    return specs
