"""Scheduled jobs, one module each: plain functions of (settings, gateways, store, clock) returning a report.

:func:`all_jobs` is the registry the composition root (``handlers``) hands to the core and the
scheduler: each job module declares ``SPECS: tuple[JobSpec, ...]``.
"""

from __future__ import annotations

import importlib

from bot.jobkit import JobSpec

JOB_MODULES = ("jobs.dev_cleanup", "jobs.staging_refresh", "jobs.cost")


def all_jobs() -> tuple[JobSpec, ...]:
    """Every job's spec, in module order; a name declared twice is a bug caught here."""
    specs: list[JobSpec] = []
    for module_name in JOB_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # TODO(lead): drop once every job module has landed — a missing job must fail loudly.
            if exc.name == module_name:
                continue
            raise
        # TODO(lead): likewise, make a module without SPECS an error (packages still being written).
        specs.extend(getattr(module, "SPECS", ()))
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"job declared twice: {', '.join(duplicates)}")
    return tuple(specs)
