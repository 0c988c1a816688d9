"""Scale: 10,000 ECR images and 5,000 task-definition revisions, built straight into moto's backends
(the API would take minutes), cleaned in two runs; the AWS calls are counted per operation and must
stay within list pages + deletion batches, plus the reads ECS forces: one describe per ACTIVE
revision the bot has not seen before (revisions never change, so the second run describes none) and
one tag read per revision about to be deleted (tags do change).

Runs in CI with the rest of the suite. Its speed is not asserted (that is for benchmarks); what is
asserted is the result and the number of AWS calls.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ecr.models import Image, ecr_backends
from moto.ecs.models import ecs_backends

from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.config import Config
from bot.simulator import REPOSITORY, SeedReport
from bot.store.cleanup import CleanupMarks
from bot.store.db import Database
from jobs.dev_cleanup import DevCleanupOptions, clean

REVISIONS = 5_000
IMAGES = 10_000
FAMILY = "menotime-backend-dev"
SERVICES = ("ecs", "ecr", "rds", "ec2", "logs")
_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "config": {"size": 7023, "digest": "sha256:" + "c" * 64},
        "layers": [{"size": 1, "digest": "sha256:" + "d" * 64}],
    }
)


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def _build(aws: AwsGateway, seeded: SeedReport, now: datetime) -> dict[str, int]:
    """5,000 more dev revisions (the oldest 1,000 past the retention), each running one of 500
    SHA-tagged images;
    10,000 more images: the 500 referenced, 1,000 old untagged, 500 old feature-*, 1,000 old PR-*
    (staging's), 7,000 fresh."""
    region = aws.region
    ecs = ecs_backends[DEFAULT_ACCOUNT_ID][region]
    uri = seeded.repository_uri
    for i in range(REVISIONS):
        ecs.register_task_definition(
            family=FAMILY,
            container_definitions=[{"name": "app", "image": f"{uri}:{i % 500:07x}", "essential": True}],
            tags=[{"key": "Environment", "value": "dev"}],
            requires_compatibilities=["FARGATE"],
            cpu="512",
            memory="1024",
        )
    revisions = sorted(ecs.task_definitions[FAMILY])
    fresh_from = 1_000 + 3  # the seed's three revisions come first
    for position, revision in enumerate(revisions):
        age = (
            timedelta(days=2) if position >= fresh_from else timedelta(days=90) - timedelta(minutes=position)
        )
        ecs.task_definitions[FAMILY][revision].registered_at = now - age

    repo = ecr_backends[DEFAULT_ACCOUNT_ID][region].repositories[REPOSITORY]
    plan: list[tuple[str | None, timedelta]] = (
        [(f"{k:07x}", timedelta(days=60)) for k in range(500)]
        + [(None, timedelta(days=60))] * 1_000
        + [(f"feature-scale-{k}", timedelta(days=45)) for k in range(500)]
        + [(f"PR-{k}", timedelta(days=45)) for k in range(1_000)]
        + [(f"feature-fresh-{k}", timedelta(days=3)) for k in range(7_000)]
    )
    for n, (tag, age) in enumerate(plan):
        image = Image(
            DEFAULT_ACCOUNT_ID,
            tag,
            _MANIFEST,
            REPOSITORY,
            _MEDIA_TYPE,
            digest=_digest(n),
            registry_id=DEFAULT_ACCOUNT_ID,
        )
        image.image_pushed_at = int((now - age).timestamp())
        repo.images.append(image)
    return {"revisions": len(revisions), "old_revisions": fresh_from, "images": len(repo.images)}


class CallCounter:
    """Every AWS API request (each page included), by operation, through botocore's event hooks."""

    def __init__(self, aws: AwsGateway) -> None:
        self.calls: Counter[str] = Counter()
        for service in SERVICES:
            aws.client(service).meta.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken


def test_ten_thousand_images_and_five_thousand_revisions(
    seeded_aws: AwsGateway,
    seeded: SeedReport,
    config: Config,
    sqlite_url: str,
) -> None:
    from bot.store import migrate

    aws = seeded_aws
    clock = FrozenClock(datetime.now(UTC))
    sizes = _build(aws, seeded, clock.now())
    db = Database(sqlite_url)
    migrate.upgrade(db)
    counter = CallCounter(aws)
    options = DevCleanupOptions.model_validate({"default_cap": {"max_count": 10_000, "max_share": 0.95}})

    first = clean(aws=aws, db=db, config=config, options=options, now=clock.now(), run_id=1)
    first_calls = counter.take()
    clock.advance(days=7)
    second = clean(aws=aws, db=db, config=config, options=options, now=clock.now(), run_id=2)
    calls = counter.take()

    # Correct result. Revisions: all old ones but the one the service runs (its own seed revision 3).
    old_revisions = sizes["old_revisions"] - 1
    assert len(first.kind("task_definitions").marked) == old_revisions
    assert len(second.kind("task_definitions").deleted) == old_revisions
    remaining = aws.paginate("ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=FAMILY)
    assert len(remaining) == sizes["revisions"] - old_revisions
    # Images: the 1,000 untagged and 500 feature-scale ones; never the referenced, staging's or fresh.
    assert len(second.kind("ecr_images").deleted) == 1_500
    left = aws.paginate("ecr", "describe_images", "imageDetails", repositoryName=REPOSITORY)
    assert len(left) == sizes["images"] - 1_500
    left_tags = {t for image in left for t in image.get("imageTags") or []}
    assert not any(t.startswith("feature-scale-") for t in left_tags) and all(
        image.get("imageTags") for image in left
    )
    assert {f"{k:07x}" for k in range(500)} <= left_tags and "PR-999" in left_tags
    assert CleanupMarks(db).all() == {}
    assert second.outcome == "succeeded" and not second.errors

    # AWS calls, per run: pages, deletion batches, and the reads ECS forces (see the module docstring).
    active = sizes["revisions"] + 6  # staging's and prod's three revisions each
    pages = math.ceil(active / 100) + math.ceil(sizes["images"] / 1000)
    fixed = 12  # services, tasks, the dev service's image, snapshots, volumes, log groups
    for run_calls in (first_calls, calls):
        assert run_calls["ListTaskDefinitions"] <= math.ceil(active / 100)
        assert run_calls["DescribeImages"] <= math.ceil(sizes["images"] / 1000)
    assert first_calls["DescribeTaskDefinition"] == active + 1  # + the dev service's own, for its image
    assert first_calls["ListTagsForResource"] == 0  # the describes brought the tags
    assert first_calls["DeregisterTaskDefinition"] == first_calls["BatchDeleteImage"] == 0
    assert sum(first_calls.values()) <= pages + active + 1 + fixed, first_calls
    assert calls["DescribeTaskDefinition"] == 1  # nothing new since the first run
    assert calls["ListTagsForResource"] == calls["DeregisterTaskDefinition"] == old_revisions
    assert calls["BatchDeleteImage"] == math.ceil(1_500 / 100)
    assert sum(calls.values()) <= pages + 1 + 2 * old_revisions + math.ceil(1_500 / 100) + fixed, calls
