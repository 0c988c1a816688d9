"""The AWS side of ``deploy``, ``rollback`` and ``scale``: ECR images, ECS task definitions and
services, Application Auto Scaling targets, and following a rollout.

Plain keyword-only functions over the :class:`bot.aws.AwsGateway`, answering frozen dataclasses.
Nothing here knows about Slack, the database or policy: callers decide *whether* to act (roles,
approvals, windows, locks); this module only does it, refusing with one user sentence
(:mod:`bot.errors`) when AWS's state makes the action impossible. ``scale`` repeats the
environment's bounds as a last line of defence.

Every ``dry_run``/``plan_*`` variant reads exactly what the real call reads and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from botocore.exceptions import ClientError

from bot.app_container import app_container, app_container_or_none
from bot.aws import AwsGateway, error_code
from bot.config import EnvironmentConfig
from bot.errors import AwsUnavailable, BadInput, NotFound, PolicyViolation
from bot.render import inert, inert_or_none
from bot.status import ServiceEvent, image_tag

RolloutState = Literal["IN_PROGRESS", "COMPLETED", "FAILED", "TIMED_OUT"]

MAX_EVENTS = 5
MAX_SUGGESTED_TAGS = 5
MAX_REVISIONS_SEARCHED = 100  # `rollback prod v1.4.2` describes revisions newest first, at most this many
MAX_POLL_FAILURES = 3  # consecutive "AWS did not answer" while following a rollout before giving up

_SCALABLE_DIMENSION = "ecs:service:DesiredCount"
_TERMINAL: frozenset[str] = frozenset({"COMPLETED", "FAILED"})
_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
# Fields DescribeTaskDefinition reports that RegisterTaskDefinition does not take.
_READ_ONLY_FIELDS = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
    }
)
# What RegisterTaskDefinition takes, as of the botocore this was written against. The live list
# comes from the client's service model (so a field AWS adds later is copied too); this is the
# fallback for gateways without one.
_REGISTRABLE_FIELDS = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
)


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str
    digest: str  # sha256:…
    pushed_at: datetime | None


@dataclass(frozen=True)
class Deployment:
    id: str
    status: str  # PRIMARY, ACTIVE, INACTIVE
    task_definition_arn: str
    rollout_state: str | None  # IN_PROGRESS, COMPLETED, FAILED; None when ECS does not report one
    rollout_reason: str | None
    desired: int
    running: int
    pending: int
    failed_tasks: int
    created_at: datetime | None
    updated_at: datetime | None = None

    @property
    def state(self) -> RolloutState:
        """Where this deployment stands (judged by its counts where ECS reports no rolloutState)."""
        return _state_of(self)

    @property
    def rolled_back(self) -> bool:
        return self.state == "FAILED" and _says_rolled_back(self.rollout_reason, {})


@dataclass(frozen=True)
class ServiceSnapshot:
    task_definition_arn: str
    family: str | None
    revision: int | None
    desired: int
    running: int
    pending: int
    image: str | None  # of the application container; None when it cannot be told
    image_tag: str | None  # None when the image is pinned by digest or untagged
    app_container: str | None
    deployments: tuple[Deployment, ...]  # PRIMARY first
    rollout_state: str | None  # of the PRIMARY deployment
    rollout_reason: str | None
    events: tuple[ServiceEvent, ...]  # newest first, at most MAX_EVENTS

    @property
    def task_definition(self) -> str:
        """``family:revision`` as people write it."""
        return _label(self.task_definition_arn)


@dataclass(frozen=True)
class Difference:
    """One field that a new revision changes, e.g. ``containerDefinitions[app].image``."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class TaskDefinitionChange:
    from_arn: str
    to_arn: str | None  # None for a plan: nothing was registered
    from_revision: int
    to_revision: int | None
    container: str
    from_image: str
    to_image: str
    family: str
    differences: tuple[Difference, ...]  # the registration request against the base revision

    @property
    def registered(self) -> bool:
        return self.to_arn is not None


@dataclass(frozen=True)
class TaskDefinitionRef:
    arn: str
    revision: int
    image: str | None  # of the application container
    image_tag: str | None
    family: str

    @property
    def label(self) -> str:
        return f"{self.family}:{self.revision}"


