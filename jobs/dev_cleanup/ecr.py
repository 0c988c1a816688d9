"""ECR images with only dev tags (or none), older than the retention, that no ACTIVE task definition
of any environment references (by tag or by digest). Deleted by digest, 100 per BatchDeleteImage.

moto ignores DescribeImages' ``tagStatus`` filter, and AWS's filter cannot express "only dev tags"
anyway: every image is listed and classified here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from bot.ecs import repository_of, service_snapshot
from bot.errors import AwsUnavailable, BotError
from jobs.dev_cleanup.model import (
    IN_USE,
    OTHER_ENV_TAG,
    TOO_NEW,
    ItemError,
    Resource,
    Scope,
    Survey,
    Tally,
    chunks,
    describe_error,
)

KIND = "ecr_images"
BATCH = 100  # BatchDeleteImage takes at most 100 image ids
PAGE = 1000  # DescribeImages returns at most 1000 per page
REFERENCES_UNKNOWN = "task definitions unreadable"
IN_INDEX = "part of a multi-arch image"
INDEX_UNREADABLE = "image indexes unreadable"
# A multi-arch (or attested, buildx's default) image is an index whose per-platform children are
# untagged images of their own: deleting an "untagged" child breaks the tagged image that lists it.
INDEX_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)


def image_reference(image: str) -> tuple[str, str | None, str | None]:
    """``host/repo:tag`` or ``host/repo@sha256:…`` → (repo, tag, digest)."""
    name, _, digest = image.partition("@")
    head, slash, last = name.rpartition("/")
    last, _, tag = last.partition(":")
    path = f"{head}{slash}{last}"
    repo = path.split("/", 1)[1] if "/" in path and "." in path.split("/", 1)[0] else path
    return repo, tag or None, digest or None


def repositories(scope: Scope) -> tuple[str, ...]:
    if scope.options.repositories:
        return scope.options.repositories
    snapshot = service_snapshot(aws=scope.aws, env=scope.env)
    if snapshot.image is None:
        raise BotError(
            f"cannot tell the image of {scope.env.service}; set jobs.options.dev-cleanup.repositories"
        )
    return (repository_of(snapshot.image),)


class EcrImages:
    kind = KIND
    label = "ECR images"
    usd_per_gib_month = 0.10

    def survey(self, scope: Scope) -> Survey:
        tally = Tally(self.kind)
        inventory = scope.inventory
        tags: set[tuple[str, str]] = set()
        digests: set[tuple[str, str]] = set()
        for rev in inventory.revisions:
            for image in rev.images:
                repo, tag, digest = image_reference(image)
                if tag:
                    tags.add((repo, tag))
                if digest:
                    digests.add((repo, digest))
        for repo in repositories(scope):
            details = scope.aws.paginate(
                "ecr",
                "describe_images",
                "imageDetails",
                repositoryName=repo,
                PaginationConfig={"PageSize": PAGE},
            )
            children, index_error = _index_children(scope, repo, details)
            if index_error is not None:
                tally.errors.append(index_error)
            for detail in details:
                digest = str(detail["imageDigest"])
                image_tags = [str(t) for t in detail.get("imageTags") or []]
                pushed: datetime | None = detail.get("imagePushedAt")
                if not inventory.complete:
                    tally.spare(REFERENCES_UNKNOWN)
                elif (repo, digest) in digests or any((repo, t) in tags for t in image_tags):
                    tally.spare(IN_USE)
                elif digest in children:
                    tally.spare(IN_INDEX)
                elif index_error is not None and not image_tags:
                    tally.spare(INDEX_UNREADABLE)
                elif not all(scope.env.image_tags.accepts(t) for t in image_tags):
                    tally.spare(OTHER_ENV_TAG)
                elif pushed is None or pushed > scope.cutoff:
                    tally.spare(TOO_NEW)
                else:
                    tally.take(
                        Resource(
                            kind=self.kind,
                            id=f"{repo}@{digest}",
                            label=_label(repo, digest, image_tags),
                            size_bytes=int(detail.get("imageSizeInBytes") or 0),
                            handle={"repository": repo, "digest": digest},
                        )
                    )
        if not inventory.complete:
            tally.errors.append(
                ItemError(
                    kind=self.kind,
                    resource="(all)",
                    message=(
                        f"{len(inventory.errors)} task definition(s) could not be read, so no image is safe to delete"
                    ),
                )
            )
        return tally.survey()

    def delete(self, scope: Scope, resources: Sequence[Resource]) -> tuple[list[Resource], list[ItemError]]:
        done: list[Resource] = []
        errors: list[ItemError] = []
        by_repo: dict[str, list[Resource]] = defaultdict(list)
        for res in resources:
            by_repo[str(res.handle["repository"])].append(res)
        for repo, items in by_repo.items():
            for batch in chunks(items, BATCH):
                try:
                    answer = scope.aws.call(
                        "ecr",
                        "batch_delete_image",
                        repositoryName=repo,
                        imageIds=[{"imageDigest": r.handle["digest"]} for r in batch],
                    )
                except (ClientError, AwsUnavailable) as exc:
                    errors.extend(
                        ItemError(kind=self.kind, resource=r.label, message=describe_error(exc))
                        for r in batch
                    )
                    continue
                failed = {
                    str(f.get("imageId", {}).get("imageDigest")): f for f in answer.get("failures") or []
                }
                for res in batch:
                    failure = failed.get(str(res.handle["digest"]))
                    if failure is None:
                        done.append(res)
                    else:
                        errors.append(
                            ItemError(
                                kind=self.kind,
                                resource=res.label,
                                message=(f"{failure.get('failureCode')}: {failure.get('failureReason')}")[
                                    :300
                                ],
                            )
                        )
        return done, errors


def _index_children(
    scope: Scope, repo: str, details: Sequence[dict[str, Any]]
) -> tuple[set[str], ItemError | None]:
    """Digests that an image index of ``repo`` lists, and an error if some index could not be read
    (then no untagged image of the repository is safe to delete)."""
    indexes = [
        str(d["imageDigest"])
        for d in details
        if str(d.get("imageManifestMediaType") or "") in INDEX_MEDIA_TYPES
        or str(d.get("artifactMediaType") or "") in INDEX_MEDIA_TYPES
    ]
    children: set[str] = set()
    unread = 0
    for batch in chunks(indexes, BATCH):
        try:
            answer = scope.aws.call(
                "ecr",
                "batch_get_image",
                repositoryName=repo,
                imageIds=[{"imageDigest": d} for d in batch],
                acceptedMediaTypes=sorted(INDEX_MEDIA_TYPES),
            )
        except (ClientError, AwsUnavailable):
            unread += len(batch)
            continue
        unread += len(answer.get("failures") or [])
        for image in answer.get("images") or []:
            try:
                manifest = json.loads(image.get("imageManifest") or "{}")
                children.update(str(m["digest"]) for m in manifest.get("manifests") or [])
            except (ValueError, TypeError, KeyError, AttributeError):
                unread += 1
    if not unread:
        return children, None
    return children, ItemError(
        kind=KIND,
        resource=f"{repo} (image indexes)",
        message=(
            f"{unread} multi-arch image index(es) could not be read, so no untagged image of {repo} is deleted"
        ),
    )


def _label(repo: str, digest: str, tags: Iterable[str]) -> str:
    tags = list(tags)
    short = digest.split(":", 1)[-1][:12]
    return f"{repo}:{','.join(tags)} ({short})" if tags else f"{repo}@{short} (untagged)"
