"""`menotime-bot demo`: the whole bot, offline — simulated AWS, SQLite in a temporary folder, and
the console standing in for Slack — with a guided tour of what on-call and developers do."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot.config import Config, load_config
from bot.console import Console
from bot.core import Core, build_core
from bot.identity import StaticGroups
from bot.settings import Settings
from bot.simulator import Simulator

# Who is who in the demo: Slack user IDs as an operator would write them in MENOTIME_CONFIG.
DEVELOPER, ONCALL, RELEASE_MANAGER, OPERATOR, GUEST = "U0DEMODEV", "U0DEMOONCALL", "U0DEMORM", "U0DEMOOPS", "U0DEMOGUEST"
OPS_GROUP = "S0DEMOOPS"

DEMO_ROLES = {
    "roles": {
        "developer": {"users": [DEVELOPER]},
        "oncall": {"users": [ONCALL]},
        "release_manager": {"users": [RELEASE_MANAGER]},
        "operations": {"groups": [OPS_GROUP]},
    }
}


@dataclass(frozen=True)
class Step:
    title: str
    user: str
    line: str


TOUR: tuple[Step, ...] = (
    Step("Someone with no role asks for help: only help and whoami are open to them", GUEST, "help"),
    Step("…and is refused anything else, with the role that would allow it", GUEST, "status prod"),
    Step("A developer sees their roles and what they may do per environment", DEVELOPER, "whoami"),
    Step("On-call checks theirs", ONCALL, "whoami"),
    Step("Help shows each person only what they may use", DEVELOPER, "help"),
    Step("Details of one command", DEVELOPER, "help status"),
    Step("Status of dev", DEVELOPER, "status dev"),
    Step("Status of staging", DEVELOPER, "status staging"),
    Step("Status of prod: tasks, image, autoscaling bounds, database, the alarm in ALARM", ONCALL, "status prod"),
    Step("All three environments in one answer", OPERATOR, "status all"),
    Step("A typo gets a suggestion", DEVELOPER, "stauts prod"),
    Step("An unknown environment gets the valid choices", DEVELOPER, "status prd"),
    Step("Every decision, allowed or denied, is in the audit trail", ONCALL, "history 8"),
)


@contextmanager
def demo_core(workdir: Path) -> Iterator[tuple[Core, Simulator]]:
    """A core over a freshly seeded simulator and a new SQLite file in ``workdir``."""
    config: Config = load_config(overrides=DEMO_ROLES)
    settings = Settings(database_url=f"sqlite:///{workdir / 'menotime-ops.db'}", aws_region="us-west-1")
    with Simulator(region=settings.aws_region) as sim:
        sim.seed(config)
        core = build_core(
            settings,
            config=config,
            aws=sim.gateway(),
            groups=StaticGroups({OPS_GROUP: {OPERATOR}}),
            migrate_schema=True,
        )
        try:
            yield core, sim
        finally:
            core.close()


def run_demo(*, interactive: bool = False, out: TextIO | None = None, stdin: TextIO | None = None) -> int:
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="menotime-demo-") as tmp:
        out.write("MenoTime Ops demo — simulated AWS (moto), SQLite in a temporary folder, this console as Slack.\n")
        out.write(f"People: developer {DEVELOPER}, on-call {ONCALL}, release manager {RELEASE_MANAGER}, "
                  f"operations (via user group {OPS_GROUP}) {OPERATOR}, no role {GUEST}.\n\n")
        with demo_core(Path(tmp)) as (core, _sim):
            console = Console(core, user_id=DEVELOPER, out=out)
            for number, step in enumerate(TOUR, 1):
                out.write(f"── {number}. {step.title}\n")
                console.run(step.line, user_id=step.user)
            report = core.audit.verify()
            out.write(f"── {len(TOUR) + 1}. The audit chain verifies: {report.checked} events, "
                      f"{'intact' if report.ok else 'BROKEN: ' + '; '.join(report.problems)}\n\n")
            if interactive:
                console.interact(stdin)
            out.write("Demo finished.\n")
            return 0 if report.ok else 1