@dataclass(frozen=True)
class ScaleChange:
    autoscaled: bool
    desired_before: int
    desired_after: int
    min_before: int | None  # the scalable target's bounds; None on manually scaled environments
    min_after: int | None
    max_before: int | None
    max_after: int | None
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return (self.desired_before, self.min_before, self.max_before) != (
            self.desired_after,
            self.min_after,
            self.max_after,
        )


@dataclass(frozen=True)
class RolloutSnapshot:
    state: RolloutState
    reason: str | None
    running: int  # of the deployment followed (the service's when that deployment is gone)
    desired: int
    pending: int
    task_definition_arn: str  # what the service is moving to: the PRIMARY deployment's
    events: tuple[ServiceEvent, ...]  # since the deployment started, newest first, at most MAX_EVENTS
    rolled_back: bool  # ECS (its deployment circuit breaker) put the previous revision back
    deployment_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.state != "IN_PROGRESS"


# --------------------------------------------------------------------------------------------
# ECR


def find_image(
    *, aws: AwsGateway, repository: str, tag: str, suggest_if: Callable[[str], bool] | None = None
) -> ImageRef:
    """The image tagged ``tag`` in ``repository``; NotFound naming the newest tags there (only
    those ``suggest_if`` accepts, when given, e.g. the environment's tag rule) when it is missing."""
    try:
        answer = aws.call("ecr", "describe_images", repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as exc:
        code = error_code(exc)
        if code == "RepositoryNotFoundException":
            raise NotFound(
                f"There is no ECR repository named {repository}; check the image of the service's "
                "task definition."
            ) from None
        if code != "ImageNotFoundException":
            raise
        answer = {}
    for detail in answer.get("imageDetails") or []:
        if tag in (detail.get("imageTags") or []):
            return ImageRef(
                repository=repository,
                tag=tag,
                digest=str(detail["imageDigest"]),
                pushed_at=_utc_or_none(detail.get("imagePushedAt")),
            )
    suggestions = newest_tags(aws=aws, repository=repository, accept=suggest_if)
    if suggestions:
        raise NotFound(
            f"There is no image tagged `{_short(tag)}` in {repository}; push it first or pick one of: "
            f"{', '.join(suggestions)}."
        )
    raise NotFound(f"There is no image tagged `{_short(tag)}` in {repository}; push it first.")


def newest_tags(
    *,
    aws: AwsGateway,
    repository: str,
    accept: Callable[[str], bool] | None = None,
    limit: int = MAX_SUGGESTED_TAGS,
) -> tuple[str, ...]:
    """The tags of ``repository``, newest push first."""
    details = aws.paginate(
        "ecr", "describe_images", "imageDetails", repositoryName=repository, filter={"tagStatus": "TAGGED"}
    )
    # moto ignores the tagStatus filter: untagged images come back too. Pushes within the same
    # second tie on imagePushedAt; the listing order (oldest first in moto) breaks the tie.
    epoch = datetime.fromtimestamp(0, UTC)
    ordered = sorted(
        ((_utc_or_none(d.get("imagePushedAt")) or epoch, index, d) for index, d in enumerate(details)),
        key=lambda item: (item[0], item[1]),
        reverse=True,
    )
    tags: list[str] = []
    for _, _, detail in ordered:
        for tag in detail.get("imageTags") or []:
            if tag not in tags and (accept is None or accept(tag)):
                tags.append(tag)
    return tuple(tags[:limit])


def repository_of(image: str) -> str:
    """``123456789012.dkr.ecr.us-west-1.amazonaws.com/menotime-backend:v1.5.0`` (or ``@sha256:…``)
    → ``menotime-backend``. BadInput for an image that is not in an ECR private registry."""
    name = _strip_reference(image)
    host, slash, path = name.partition("/")
    if not slash or not path or not _ECR_HOST.match(host):
        raise BadInput(
            f"The service runs {_short(image, 120)}, which is not an ECR image, so deploy cannot look "
            "its tags up; point the task definition at the ECR repository first."
        )
    return path


def image_with_tag(image: str, tag: str, digest: str | None = None) -> str:
    """The same repository as ``image`` (registry host kept), at ``tag``: what deploy registers.

    With ``digest`` the reference is pinned (``repo:tag@sha256:…``): ECS pulls exactly the image
    that was checked, soaked and approved even if someone moves the tag later, and the tag stays
    readable for people (and for ``status``)."""
    return f"{_strip_reference(image)}:{tag}" + (f"@{digest}" if digest else "")


def _strip_reference(image: str) -> str:
    """The image without its ``@digest`` and ``:tag`` (a registry port is kept)."""
    name = image.split("@", 1)[0]
    head, slash, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}{slash}{last}"


