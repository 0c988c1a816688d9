"""The bot's IAM: what each piece of work declares, and the least-privilege policy built from it.

Every verb (``Verb.iam_actions``), job (``JobSpec.iam_actions``) and background worker
(:data:`BACKGROUND`) declares the IAM actions it may call. The gateway records the actions it
really calls (``AwsGateway.iam_actions``); the tests run each piece of work against moto and assert
what was recorded is a subset of what was declared, so the policy printed by
``menotime-bot iam-policy`` covers every call. Resources are scoped to MenoTime's names from the
configuration where AWS allows it; the actions AWS only grants on ``*`` say so in their Sid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from bot.commands import Verb
from bot.config import Config, EnvironmentConfig
from bot.job import JobSpec
from bot.settings import Settings

# ── What the work declares ───────────────────────────────────────────────────────────────────

# Reading an environment's service: every change reads it first, status and history report it.
READ_SERVICE: tuple[str, ...] = ("ecs:DescribeServices", "ecs:DescribeTaskDefinition")
# What status and history do first: record the deployments others made, with their image digests.
OBSERVE: tuple[str, ...] = (*READ_SERVICE, "ecr:DescribeImages")
ALARMS_READ: tuple[str, ...] = ("cloudwatch:DescribeAlarms",)
STATUS: tuple[str, ...] = (
    *OBSERVE,
    "application-autoscaling:DescribeScalableTargets",
    "rds:DescribeDBInstances",
    *ALARMS_READ,
)
# Deploy, rollback and scale, with the rollout they start followed to its end.
CHANGE: tuple[str, ...] = (
    *OBSERVE,  # and for a deploy: the tag exists, and its digest
    "ecs:ListTaskDefinitions",  # rollback targets
    "ecs:RegisterTaskDefinition",  # a new revision with the new image
    "iam:PassRole",  # registering a revision passes its task and execution roles to ECS
    "ecs:UpdateService",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:RegisterScalableTarget",  # scale moves an autoscaled service's bounds
    *ALARMS_READ,  # the post-deploy watch
)
COST: tuple[str, ...] = ("ce:GetCostAndUsage", "ce:GetCostForecast")


@dataclass(frozen=True)
class Work:
    """A piece of the bot that calls AWS: a verb, a job or a background worker."""

    kind: str  # "verb", "job", "worker"
    name: str
    iam_actions: tuple[str, ...]


# The workers `serve` and `socket` run beside the commands (handlers/workers.py), and start-up.
BACKGROUND: tuple[Work, ...] = (
    # Deployments and scalings by others, the post-deploy alarm watches, orphaned rollouts.
    Work("worker", "housekeeping", (*OBSERVE, *ALARMS_READ)),
    Work("worker", "alarm inbox", ALARMS_READ),
    Work("worker", "sqs consumer", ("sqs:ReceiveMessage", "sqs:DeleteMessage")),
    Work("worker", "audit anchor", ("s3:ListBucket", "s3:GetObject", "s3:PutObject")),
    Work("worker", "settings", ("secretsmanager:GetSecretValue",)),
)


def declared(works: Iterable[Work]) -> frozenset[str]:
    return frozenset(action for work in works for action in work.iam_actions)


# ── Where each action may act ────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Scope:
    """The resources the policy grants on: the environments' names, the bot's own queue, bucket
    and settings secret, in one region. The account is left as ``*``: the policy is attached in
    MenoTime's account, so its ARNs name no other."""

    region: str
    envs: tuple[EnvironmentConfig, ...]
    sqs_queue_url: str | None = None
    audit_anchor_bucket: str | None = None
    audit_anchor_prefix: str = ""
    secret_ids: tuple[str, ...] = ()  # the settings secret and the jobs' `*_secret_id` options

    @classmethod
    def of(
        cls, settings: Settings, envs: Sequence[EnvironmentConfig], *, job_secrets: Iterable[str] = ()
    ) -> Scope:
        settings_secret = (settings.secrets_manager_secret_id,) if settings.secrets_manager_secret_id else ()
        return cls(
            region=settings.aws_region,
            envs=tuple(envs),
            sqs_queue_url=settings.sns_queue_url,
            audit_anchor_bucket=settings.audit_anchor_bucket,
            audit_anchor_prefix=settings.audit_anchor_prefix,
            secret_ids=tuple(dict.fromkeys((*settings_secret, *job_secrets))),
        )

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:*:{resource}"

    def each(self, make: Callable[[EnvironmentConfig], Iterable[str]]) -> tuple[str, ...]:
        return tuple(arn for env in self.envs for arn in make(env))


