"""Weekly dev cleanup (DESIGN §7): old task-definition revisions, ECR images, manual RDS snapshots,
available EBS volumes, stale log groups of dev, and old rows of the dev database.

Two phases: a run marks new candidates and announces them; the next run deletes those still
matching. Dev-database rows are plain retention (deleted in the run that finds them). Caps per kind
stop every deletion of a run; ``--override`` lifts them.
"""

from __future__ import annotations

from typing import cast

from bot.job import JobContext, JobSpec
from jobs.dev_cleanup.engine import clean
from jobs.dev_cleanup.options import DevCleanupOptions
from jobs.dev_cleanup.report import DevCleanupReport

IAM_ACTIONS: tuple[str, ...] = (
    "ecs:ListTaskDefinitions",
    "ecs:DescribeTaskDefinition",
    "ecs:ListTagsForResource",
    "ecs:DeregisterTaskDefinition",
    "ecs:ListServices",
    "ecs:DescribeServices",
    "ecs:ListTasks",
    "ecs:DescribeTasks",
    "ecr:DescribeImages",
    "ecr:BatchGetImage",
    "ecr:BatchDeleteImage",
    "rds:DescribeDBSnapshots",
    "rds:DeleteDBSnapshot",
    "ec2:DescribeVolumes",
    "ec2:DeleteVolume",
    "logs:DescribeLogGroups",
    "logs:DescribeLogStreams",
    "logs:ListTagsForResource",
    "logs:DeleteLogGroup",
    "sts:GetCallerIdentity",
)


def run(ctx: JobContext) -> DevCleanupReport:
    return clean(
        aws=ctx.aws,
        db=ctx.db,
        config=ctx.config,
        options=cast(DevCleanupOptions, ctx.options),
        now=ctx.clock.now(),
        run_id=ctx.run_id,
        dry_run=ctx.dry_run,
        override=ctx.override,
        audit=ctx.audit,
    )


SPECS: tuple[JobSpec, ...] = (
    JobSpec(
        name="dev-cleanup",
        summary="Weekly dev cleanup: marks old dev resources, deletes last run's marks that still match",
        env="dev",
        run=run,
        options_model=DevCleanupOptions,
        options_key="dev-cleanup",
        iam_actions=IAM_ACTIONS,
        supports_override=True,
    ),
)

__all__ = ["SPECS", "DevCleanupOptions", "DevCleanupReport", "clean", "run"]
