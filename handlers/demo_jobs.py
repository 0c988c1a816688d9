"""The scheduled jobs in the offline demo (and in `jobs run --simulate`): what the simulator needs
for them, and the tour's closing steps — a dev-cleanup dry run, the staging refresh when a
PostgreSQL server is at hand, the jobs list, and Monday's cost digest."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from typing import TextIO

import jobs
from bot.clock import FrozenClock
from bot.console import Console
from bot.core import Core
from bot.cost.simdata import SIMULATOR_CONFIG_OVERRIDES, demo_cost_data
from bot.demo import OPERATOR, Extension, Scene, Step
from bot.render import PACIFIC, when
from bot.simulator import Simulator
from jobs.dev_cleanup.clutter import seed_dev_clutter
from jobs.staging_refresh import prepare_simulated_refresh
from jobs.staging_refresh.simulated import postgres_unreachable, synthetic_copy

# Where the demo looks for a PostgreSQL server to refresh staging into (it skips the step without).
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_url() -> str:
    return (
        os.environ.get("MENOTIME_DEMO_POSTGRES_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or DEFAULT_POSTGRES
    )


def prepare(core: Core, sim: Simulator) -> Callable[[], None] | None:
    """Old and fresh dev clutter for the cleanup; today's Cost Explorer answers; for the refresh a
    prod snapshot, a locked-down security group, the secrets, and — when a PostgreSQL server is
    reachable — a synthetic MenoTime database playing the restored copy (dropped afterwards)."""
    gateway = sim.gateway()
    seed_dev_clutter(gateway, core.config, now=core.clock.now())
    demo_cost_data(gateway, core.clock, core.config)
    if postgres_unreachable(postgres_url()) is not None:
        return None
    with ExitStack() as stack:  # dropped at once if anything below fails, else when the demo ends
        dsn = stack.enter_context(synthetic_copy(postgres_url()))
        options = prepare_simulated_refresh(gateway, core.config, now=core.clock.now(), dsn_for_next=dsn)
        core.config.jobs.options["staging-refresh"] = options.model_dump(mode="json")
        return stack.pop_all().close


def _refresh(_core: Core, _sim: Simulator, console: Console, out: TextIO) -> None:
    why = postgres_unreachable(postgres_url())
    if why is not None:
        out.write(f"  (skipped: the refresh needs PostgreSQL, and {why})\n")
        return
    console.handle("jobs run staging-refresh", user_id=OPERATOR)


def _cost_digest(core: Core, sim: Simulator, console: Console, out: TextIO) -> None:
    clock = core.clock
    assert isinstance(clock, FrozenClock)  # the demo's
    local = clock.now().astimezone(PACIFIC)
    monday = (local + timedelta(days=7 - local.weekday())).replace(hour=9, minute=0, second=0, microsecond=0)
    out.write(f"  (demo clock: {when(clock.advance(seconds=(monday - local).total_seconds()))})\n")
    demo_cost_data(sim.gateway(), clock, core.config)  # what Cost Explorer would answer today
    console.handle("jobs run cost-digest", user_id=OPERATOR)


def extension() -> Extension:
    return Extension(
        jobs=jobs.all_jobs(),  # looked up now, not at import: tests swap the list
        config_overrides=SIMULATOR_CONFIG_OVERRIDES,
        prepare=prepare,
        steps=(
            Step(
                "Operations dry-runs Sunday's dev cleanup: what it would mark and delete; nothing changes",
                OPERATOR,
                "jobs run dev-cleanup --dry-run",
            ),
            Scene(
                "Sunday 04:00's staging refresh, started by hand: prod's snapshot restored, anonymized, "
                "verified, swapped in",
                _refresh,
            ),
            Step("The jobs, when they run next and how they last ended", OPERATOR, "jobs"),
            Scene("Monday 09:00: the weekly cost digest lands in #menotime-ops", _cost_digest),
        ),
    )