# --------------------------------------------------------------------------------------------
# ECS: the service


def service_snapshot(*, aws: AwsGateway, env: EnvironmentConfig) -> ServiceSnapshot:
    svc = _describe_service(aws=aws, env=env)
    arn = str(svc.get("taskDefinition") or "")
    taskdef = _describe_task_definition(aws=aws, env=env, ref=arn)["taskDefinition"] if arn else {}
    family, revision = _family_revision(arn)
    container = app_container_or_none(taskdef, env)
    image = str(container["image"]) if container and container.get("image") else None
    deployments = _deployments(svc)
    primary = next((d for d in deployments if d.status == "PRIMARY"), None)
    return ServiceSnapshot(
        task_definition_arn=arn,
        family=taskdef.get("family", family),
        revision=taskdef.get("revision", revision),
        desired=int(svc.get("desiredCount", 0)),
        running=int(svc.get("runningCount", 0)),
        pending=int(svc.get("pendingCount", 0)),
        image=image,
        image_tag=image_tag(image) if image else None,
        app_container=str(container["name"]) if container else None,
        deployments=deployments,
        rollout_state=primary.rollout_state if primary else None,
        rollout_reason=primary.rollout_reason if primary else None,
        events=_events(svc),
    )


def update_service(*, aws: AwsGateway, env: EnvironmentConfig, task_definition_arn: str) -> str | None:
    """Point the service at ``task_definition_arn``; the id of the new PRIMARY deployment, when
    ECS's answer has one running that revision (moto's never does: it does not start deployments)."""
    answer = _update_service(aws=aws, env=env, taskDefinition=task_definition_arn)
    wanted = _label(task_definition_arn)
    for deployment in answer.get("service", {}).get("deployments") or []:
        if (
            deployment.get("status") == "PRIMARY"
            and _label(str(deployment.get("taskDefinition", ""))) == wanted
        ):
            return str(deployment["id"])
    return None


def _describe_service(*, aws: AwsGateway, env: EnvironmentConfig) -> dict[str, Any]:
    try:
        answer = aws.call("ecs", "describe_services", cluster=env.cluster, services=[env.service])
    except ClientError as exc:
        if error_code(exc) == "ClusterNotFoundException":
            raise NotFound(
                f"Cluster {env.cluster} of {env.name} does not exist; check the cluster named for "
                f"{env.name} in the configuration."
            ) from None
        raise
    services = answer.get("services") or []
    if not services:
        raise NotFound(
            f"Service {env.service} is not in cluster {env.cluster}; check the service named for "
            f"{env.name} in the configuration."
        )
    svc: dict[str, Any] = services[0]
    if svc.get("status") != "ACTIVE":
        raise NotFound(
            f"Service {env.service} in {env.cluster} is {str(svc.get('status', 'gone')).lower()} "
            f"(deleted or being deleted); recreate it before changing {env.name}."
        )
    return svc


def _update_service(*, aws: AwsGateway, env: EnvironmentConfig, **params: Any) -> dict[str, Any]:
    try:
        return aws.call("ecs", "update_service", cluster=env.cluster, service=env.service, **params)
    except ClientError as exc:
        code = error_code(exc)
        if code == "ClusterNotFoundException":
            raise NotFound(
                f"Cluster {env.cluster} of {env.name} does not exist; check the cluster named for "
                f"{env.name} in the configuration."
            ) from None
        if code in {"ServiceNotFoundException", "ServiceNotActiveException"}:
            raise NotFound(
                f"Service {env.service} is not active in cluster {env.cluster}; check the service "
                f"named for {env.name} in the configuration."
            ) from None
        raise


def _deployments(svc: Mapping[str, Any]) -> tuple[Deployment, ...]:
    found = [
        Deployment(
            id=str(d.get("id", "")),
            status=str(d.get("status", "")),
            task_definition_arn=str(d.get("taskDefinition", "")),
            rollout_state=d.get("rolloutState"),
            rollout_reason=inert_or_none(d.get("rolloutStateReason")),
            desired=int(d.get("desiredCount", 0)),
            running=int(d.get("runningCount", 0)),
            pending=int(d.get("pendingCount", 0)),
            failed_tasks=int(d.get("failedTasks", 0)),
            created_at=_utc_or_none(d.get("createdAt")),
            updated_at=_utc_or_none(d.get("updatedAt")),
        )
        for d in svc.get("deployments") or []
    ]
    epoch = datetime.fromtimestamp(0, UTC)
    return tuple(sorted(found, key=lambda d: (d.status != "PRIMARY", -(d.created_at or epoch).timestamp())))


