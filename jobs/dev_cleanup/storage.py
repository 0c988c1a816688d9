"""Manual RDS snapshots of the dev instance and available EBS volumes of dev."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from jobs.dev_cleanup.guards import has_dev_tag, has_keep_tag
from jobs.dev_cleanup.model import (
    AGE_UNKNOWN,
    AUTOMATED,
    GIB,
    IN_USE,
    KEEP_TAG,
    LOOKS_FOREIGN,
    NO_ENV_TAG,
    NOT_DEV_NAME,
    TOO_NEW,
    ItemError,
    Resource,
    Scope,
    Survey,
    Tally,
    delete_each,
    tag_map,
)


class RdsSnapshots:
    kind = "rds_snapshots"
    label = "RDS manual snapshots"
    # Manual snapshot storage; billed incrementally by AWS, so the allocated size is an upper bound.
    usd_per_gib_month = 0.095

    def survey(self, scope: Scope) -> Survey:
        tally = Tally(self.kind)
        snapshots = scope.aws.paginate(
            "rds", "describe_db_snapshots", "DBSnapshots", DBInstanceIdentifier=scope.rds_instance
        )
        for snap in snapshots:
            ident = str(snap["DBSnapshotIdentifier"])
            if snap.get("DBInstanceIdentifier") != scope.rds_instance:
                continue  # not this instance's (moto and AWS both filter, this is belt and braces)
            tags = tag_map(snap.get("TagList"))
            created = snap.get("SnapshotCreateTime")
            if snap.get("SnapshotType") != "manual":
                tally.spare(AUTOMATED)  # never touched: automated snapshots follow the backup retention
            elif scope.names.looks_foreign(ident):
                tally.spare(LOOKS_FOREIGN)
            elif scope.options.require_env_tag and not has_dev_tag(tags):
                tally.spare(NO_ENV_TAG)
            elif has_keep_tag(tags):
                tally.spare(KEEP_TAG)
            elif snap.get("Status") not in (None, "available"):
                tally.spare(IN_USE)
            elif created is None:
                tally.spare(AGE_UNKNOWN)
            elif created > scope.cutoff:
                tally.spare(TOO_NEW)
            else:
                gib = int(snap.get("AllocatedStorage") or 0)
                tally.take(
                    Resource(kind=self.kind, id=ident, label=f"{ident} ({gib} GiB)", size_bytes=gib * GIB)
                )
        return tally.survey()

    def delete(self, scope: Scope, resources: Sequence[Resource]) -> tuple[list[Resource], list[ItemError]]:
        return delete_each(
            scope,
            resources,
            self.kind,
            lambda r: scope.aws.call("rds", "delete_db_snapshot", DBSnapshotIdentifier=r.id),
        )


class EbsVolumes:
    kind = "ebs_volumes"
    label = "EBS volumes (available)"
    usd_per_gib_month = 0.08  # gp3

    def survey(self, scope: Scope) -> Survey:
        tally = Tally(self.kind)
        cutoff = scope.now - timedelta(days=scope.options.volume_min_age_days)
        volumes = scope.aws.paginate(
            "ec2", "describe_volumes", "Volumes", Filters=[{"Name": "tag:Environment", "Values": ["dev"]}]
        )
        for vol in volumes:
            tags = tag_map(vol.get("Tags"))
            name = tags.get("Name", "")
            created = vol.get("CreateTime")
            if not has_dev_tag(tags):
                tally.spare(NO_ENV_TAG)
            elif name and scope.names.looks_foreign(name):
                tally.spare(LOOKS_FOREIGN)
            elif not scope.names.is_dev(name):
                tally.spare(NOT_DEV_NAME)  # another team's dev-tagged volume in a shared account
            elif has_keep_tag(tags):
                tally.spare(KEEP_TAG)
            elif vol.get("State") != "available":
                tally.spare(IN_USE)
            elif created is None:
                tally.spare(AGE_UNKNOWN)
            elif created > cutoff:
                tally.spare(TOO_NEW)
            else:
                ident = str(vol["VolumeId"])
                gib = int(vol.get("Size") or 0)
                label = f"{ident} {name} ({gib} GiB)" if name else f"{ident} ({gib} GiB)"
                tally.take(Resource(kind=self.kind, id=ident, label=label, size_bytes=gib * GIB))
        return tally.survey()

    def delete(self, scope: Scope, resources: Sequence[Resource]) -> tuple[list[Resource], list[ItemError]]:
        return delete_each(
            scope, resources, self.kind, lambda r: scope.aws.call("ec2", "delete_volume", VolumeId=r.id)
        )
