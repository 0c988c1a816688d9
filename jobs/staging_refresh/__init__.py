"""Weekly staging refresh: the latest automated prod snapshot, restored, anonymized, verified, swapped in.

See :mod:`jobs.staging_refresh.flow` for the steps and how a crashed run resumes or is cleaned up.
"""

from __future__ import annotations

from bot.job import JobContext, JobSpec
from jobs.staging_refresh.databases import DatabaseGate, unexpected_databases
from jobs.staging_refresh.flow import STEPS, refresh_staging
from jobs.staging_refresh.options import RefreshOptions
from jobs.staging_refresh.report import RefreshReport
from jobs.staging_refresh.simulated import demo_refresh, prepare_simulated_refresh
from jobs.staging_refresh.verification import AnonymizeStep, Verification, anonymize_with_engine

__all__ = [
    "SPECS",
    "STEPS",
    "AnonymizeStep",
    "DatabaseGate",
    "RefreshOptions",
    "RefreshReport",
    "Verification",
    "anonymize_with_engine",
    "demo_refresh",
    "job_spec",
    "prepare_simulated_refresh",
    "refresh_staging",
]

IAM_ACTIONS: tuple[str, ...] = (
    "rds:DescribeDBInstances",
    "rds:DescribeDBSnapshots",
    "rds:RestoreDBInstanceFromDBSnapshot",
    "rds:AddTagsToResource",
    "rds:ModifyDBInstance",
    "rds:DeleteDBInstance",
    "ecs:UpdateService",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:CreateSecret",
    "secretsmanager:ListSecretVersionIds",
    "secretsmanager:UpdateSecretVersionStage",
)


def job_spec(
    *,
    anonymize_step: AnonymizeStep = anonymize_with_engine,
    database_gate: DatabaseGate = unexpected_databases,
) -> JobSpec:
    """The job as the scheduler runs it; tests hand in a fake anonymize step (and database gate)."""

    def run(ctx: JobContext) -> RefreshReport:
        options = ctx.options
        assert isinstance(options, RefreshOptions)  # the scheduler validated it with options_model
        return refresh_staging(
            db=ctx.db,
            aws=ctx.aws,
            clock=ctx.clock,
            config=ctx.config,
            options=options,
            anonymize_step=anonymize_step,
            database_gate=database_gate,
            progress=ctx.progress,
            job_run_id=ctx.run_id,
            requested_by=ctx.requested_by,
            dry_run=ctx.dry_run,
            audit=ctx.audit,
        )

    return JobSpec(
        name="staging-refresh",
        env="staging",
        options_key="staging-refresh",
        options_model=RefreshOptions,
        summary="Restore the latest automated prod snapshot, anonymize and verify it, swap it in as staging",
        run=run,
        iam_actions=IAM_ACTIONS,
    )


SPECS = (job_spec(),)
