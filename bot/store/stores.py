"""The repositories, built once over the database by the composition (bot/compose.py) and handed
to every capability through the core, instead of each function making its own."""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.alarm_threads import AlarmThreads
from bot.store.changes import Freezes, Leases, Requests
from bot.store.db import Database
from bot.store.deploys import DeployLog
from bot.store.jobruns import JobRuns


@dataclass(frozen=True)
class Stores:
    requests: Requests
    leases: Leases
    freezes: Freezes
    deploys: DeployLog
    alarm_threads: AlarmThreads
    job_runs: JobRuns

    @classmethod
    def over(cls, db: Database) -> Stores:
        return cls(
            requests=Requests(db),
            leases=Leases(db),
            freezes=Freezes(db),
            deploys=DeployLog(db),
            alarm_threads=AlarmThreads(db),
            job_runs=JobRuns(db),
        )
