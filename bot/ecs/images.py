"""ECR: the image a tag names and the newest tags of a repository; image references (the ECR
repository of one, the same image at another tag) and the digest and tags one stands for now."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from bot.aws import AwsGateway, error_code
from bot.ecs.parse import _short, _utc_or_none
from bot.errors import BadInput, NotFound
from bot.status.aws_reads import image_tag

MAX_SUGGESTED_TAGS = 5

_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str
    digest: str  # sha256:…
    pushed_at: datetime | None


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
