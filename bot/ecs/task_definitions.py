"""ECS task definitions: a new revision that changes only the application container's image (and
what it would change, for a plan), the revision a rollback goes to, and one revision described."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from bot.app_container import app_container, app_container_or_none
from bot.aws import AwsGateway, error_code
from bot.config import EnvironmentConfig
from bot.ecs.images import MAX_SUGGESTED_TAGS
from bot.ecs.parse import _family_revision, _label, _short
from bot.errors import BadInput, NotFound
from bot.status.aws_reads import image_tag

MAX_REVISIONS_SEARCHED = 100  # `rollback prod v1.4.2` describes revisions newest first, at most this many

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