def _services(s: Scope) -> tuple[str, ...]:
    return s.each(lambda e: [s.arn("ecs", f"service/{e.cluster}/{e.service}")])


def _tasks(s: Scope) -> tuple[str, ...]:
    return s.each(lambda e: [s.arn("ecs", f"task/{e.cluster}/*")])


def _task_definitions(s: Scope) -> tuple[str, ...]:
    return s.each(lambda e: [s.arn("ecs", f"task-definition/{e.task_family}:*")])


def _databases(s: Scope) -> tuple[str, ...]:
    # `<instance>` and the staging refresh's `<instance>-next` and `<instance>-old-…`.
    return s.each(lambda e: [s.arn("rds", f"db:{e.rds_instance}"), s.arn("rds", f"db:{e.rds_instance}-*")])


def _restore(s: Scope) -> tuple[str, ...]:
    # A restore reads the snapshot and creates the instance in a subnet, option and parameter group.
    groups = tuple(s.arn("rds", f"{kind}:*") for kind in ("snapshot", "subgrp", "og", "pg"))
    return (*_databases(s), *groups)


def _snapshots(s: Scope) -> tuple[str, ...]:
    return (*_databases(s), s.arn("rds", "snapshot:*"))


def _alarms(s: Scope) -> tuple[str, ...]:
    return s.each(lambda e: [s.arn("cloudwatch", f"alarm:{e.alarm_name_prefix}*")])


def _secrets(s: Scope) -> tuple[str, ...]:
    # Secrets Manager ends a secret's ARN with `-` and six random characters.
    return tuple(s.arn("secretsmanager", f"secret:{name}-??????") for name in s.secret_ids)


def _queue(s: Scope) -> tuple[str, ...]:
    if not s.sqs_queue_url:
        return ()
    url = urlparse(s.sqs_queue_url)
    account, _, name = url.path.strip("/").partition("/")
    return (f"arn:aws:sqs:{s.region}:{account}:{name}",)


def _bucket(s: Scope) -> tuple[str, ...]:
    return (f"arn:aws:s3:::{s.audit_anchor_bucket}",) if s.audit_anchor_bucket else ()


def _anchors(s: Scope) -> tuple[str, ...]:
    bucket = s.audit_anchor_bucket
    return (f"arn:aws:s3:::{bucket}/{s.audit_anchor_prefix}*",) if bucket else ()


def _repositories(s: Scope) -> tuple[str, ...]:
    # The repository is the one the service's image names, read from ECS, not configured.
    return (s.arn("ecr", "repository/*"),)


def _log_groups(s: Scope) -> tuple[str, ...]:
    return (s.arn("logs", "log-group:*"),)


def _pass_role(_s: Scope) -> tuple[str, ...]:
    return ("arn:aws:iam::*:role/*",)


_ANYWHERE = "*"
# Action → the resources it is granted on; an action not listed is one AWS grants only on `*`.
_RESOURCES: Mapping[str, Callable[[Scope], tuple[str, ...]]] = {
    "ecs:DescribeServices": _services,
    "ecs:UpdateService": _services,
    "ecs:DescribeTasks": _tasks,
    "ecs:ListTagsForResource": _task_definitions,
    "ecr:DescribeImages": _repositories,
    "ecr:BatchGetImage": _repositories,
    "ecr:BatchDeleteImage": _repositories,
    "ecr:DescribeRepositories": _repositories,
    "rds:DescribeDBInstances": _databases,
    "rds:ModifyDBInstance": _databases,
    "rds:AddTagsToResource": _databases,
    "rds:DeleteDBInstance": _databases,
    "rds:RestoreDBInstanceFromDBSnapshot": _restore,
    "rds:DescribeDBSnapshots": _snapshots,
    "rds:DeleteDBSnapshot": _snapshots,
    "cloudwatch:DescribeAlarms": _alarms,
    "secretsmanager:GetSecretValue": _secrets,
    "secretsmanager:ListSecretVersionIds": _secrets,
    "secretsmanager:CreateSecret": _secrets,
    "secretsmanager:PutSecretValue": _secrets,
    "secretsmanager:UpdateSecretVersionStage": _secrets,
    "sqs:ReceiveMessage": _queue,
    "sqs:DeleteMessage": _queue,
    "s3:ListBucket": _bucket,
    "s3:PutObject": _anchors,
    "s3:GetObject": _anchors,
    "logs:DescribeLogStreams": _log_groups,
    "logs:ListTagsForResource": _log_groups,
    "logs:DeleteLogGroup": _log_groups,
    "iam:PassRole": _pass_role,
}