def _events(svc: Mapping[str, Any], since: datetime | None = None) -> tuple[ServiceEvent, ...]:
    events = [
        ServiceEvent(at=at, message=inert(str(e.get("message", ""))))
        for e in svc.get("events") or []
        if (at := _utc_or_none(e.get("createdAt"))) is not None and (since is None or at >= since)
    ]
    return tuple(sorted(events, key=lambda e: e.at, reverse=True)[:MAX_EVENTS])


# --------------------------------------------------------------------------------------------
# ECS: task definitions


def register_revision(
    *, aws: AwsGateway, env: EnvironmentConfig, base_arn: str, image: str, dry_run: bool = False
) -> TaskDefinitionChange:
    """A new revision of ``base_arn``'s family equal to it except for the application container's
    image. With ``dry_run`` nothing is registered (``to_arn``/``to_revision`` are None)."""
    if not image.strip():
        raise BadInput("An image is needed to register a revision; give an image tag.")
    described = _describe_task_definition(aws=aws, env=env, ref=base_arn, include_tags=True)
    base = described["taskDefinition"]
    container = app_container(base, env)
    registrable = _registrable_fields(aws)
    before = _registration(base, tags=described.get("tags") or [], registrable=registrable)
    request = _registration(base, tags=described.get("tags") or [], registrable=registrable)
    for definition in request["containerDefinitions"]:
        if definition.get("name") == container["name"]:
            definition["image"] = image
    change = TaskDefinitionChange(
        from_arn=str(base["taskDefinitionArn"]),
        to_arn=None,
        from_revision=int(base["revision"]),
        to_revision=None,
        container=str(container["name"]),
        from_image=str(container.get("image", "")),
        to_image=image,
        family=str(base["family"]),
        differences=tuple(_diff(before, request)),
    )
    if dry_run:
        return change
    registered = aws.call("ecs", "register_task_definition", **request)["taskDefinition"]
    return replace(
        change, to_arn=str(registered["taskDefinitionArn"]), to_revision=int(registered["revision"])
    )


def plan_revision(
    *, aws: AwsGateway, env: EnvironmentConfig, base_arn: str, image: str
) -> TaskDefinitionChange:
    """``register_revision`` without registering: what ``--plan`` shows."""
    return register_revision(aws=aws, env=env, base_arn=base_arn, image=image, dry_run=True)


def rollback_target(
    *, aws: AwsGateway, env: EnvironmentConfig, current_arn: str, previous_from_records: int | None
) -> TaskDefinitionRef:
    """Where a plain ``rollback <env>`` goes: the revision the bot's deploy records say was live
    before the current one, else the newest ACTIVE revision of the family older than the current."""
    family, current = _family_revision(current_arn)
    family = family or env.task_family
    if previous_from_records is not None and previous_from_records != current:
        taskdef = _describe_task_definition(
            aws=aws,
            env=env,
            ref=f"{family}:{previous_from_records}",
            missing=f"Revision {family}:{previous_from_records}, which {env.name} ran before the current one, no "
            f"longer exists; name a revision or version to roll back to, like `rollback {env.name} "
            "<revision>`.",
        )["taskDefinition"]
        if taskdef.get("status") != "ACTIVE":
            raise NotFound(
                f"Revision {family}:{previous_from_records}, which {env.name} ran before the current one, "
                f"has been deregistered; name an active revision or version to roll back to, like "
                f"`rollback {env.name} <revision>`."
            )
        return _ref(taskdef, env)
    for revision, arn in _active_revisions(aws=aws, family=family):
        if current is None or revision < current:
            return _ref(_describe_task_definition(aws=aws, env=env, ref=arn)["taskDefinition"], env)
    raise NotFound(f"{env.name} has no earlier active revision to roll back to.")


