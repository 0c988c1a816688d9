"""Dev clutter for the demo and the tests: old and fresh dev resources of every kind, in the simulator.

moto stamps every resource with the wall-clock time it was created, so "forty days old" cannot be
made through the API. :class:`Backdater` moves creation times in the in-process moto (``mock_aws``
or :class:`bot.simulator.Simulator`, which share the process's moto state) — the only place the
cleanup reaches into moto's internals. It raises LookupError against a moto in another process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.aws import AwsGateway
from bot.config import Config
from bot.simulator import REPOSITORY, image_manifest
from jobs.dev_cleanup.options import DevCleanupOptions

OLD = timedelta(days=45)
FRESH = timedelta(days=2)
_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


class Backdater:
    """Creation times of resources in the in-process moto, set to any moment."""

    def __init__(self, *, account_id: str, region: str) -> None:
        self.account_id, self.region = account_id, region

    def _backend(self, module: str, name: str) -> Any:
        import importlib

        backends = getattr(importlib.import_module(f"moto.{module}.models"), name)
        try:
            return backends[self.account_id][self.region]
        except KeyError:
            raise LookupError(f"no in-process moto {module} for {self.account_id}/{self.region}") from None

    @staticmethod
    def _naive(at: datetime) -> datetime:
        return at.astimezone(UTC).replace(tzinfo=None)  # moto keeps naive UTC

    def revision(self, family: str, revision: int, at: datetime) -> None:
        taskdef = self._backend("ecs", "ecs_backends").task_definitions[family][revision]
        taskdef.registered_at = at.astimezone(UTC)

    def image(self, repository: str, digest: str, at: datetime) -> None:
        repo = self._backend("ecr", "ecr_backends").repositories[repository]
        found = [img for img in repo.images if img.get_image_digest() == digest]
        if not found:
            raise LookupError(f"no image {digest} in {repository}")
        for img in found:
            img.image_pushed_at = int(at.timestamp())

    def images(self, repository: str, at_by_digest: dict[str, datetime]) -> None:
        """Many images in one pass over the repository (the scale test has ten thousand)."""
        repo = self._backend("ecr", "ecr_backends").repositories[repository]
        for img in repo.images:
            at = at_by_digest.get(img.get_image_digest())
            if at is not None:
                img.image_pushed_at = int(at.timestamp())

    def snapshot(self, identifier: str, at: datetime) -> None:
        self._backend("rds", "rds_backends").database_snapshots[identifier].created = self._naive(at)

    def volume(self, volume_id: str, at: datetime) -> None:
        self._backend("ec2", "ec2_backends").volumes[volume_id].create_time = self._naive(at)

    def log_group(self, name: str, at: datetime) -> None:
        group = self._backend("logs", "logs_backends").groups[name]
        group.creation_time = self._naive(at)
        for stream in group.streams.values():
            stream.creation_time = self._naive(at)


@dataclass(frozen=True)
class DevClutter:
    """What :func:`seed_dev_clutter` made, by what a cleanup should do with it."""

    candidates: tuple[str, ...]  # old, unprotected: marked by the first run, deleted by the next
    spared: tuple[str, ...]  # old but protected (keep tag, in use, look-alike, other env) or fresh
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.candidates) + len(self.spared)


def seed_dev_clutter(gateway: AwsGateway, config: Config, *, now: datetime) -> DevClutter:
    """Old and fresh dev resources of every kind, after :func:`bot.simulator.seed_environments`.

    Times are relative to ``now`` (the demo's clock). The dev family gets eight more revisions (the
    oldest ones 45 days old, the newest two fresh); the repository old and fresh dev images, an old
    untagged one and an old unreferenced staging one; menotime-dev manual snapshots; dev EBS volumes;
    dev log groups — each kind with something to delete, something kept by tag and something too new.
    """
    dev = config.environments["dev"]
    repository = gateway.call("ecr", "describe_repositories", repositoryNames=[REPOSITORY])["repositories"][0]
    back = Backdater(account_id=str(repository["registryId"]), region=gateway.region)
    old, fresh = now - OLD, now - FRESH
    candidates: list[str] = []
    spared: list[str] = []
    dev_tag = {"Key": "Environment", "Value": "dev"}
    keep_tag = {"Key": "menotime:keep", "Value": "true"}

    # Task-definition revisions: copy the service's revision, then date every revision of the family.
    service = gateway.call("ecs", "describe_services", cluster=dev.cluster, services=[dev.service])[
        "services"
    ][0]
    base = gateway.call("ecs", "describe_task_definition", taskDefinition=service["taskDefinition"])[
        "taskDefinition"
    ]
    kept_revision = 0
    for index in range(8):
        tags = [{"key": "Environment", "value": "dev"}]
        if index == 1:
            tags.append({"key": "menotime:keep", "value": "true"})
        registered = gateway.call(
            "ecs",
            "register_task_definition",
            family=dev.task_family,
            containerDefinitions=base["containerDefinitions"],
            cpu=base.get("cpu"),
            memory=base.get("memory"),
            networkMode=base.get("networkMode", "awsvpc"),
            requiresCompatibilities=base.get("requiresCompatibilities", ["FARGATE"]),
            tags=tags,
        )
        if index == 1:
            kept_revision = int(registered["taskDefinition"]["revision"])
    arns = gateway.paginate(
        "ecs",
        "list_task_definitions",
        "taskDefinitionArns",
        familyPrefix=dev.task_family,
        status="ACTIVE",
        sort="ASC",
    )
    revisions = sorted(int(a.rsplit(":", 1)[1]) for a in arns)
    for position, revision in enumerate(revisions):
        is_fresh = position >= len(revisions) - 2
        back.revision(dev.task_family, revision, (fresh if is_fresh else old) + timedelta(hours=position))
    in_use = int(str(service["taskDefinition"]).rsplit(":", 1)[1])
    keep_newest = DevCleanupOptions().keep_newest  # the default the demo runs with
    for position, revision in enumerate(revisions):
        label = f"{dev.task_family}:{revision}"
        protected = revision in (in_use, kept_revision) or position >= len(revisions) - keep_newest
        (spared if protected else candidates).append(label)

    # ECR: old dev images nobody runs, an old untagged one, an old staging one, a fresh dev one.
    pushes = {
        "feature-old-search": old,
        "feature-old-billing": old,
        "0badc0ffee42": old,
        "PR-7": old,
        "feature-fresh": fresh,
    }
    for tag, at in pushes.items():
        image = gateway.call(
            "ecr",
            "put_image",
            repositoryName=REPOSITORY,
            imageTag=tag,
            imageManifest=image_manifest(tag),
            imageManifestMediaType=_MANIFEST_TYPE,
        )["image"]
        back.image(REPOSITORY, image["imageId"]["imageDigest"], at)
        (candidates if at is old and dev.image_tags.accepts(tag) else spared).append(f"{REPOSITORY}:{tag}")
    untagged = gateway.call(
        "ecr",
        "put_image",
        repositoryName=REPOSITORY,
        imageManifest=image_manifest("untagged"),
        imageManifestMediaType=_MANIFEST_TYPE,
    )["image"]
    back.image(REPOSITORY, untagged["imageId"]["imageDigest"], old)
    candidates.append(f"{REPOSITORY}@{untagged['imageId']['imageDigest'][7:19]} (untagged)")

    # RDS manual snapshots of menotime-dev.
    snapshots = {
        f"{dev.rds_instance}-before-migration": ([dev_tag], old, True),
        f"{dev.rds_instance}-baseline": ([dev_tag, keep_tag], old, False),
        f"{dev.rds_instance}-yesterday": ([dev_tag], fresh, False),
    }
    for ident, (tags, at, goes) in snapshots.items():
        gateway.call(
            "rds",
            "create_db_snapshot",
            DBInstanceIdentifier=dev.rds_instance,
            DBSnapshotIdentifier=ident,
            Tags=tags,
        )
        back.snapshot(ident, at)
        (candidates if goes else spared).append(ident)

    # EBS volumes of dev, available (nothing attached).
    zone = gateway.call("ec2", "describe_availability_zones")["AvailabilityZones"][0]["ZoneName"]
    volumes = {
        "menotime-dev-scratch": ([dev_tag], old, True),
        "menotime-dev-fixtures": ([dev_tag, keep_tag], old, False),
        "menotime-dev-recent": ([dev_tag], fresh, False),
        "menotime-prod-restore-test": ([dev_tag], old, False),
    }
    for name, (tags, at, goes) in volumes.items():
        vol = gateway.call(
            "ec2",
            "create_volume",
            AvailabilityZone=zone,
            Size=20,
            VolumeType="gp3",
            TagSpecifications=[{"ResourceType": "volume", "Tags": [*tags, {"Key": "Name", "Value": name}]}],
        )
        back.volume(vol["VolumeId"], at)
        (candidates if goes else spared).append(f"{vol['VolumeId']} {name}")

    # Log groups under dev's prefixes.
    groups = {
        f"/ecs/{dev.task_family}": (False, fresh, False),
        f"/ecs/menotime-{dev.name}-old-worker": (False, old, True),
        f"/aws/rds/instance/{dev.rds_instance}/postgresql": (True, old, False),
    }
    for name, (keep, at, goes) in groups.items():
        group_tags = {"Environment": "dev", **({"menotime:keep": "true"} if keep else {})}
        gateway.call("logs", "create_log_group", logGroupName=name, tags=group_tags)
        gateway.call("logs", "create_log_stream", logGroupName=name, logStreamName="app/1")
        back.log_group(name, at)
        (candidates if goes else spared).append(name)

    return DevClutter(candidates=tuple(candidates), spared=tuple(spared))