def _conditions(action: str, scope: Scope) -> dict[str, dict[str, object]] | None:
    if action == "iam:PassRole":  # only to ECS: the bot never hands a role to anything else
        return {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    if action == "ec2:DeleteVolume":  # AWS names no volume in advance; the tag says whose it is
        return {"StringEquals": {"aws:ResourceTag/Environment": [env.name for env in scope.envs]}}
    return None


def policy_document(works: Iterable[Work], scope: Scope) -> dict[str, object]:
    """The IAM policy (version 2012-10-17) granting exactly the declared actions, one statement per
    service and set of resources. An action whose resources are all absent from this deployment
    (no SQS queue configured) is left out."""
    grouped: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
    for action in sorted(declared(works)):
        rule = _RESOURCES.get(action)
        resources = rule(scope) if rule else (_ANYWHERE,)
        if resources:
            condition = json.dumps(_conditions(action, scope))
            key = (action.split(":")[0], tuple(sorted(set(resources))), condition)
            grouped.setdefault(key, []).append(action)
    statements = []
    for (service, resources, condition), actions in sorted(grouped.items()):
        statement: dict[str, object] = {
            "Sid": _sid(service, resources),
            "Effect": "Allow",
            "Action": actions,
            "Resource": list(resources) if len(resources) > 1 else resources[0],
        }
        if json.loads(condition):
            statement["Condition"] = json.loads(condition)
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": _unique_sids(statements)}


def _sid(service: str, resources: tuple[str, ...]) -> str:
    word = "".join(part.capitalize() for part in service.split("-"))
    return f"{word}AnyResource" if resources == (_ANYWHERE,) else f"{word}Scoped"


def _unique_sids(statements: list[dict[str, object]]) -> list[dict[str, object]]:
    seen: dict[str, int] = {}
    for statement in statements:
        sid = str(statement["Sid"])
        seen[sid] = seen.get(sid, 0) + 1
        if seen[sid] > 1:
            statement["Sid"] = f"{sid}{seen[sid]}"
    return statements


def job_secret_ids(jobs: Iterable[JobSpec], config: Config) -> tuple[str, ...]:
    """The secrets the jobs' options name (every option called ``…_secret_id``)."""
    names = (
        str(value)
        for job in jobs
        for key, value in job.options(config).model_dump().items()
        if key.endswith("_secret_id") and value
    )
    return tuple(dict.fromkeys(names))


def works_of(verbs: Iterable[Verb], jobs: Iterable[JobSpec]) -> tuple[Work, ...]:
    """Every piece of the bot that calls AWS: the verbs, the scheduled jobs and the workers."""
    return (
        *(Work("verb", verb.name, verb.iam_actions) for verb in verbs),
        *(Work("job", job.name, job.iam_actions) for job in jobs),
        *BACKGROUND,
    )


def granted(policy: Mapping[str, object]) -> frozenset[str]:
    """The actions a policy document allows."""
    statements = policy["Statement"]
    assert isinstance(statements, list)
    return frozenset(action for statement in statements for action in statement["Action"])


def policy_for(
    *,
    settings: Settings,
    config: Config,
    verbs: Iterable[Verb],
    jobs: Iterable[JobSpec],
    env: str | None = None,
) -> dict[str, object]:
    """The bot's policy: every environment's resources, or with ``env`` that one's and its jobs only."""
    envs = [config.env(env)] if env is not None else list(config.environments.values())
    own_jobs = [job for job in jobs if env is None or job.env == env]
    scope = Scope.of(settings, envs, job_secrets=job_secret_ids(own_jobs, config))
    return policy_document(works_of(verbs, own_jobs), scope)