def resolve_revision(*, aws: AwsGateway, env: EnvironmentConfig, spec: str) -> TaskDefinitionRef:
    """``41``, ``#41`` or ``menotime-backend-prod:41`` → that revision; anything else is an image
    tag (``v1.4.2``) → the newest ACTIVE revision whose application image carries it."""
    family = env.task_family
    text = spec.strip()
    number = _revision_number(text, family)
    if number is not None:
        taskdef = _describe_task_definition(
            aws=aws,
            env=env,
            ref=f"{family}:{number}",
            missing=f"{family} has no revision {number}; `status {env.name}` shows the current one.",
        )["taskDefinition"]
        if taskdef.get("status") != "ACTIVE":
            raise NotFound(
                f"Revision {family}:{number} has been deregistered and cannot run again; pick an active "
                "revision or a version instead."
            )
        return _ref(taskdef, env)
    if not text:
        raise BadInput(f"Name a revision number or a version to roll back to, like `rollback {env.name} 41`.")
    seen: list[str] = []
    for _, arn in _active_revisions(aws=aws, family=family)[:MAX_REVISIONS_SEARCHED]:
        ref = _ref(_describe_task_definition(aws=aws, env=env, ref=arn)["taskDefinition"], env)
        if ref.image_tag == text:
            return ref
        if ref.image_tag and ref.image_tag not in seen:
            seen.append(ref.image_tag)
    versions = f" or one of the versions it has: {', '.join(seen[:MAX_SUGGESTED_TAGS])}" if seen else ""
    raise NotFound(
        f"No active revision of {family} runs `{_short(text)}`; name a revision number instead{versions}."
    )


def describe_revision(*, aws: AwsGateway, env: EnvironmentConfig, arn: str) -> TaskDefinitionRef:
    """The revision ``arn`` with its application image (what an observed deployment ran)."""
    return _ref(_describe_task_definition(aws=aws, env=env, ref=arn)["taskDefinition"], env)


def image_digest(*, aws: AwsGateway, image: str) -> str | None:
    """The digest ``image`` stands for: pinned in the reference, else its tag looked up in ECR
    now; None when it cannot be told (not an ECR image, the tag gone)."""
    if "@sha256:" in image:
        return "sha256:" + image.split("@sha256:", 1)[1]
    tag = image_tag(image)
    try:
        repository = repository_of(image)
    except BadInput:
        return None
    if not tag:
        return None
    try:
        return find_image(aws=aws, repository=repository, tag=tag).digest
    except NotFound:
        return None


def image_tags(*, aws: AwsGateway, image: str, digest: str) -> tuple[str, ...]:
    """Every tag the image ``digest`` carries in ``image``'s repository now (empty if none)."""
    try:
        repository = repository_of(image)
    except BadInput:
        return ()
    try:
        answer = aws.call(
            "ecr", "describe_images", repositoryName=repository, imageIds=[{"imageDigest": digest}]
        )
    except ClientError as exc:
        if error_code(exc) in {"ImageNotFoundException", "RepositoryNotFoundException"}:
            return ()
        raise
    return tuple(t for d in answer.get("imageDetails") or [] for t in d.get("imageTags") or [])


def _revision_number(text: str, family: str) -> int | None:
    text = text.removeprefix("#").removeprefix(f"{family}:")
    return int(text) if text.isdigit() else None


def _describe_task_definition(
    *,
    aws: AwsGateway,
    env: EnvironmentConfig,
    ref: str,
    include_tags: bool = False,
    missing: str | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"taskDefinition": ref}
    if include_tags:
        params["include"] = ["TAGS"]
    try:
        return aws.call("ecs", "describe_task_definition", **params)
    except ClientError as exc:
        # ECS answers "ClientException: Unable to describe task definition." for a missing one.
        if error_code(exc) in {"ClientException", "InvalidParameterException"}:
            raise NotFound(
                missing
                or f"Task definition {_label(ref)} of {env.name} does not exist; check "
                f"`status {env.name}` for the revision it runs."
            ) from None
        raise


def _active_revisions(*, aws: AwsGateway, family: str) -> list[tuple[int, str]]:
    """(revision, arn) of the family's ACTIVE revisions, newest first."""
    arns = aws.paginate(
        "ecs",
        "list_task_definitions",
        "taskDefinitionArns",
        familyPrefix=family,
        status="ACTIVE",
        sort="DESC",
    )
    revisions: list[tuple[int, str]] = []
    for arn in arns:
        arn_family, revision = _family_revision(str(arn))
        # familyPrefix is a prefix in AWS (menotime-backend-prod matches menotime-backend-prod-worker).
        if arn_family == family and revision is not None:
            revisions.append((revision, str(arn)))
    return sorted(revisions, reverse=True)  # moto ignores sort


