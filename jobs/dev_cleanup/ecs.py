"""Task-definition revisions of the dev family, and the inventory of every ACTIVE task definition.

The ECR kind needs every image that any environment's ACTIVE revision references, and ECS has no bulk
describe: each ACTIVE revision is described once. A revision never changes (a change is a new
revision), so what a describe said about its images and registration time is kept for the gateway's
life: a weekly run in a long-lived bot describes only the revisions registered since the last one.
Tags do change (``menotime:keep``), so they are read again on every run, and only for revisions that
could be deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from weakref import WeakKeyDictionary

from botocore.exceptions import ClientError

from bot.aws import AwsGateway
from bot.errors import AwsUnavailable
from jobs.dev_cleanup.guards import has_dev_tag, has_keep_tag
from jobs.dev_cleanup.model import (
    AGE_UNKNOWN,
    IN_USE,
    KEEP_TAG,
    NO_ENV_TAG,
    TOO_NEW,
    Inventory,
    ItemError,
    Resource,
    Revision,
    Scope,
    Survey,
    Tally,
    chunks,
    describe_error,
    tag_map,
)

KIND = "task_definitions"


_DESCRIBED: WeakKeyDictionary[AwsGateway, dict[str, Revision]] = WeakKeyDictionary()


def load_inventory(scope: Scope) -> Inventory:
    arns = scope.aws.paginate("ecs", "list_task_definitions", "taskDefinitionArns", status="ACTIVE")
    known = _DESCRIBED.setdefault(scope.aws, {})
    revisions: list[Revision] = []
    errors: list[ItemError] = []
    for arn in arns:
        if arn in known:
            revisions.append(replace(known[arn], tags=None))
            continue
        try:
            answer = scope.aws.call("ecs", "describe_task_definition", taskDefinition=arn, include=["TAGS"])
        except (ClientError, AwsUnavailable) as exc:
            errors.append(ItemError(kind=KIND, resource=_label(arn), message=describe_error(exc)))
            continue
        revisions.append(_revision(answer))
    listed = set(arns)
    for arn in [a for a in known if a not in listed]:  # deregistered since: forget them
        del known[arn]
    known.update((r.arn, r) for r in revisions)
    return Inventory(revisions=tuple(revisions), errors=tuple(errors))


def _revision(answer: dict[str, Any]) -> Revision:
    taskdef = answer["taskDefinition"]
    return Revision(
        arn=str(taskdef["taskDefinitionArn"]),
        family=str(taskdef["family"]),
        revision=int(taskdef["revision"]),
        registered_at=taskdef.get("registeredAt"),
        tags=tag_map(answer.get("tags")),
        images=tuple(str(c["image"]) for c in taskdef.get("containerDefinitions") or [] if c.get("image")),
    )


def in_use_arns(scope: Scope) -> set[str]:
    """Revisions a service of the dev cluster deploys (any deployment) or a task there runs."""
    aws, cluster = scope.aws, scope.cluster
    used: set[str] = set()
    services = aws.paginate("ecs", "list_services", "serviceArns", cluster=cluster)
    for batch in chunks(services, 10):
        for svc in aws.call("ecs", "describe_services", cluster=cluster, services=list(batch))["services"]:
            used.add(str(svc.get("taskDefinition") or ""))
            used.update(str(d.get("taskDefinition") or "") for d in svc.get("deployments") or [])
    tasks = aws.paginate("ecs", "list_tasks", "taskArns", cluster=cluster)
    for batch in chunks(tasks, 100):
        for task in aws.call("ecs", "describe_tasks", cluster=cluster, tasks=list(batch))["tasks"]:
            if task.get("lastStatus") != "STOPPED":
                used.add(str(task.get("taskDefinitionArn") or ""))
    used.discard("")
    return used


class TaskDefinitions:
    kind = KIND
    label = "Task-definition revisions"
    usd_per_gib_month = 0.0

    def survey(self, scope: Scope) -> Survey:
        tally = Tally(self.kind)
        inventory = scope.inventory
        tally.errors.extend(e for e in inventory.errors if scope.task_family in e.resource)
        used = in_use_arns(scope)
        newest = f"newest {scope.options.keep_newest}"
        revisions = sorted(inventory.family(scope.task_family), key=lambda r: r.revision, reverse=True)
        for index, rev in enumerate(revisions):
            # Cheap checks first: tags are read only for revisions that could go.
            if rev.arn in used:
                tally.spare(IN_USE)
            elif index < scope.options.keep_newest:
                tally.spare(newest)
            elif rev.registered_at is None:
                tally.spare(AGE_UNKNOWN)
            elif rev.registered_at > scope.cutoff:
                tally.spare(TOO_NEW)
            else:
                try:
                    tags = rev.tags if rev.tags is not None else _tags(scope, rev.arn)
                except (ClientError, AwsUnavailable) as exc:
                    tally.total += 1
                    tally.fail(f"{rev.family}:{rev.revision}", exc)
                    continue
                if scope.options.require_env_tag and not has_dev_tag(tags):
                    tally.spare(NO_ENV_TAG)
                elif has_keep_tag(tags):
                    tally.spare(KEEP_TAG)
                else:
                    tally.take(Resource(kind=self.kind, id=rev.arn, label=f"{rev.family}:{rev.revision}"))
        return tally.survey()

    def delete(self, scope: Scope, resources: Sequence[Resource]) -> tuple[list[Resource], list[ItemError]]:
        done: list[Resource] = []
        errors: list[ItemError] = []
        for res in resources:
            try:
                scope.aws.call("ecs", "deregister_task_definition", taskDefinition=res.id)
            except (ClientError, AwsUnavailable) as exc:
                errors.append(ItemError(kind=self.kind, resource=res.label, message=describe_error(exc)))
                continue
            done.append(res)
        return done, errors


def _tags(scope: Scope, arn: str) -> dict[str, str]:
    return tag_map(scope.aws.call("ecs", "list_tags_for_resource", resourceArn=arn).get("tags"))


def _label(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
