"""When jobs run, and how one run goes: the job runner, the leader-elected scheduler, `jobs list`.

- :class:`JobRunner` runs one job now: records the run, holds the job's lease so it never runs twice at
  once, builds the :class:`~bot.job.JobContext`, posts the report to the ops channel and times it.
- :class:`JobScheduler` fires the cron schedules of ``config.jobs`` (APScheduler), but only while this
  replica holds the leader lease (a renewable, expiring row in ``change_leases``). On becoming leader
  it catches up, once, the most recent fire of each job missed within the misfire grace.
  ``tick()`` and ``catch_up()`` do all the time-dependent work against the injected clock, so tests
  call them directly instead of waiting for APScheduler.

A scheduled fire is recorded with its ``scheduled_for`` time, unique per job in ``job_runs``: two
replicas that both believe they lead (one's lease just expired) still run each fire once.

Every run is audited where it starts and ends (:meth:`JobRunner.run`), as its actor: ``scheduler``
for a scheduled or caught-up fire, otherwise whoever asked (``cli:<OS user>``, a Slack user). The
job gets the same actor through ``JobContext.audit`` for each change it makes.

Modules: ``runner`` (one run), ``leader`` (the scheduler), ``schedules`` (cron triggers and fires),
``commands`` (`jobs list`, `jobs run`), ``leases``, ``run_record``, ``living_message``.
"""

from bot.scheduler.commands import EARLIER_SHOWN, list_jobs, start_job
from bot.scheduler.leader import JobScheduler
from bot.scheduler.leases import JOB_LEASE_TTL, LEADER_KEY, job_lease_key, replica_id
from bot.scheduler.run_record import SCHEDULER_ACTOR, report_record, run_actor
from bot.scheduler.runner import JobRunner, find_job
from bot.scheduler.schedules import build_triggers, describe_schedule, fires_between, wall_clock_fire

__all__ = [
    "EARLIER_SHOWN",
    "JOB_LEASE_TTL",
    "LEADER_KEY",
    "SCHEDULER_ACTOR",
    "JobRunner",
    "JobScheduler",
    "build_triggers",
    "describe_schedule",
    "find_job",
    "fires_between",
    "job_lease_key",
    "list_jobs",
    "replica_id",
    "report_record",
    "run_actor",
    "start_job",
    "wall_clock_fire",
]