def _ref(taskdef: Mapping[str, Any], env: EnvironmentConfig) -> TaskDefinitionRef:
    container = app_container_or_none(taskdef, env)
    image = str(container["image"]) if container and container.get("image") else None
    return TaskDefinitionRef(
        arn=str(taskdef["taskDefinitionArn"]),
        revision=int(taskdef["revision"]),
        image=image,
        image_tag=image_tag(image) if image else None,
        family=str(taskdef.get("family", "")),
    )


def _registrable_fields(aws: AwsGateway) -> frozenset[str]:
    try:
        shape = aws.client("ecs").meta.service_model.operation_model("RegisterTaskDefinition").input_shape
        members = set(shape.members)
    except (AttributeError, KeyError):
        members = set(_REGISTRABLE_FIELDS)
    return frozenset(members - _READ_ONLY_FIELDS - {"tags"})


def _registration(
    base: Mapping[str, Any], *, tags: Sequence[Mapping[str, str]], registrable: frozenset[str]
) -> dict[str, Any]:
    """The RegisterTaskDefinition request that recreates ``base`` (a deep copy: safe to edit)."""
    request = {key: _copy(value) for key, value in base.items() if key in registrable and value is not None}
    if tags:
        request["tags"] = [dict(tag) for tag in tags]
    return request


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _diff(before: Any, after: Any, path: str = "") -> list[Difference]:
    """Field-by-field differences; container definitions are matched by name."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        found: list[Difference] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            found.extend(_diff(before.get(key), after.get(key), sub))
        return found
    if _named_list(before) and _named_list(after):
        old = {item["name"]: item for item in before}
        new = {item["name"]: item for item in after}
        found = []
        for name in [*old, *(n for n in new if n not in old)]:
            found.extend(_diff(old.get(name), new.get(name), f"{path}[{name}]"))
        return found
    return [] if before == after else [Difference(field=path, before=before, after=after)]


def _named_list(value: Any) -> bool:
    return (
        isinstance(value, list) and all(isinstance(v, Mapping) and "name" in v for v in value) and bool(value)
    )


# --------------------------------------------------------------------------------------------
# Scaling


def scale(*, aws: AwsGateway, env: EnvironmentConfig, count: int, dry_run: bool = False) -> ScaleChange:
    """Manually scaled environments: the service's desired count. Autoscaled ones: the scalable
    target's minimum (and maximum when ``count`` is above it, never lowered), and the desired
    count raised to the new minimum when below it."""
    low, high = env.tasks.min, env.tasks.max
    if not low <= count <= high:
        allowed = f"exactly {low} task{'s' if low != 1 else ''}" if low == high else f"{low}–{high} tasks"
        raise PolicyViolation(f"{env.name} allows {allowed}; ask for a number in that range.")
    desired = int(_describe_service(aws=aws, env=env).get("desiredCount", 0))

    if not env.autoscaling:
        change = ScaleChange(
            autoscaled=False,
            desired_before=desired,
            desired_after=count,
            min_before=None,
            min_after=None,
            max_before=None,
            max_after=None,
            dry_run=dry_run,
        )
        if not dry_run and count != desired:
            _update_service(aws=aws, env=env, desiredCount=count)
        return change

    resource_id = f"service/{env.cluster}/{env.service}"
    targets = aws.paginate(
        "application-autoscaling",
        "describe_scalable_targets",
        "ScalableTargets",
        ServiceNamespace="ecs",
        ResourceIds=[resource_id],
        ScalableDimension=_SCALABLE_DIMENSION,
    )
    target = next(
        (
            t
            for t in targets
            if t.get("ResourceId") == resource_id and t.get("ScalableDimension") == _SCALABLE_DIMENSION
        ),
        None,
    )
    if target is None:
        raise NotFound(
            f"{env.name} is configured for autoscaling but {resource_id} has no scalable target; register "
            "one (or set autoscaling: false for it) before scaling."
        )
    min_before, max_before = int(target["MinCapacity"]), int(target["MaxCapacity"])
    max_after = max(max_before, count)
    change = ScaleChange(
        autoscaled=True,
        desired_before=desired,
        desired_after=max(desired, count),
        min_before=min_before,
        min_after=count,
        max_before=max_before,
        max_after=max_after,
        dry_run=dry_run,
    )
    if dry_run:
        return change
    if (min_before, max_before) != (count, max_after):
        aws.call(
            "application-autoscaling",
            "register_scalable_target",
            ServiceNamespace="ecs",
            ResourceId=resource_id,
            ScalableDimension=_SCALABLE_DIMENSION,
            MinCapacity=count,
            MaxCapacity=max_after,
        )
    if desired < count:
        # AWS's autoscaler would raise it to the new minimum on its own, minutes later; moto never does.
        _update_service(aws=aws, env=env, desiredCount=count)
    return change


# --------------------------------------------------------------------------------------------
# Rollouts


def rollout(
    *,
    aws: AwsGateway,
    env: EnvironmentConfig,
    deployment_id: str | None = None,
    task_definition_arn: str | None = None,
) -> RolloutSnapshot:
    """Where the deployment stands: the one with ``deployment_id``, else the newest one of
    ``task_definition_arn`` (the revision deployed), else the PRIMARY one.

    ``rolled_back`` is true when ECS's circuit breaker rolled the deployment back: it FAILED with a
    reason saying so, or the service's PRIMARY deployment runs another revision than the one deployed.
    """
    svc = _describe_service(aws=aws, env=env)
    deployments = _deployments(svc)
    primary = next((d for d in deployments if d.status == "PRIMARY"), None)
    service_arn = str(svc.get("taskDefinition") or "")
    now_running = primary.task_definition_arn if primary else service_arn
    wanted = _label(task_definition_arn) if task_definition_arn else None

    ours: Deployment | None
    if deployment_id is not None:
        ours = next((d for d in deployments if d.id == deployment_id), None)
    elif wanted is not None:
        ours = next(
            (d for d in deployments if _label(d.task_definition_arn) == wanted), None
        )  # PRIMARY first
    else:
        ours = primary

    if ours is None:
        if wanted is not None and _label(service_arn) == wanted:
            # The service points at the revision but no deployment shows it yet (moto never starts one).
            return RolloutSnapshot(
                state="IN_PROGRESS",
                reason="Waiting for ECS to start the deployment.",
                running=int(svc.get("runningCount", 0)),
                desired=int(svc.get("desiredCount", 0)),
                pending=int(svc.get("pendingCount", 0)),
                task_definition_arn=service_arn,
                events=_events(svc),
                rolled_back=False,
                deployment_id=deployment_id,
            )
        if wanted is None and deployment_id is None:
            # No deployment at all (not the ECS deployment controller): judge by the counts.
            running, desired = int(svc.get("runningCount", 0)), int(svc.get("desiredCount", 0))
            pending = int(svc.get("pendingCount", 0))
            return RolloutSnapshot(
                state="COMPLETED" if running == desired and not pending else "IN_PROGRESS",
                reason=None,
                running=running,
                desired=desired,
                pending=pending,
                task_definition_arn=service_arn,
                events=_events(svc),
                rolled_back=False,
            )
        # Our deployment is gone and the service runs something else: ECS replaced it.
        return RolloutSnapshot(
            state="FAILED",
            reason=f"ECS replaced the deployment; the service now runs {_label(now_running)}.",
            running=primary.running if primary else int(svc.get("runningCount", 0)),
            desired=primary.desired if primary else int(svc.get("desiredCount", 0)),
            pending=primary.pending if primary else int(svc.get("pendingCount", 0)),
            task_definition_arn=now_running,
            events=_events(svc),
            rolled_back=True,
            deployment_id=deployment_id,
        )

    state = _state_of(ours)
    reason = ours.rollout_reason
    rolled_back = False
    if state == "FAILED" and _says_rolled_back(reason, svc):
        rolled_back = True
    if (
        ours is not primary
        and primary is not None
        and _label(primary.task_definition_arn) != _label(ours.task_definition_arn)
    ):
        # Another revision took over the service: the circuit breaker's rollback (or a newer deploy).
        rolled_back = True
        if state != "FAILED":
            state = "FAILED"
            reason = (
                f"ECS replaced the deployment; the service now runs {_label(primary.task_definition_arn)}."
            )
    return RolloutSnapshot(
        state=state,
        reason=reason,
        running=ours.running,
        desired=ours.desired,
        pending=ours.pending,
        task_definition_arn=now_running,
        events=_events(svc, since=ours.created_at),
        rolled_back=rolled_back,
        deployment_id=ours.id or None,
    )


def follow_rollout(
    *,
    aws: AwsGateway,
    env: EnvironmentConfig,
    task_definition_arn: str,
    on_change: Callable[[RolloutSnapshot], None],
    sleep: Callable[[float], None],
    now: Callable[[], datetime],
    interval: float = 10.0,
    timeout: timedelta = timedelta(minutes=30),
    deployment_id: str | None = None,
) -> RolloutSnapshot:
    """Poll :func:`rollout` every ``interval`` seconds until COMPLETED or FAILED, calling
    ``on_change`` with each snapshot that differs from the previous one (the first included).
    After ``timeout`` the last snapshot comes back as TIMED_OUT (also passed to ``on_change``).
    A few consecutive "AWS did not answer" polls are ridden out; more propagate."""
    deadline = now() + timeout
    last_key: tuple[Any, ...] | None = None
    last: RolloutSnapshot | None = None
    failures = 0
    while True:
        try:
            snapshot = rollout(
                aws=aws, env=env, deployment_id=deployment_id, task_definition_arn=task_definition_arn
            )
            failures = 0
        except AwsUnavailable:
            failures += 1
            if failures >= MAX_POLL_FAILURES:
                raise
            snapshot = None
        if snapshot is not None:
            last = snapshot
            key = _change_key(snapshot)
            if key != last_key:
                last_key = key
                on_change(snapshot)
            if snapshot.state in _TERMINAL:
                return snapshot
        remaining = (deadline - now()).total_seconds()
        if remaining <= 0:
            minutes = timeout.total_seconds() / 60
            waited = f"{minutes:g} minute{'s' if minutes != 1 else ''}"
            base = last or RolloutSnapshot(
                state="IN_PROGRESS",
                reason=None,
                running=0,
                desired=0,
                pending=0,
                task_definition_arn=task_definition_arn,
                events=(),
                rolled_back=False,
            )
            timed_out = replace(
                base,
                state="TIMED_OUT",
                reason=f"The rollout had not finished after {waited}; it may still complete — "
                f"check `status {env.name}`.",
            )
            on_change(timed_out)
            return timed_out
        sleep(min(interval, remaining))


def _change_key(snapshot: RolloutSnapshot) -> tuple[Any, ...]:
    newest = snapshot.events[0] if snapshot.events else None
    return (
        snapshot.state,
        snapshot.reason,
        snapshot.running,
        snapshot.desired,
        snapshot.pending,
        snapshot.task_definition_arn,
        snapshot.rolled_back,
        newest,
    )


def _state_of(deployment: Deployment) -> RolloutState:
    if deployment.rollout_state in {"IN_PROGRESS", "COMPLETED", "FAILED"}:
        return cast(RolloutState, deployment.rollout_state)
    # ECS reports no rolloutState for some services (e.g. behind a Classic Load Balancer).
    done = deployment.running == deployment.desired and deployment.pending == 0
    return "COMPLETED" if done and deployment.status == "PRIMARY" else "IN_PROGRESS"


def _says_rolled_back(reason: str | None, svc: Mapping[str, Any]) -> bool:
    text = (reason or "").lower()
    if "rolling back" in text or "rolled back" in text or "rollback" in text:
        return True
    if "circuit breaker" in text:
        # The breaker rolls back only where enabled with rollback; moto does not echo the
        # configuration, so a breaker failure there counts as rolled back (as the seed configures).
        breaker = (svc.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker")
        return bool(breaker.get("rollback", False)) if isinstance(breaker, Mapping) else True
    return False


# --------------------------------------------------------------------------------------------


def _family_revision(arn: str) -> tuple[str | None, int | None]:
    """``arn:…:task-definition/menotime-backend-prod:3`` (or ``menotime-backend-prod:3``) →
    (``menotime-backend-prod``, 3)."""
    name = arn.rsplit("/", 1)[-1]
    if not name:
        return None, None
    family, _, revision = name.partition(":")
    return family, int(revision) if revision.isdigit() else None


def _label(arn: str) -> str:
    family, revision = _family_revision(arn)
    if family is None:
        return "unknown task definition"
    return f"{family}:{revision}" if revision is not None else family


def _utc_or_none(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
