"""The RDS and ECS calls of the refresh, and a poller (RDS waiters misbehave around renames).

Every call goes through the AWS gateway. Instances are recognised as a refresh's own by the
``menotime:refresh-run`` tag it puts on the restored copy: that tag follows the instance through
its renames, so a resumed run can tell which instance is which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from bot.aws import AwsGateway, error_code
from bot.clock import Clock
from bot.errors import BotError

RUN_TAG = "menotime:refresh-run"
SNAPSHOT_TAG = "menotime:refreshed-from"
_NOT_FOUND = {"DBInstanceNotFound", "DBInstanceNotFoundFault"}


class RefreshFailed(BotError):
    """A step could not be done (RDS refused, an instance never became ready); the run fails cleanly."""

    kind = "refresh_failed"


class RefreshRefused(BotError):
    """Nothing can be started (no automated snapshot, no locked-down security group…); nothing was created."""

    kind = "refresh_refused"


@dataclass(frozen=True)
class Instance:
    identifier: str
    status: str
    run_tag: str | None
    instance_class: str
    subnet_group: str | None
    parameter_group: str | None
    master_username: str
    db_name: str | None
    host: str | None
    port: int | None
    backup_retention: int | None = None  # days, as applied (a pending change does not count yet)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Instance:
        tags = {t["Key"]: t["Value"] for t in raw.get("TagList", [])}
        groups = raw.get("DBParameterGroups") or [{}]
        endpoint = raw.get("Endpoint") or {}
        return cls(
            identifier=raw["DBInstanceIdentifier"],
            status=raw.get("DBInstanceStatus", "unknown"),
            run_tag=tags.get(RUN_TAG),
            instance_class=raw["DBInstanceClass"],
            subnet_group=(raw.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
            parameter_group=groups[0].get("DBParameterGroupName"),
            master_username=raw.get("MasterUsername", ""),
            db_name=raw.get("DBName"),
            host=endpoint.get("Address"),
            port=endpoint.get("Port"),
            backup_retention=raw.get("BackupRetentionPeriod"),
        )

    @property
    def backups_off(self) -> bool:
        return self.backup_retention == 0


@dataclass(frozen=True)
class Poller:
    """Looks again every ``interval`` seconds until ``timeout``. Bounded by the clock and by the number
    of looks, so a frozen clock with a no-op sleep (tests) still ends."""

    clock: Clock
    sleep: Callable[[float], None]
    interval: float
    timeout: float
    on_wait: Callable[[], None] = lambda: None  # renew the run's lease while waiting

    def until(self, what: str, done: Callable[[], bool]) -> None:
        started: datetime = self.clock.now()
        looks = max(1, int(self.timeout // self.interval) + 1)
        for _ in range(looks):
            if done():
                return
            if (self.clock.now() - started).total_seconds() >= self.timeout:
                break
            self.sleep(self.interval)
            self.on_wait()
        if done():
            return
        raise RefreshFailed(f"timed out after {self.timeout / 60:g} min waiting for {what}")


def describe(aws: AwsGateway, identifier: str) -> Instance | None:
    try:
        found = aws.call("rds", "describe_db_instances", DBInstanceIdentifier=identifier)["DBInstances"]
    except ClientError as exc:
        if error_code(exc) in _NOT_FOUND:
            return None
        raise
    return Instance.parse(found[0]) if found else None


def latest_automated_snapshot(aws: AwsGateway, source: str) -> dict[str, Any] | None:
    snapshots = aws.paginate(
        "rds", "describe_db_snapshots", "DBSnapshots", DBInstanceIdentifier=source, SnapshotType="automated"
    )
    usable = [s for s in snapshots if s.get("Status") == "available" and s.get("SnapshotType") == "automated"]
    return max(usable, key=lambda s: s["SnapshotCreateTime"], default=None)


def restore(
    aws: AwsGateway,
    *,
    snapshot_id: str,
    identifier: str,
    template: Instance,
    run_id: str,
    security_group_ids: tuple[str, ...],
    instance_class: str | None,
    subnet_group: str | None,
    parameter_group: str | None,
) -> None:
    params: dict[str, Any] = {
        "DBInstanceIdentifier": identifier,
        "DBSnapshotIdentifier": snapshot_id,
        "DBInstanceClass": instance_class or template.instance_class,
        "VpcSecurityGroupIds": list(security_group_ids),
        "PubliclyAccessible": False,
        "MultiAZ": False,
        "DeletionProtection": False,
        "BackupRetentionPeriod": 0,  # no automated backup of the unmasked copy (reset_master_password insists)
        "Tags": [
            {"Key": "Environment", "Value": "staging"},
            {"Key": RUN_TAG, "Value": run_id},
            {"Key": SNAPSHOT_TAG, "Value": snapshot_id},
        ],
    }
    if subnet_group or template.subnet_group:
        params["DBSubnetGroupName"] = subnet_group or template.subnet_group
    if parameter_group or template.parameter_group:
        params["DBParameterGroupName"] = parameter_group or template.parameter_group
    aws.call("rds", "restore_db_instance_from_db_snapshot", **params)


def reset_master_password(aws: AwsGateway, *, identifier: str, password: str) -> None:
    """Sets the copy's master password and turns its automated backups off.

    A snapshot of an instance whose password RDS manages restores with that management on; turn it
    off so the password is the one this run chose (and stored). Backups off (retention 0, applied
    now) deletes the copy's automated backups and point-in-time-restore window: they hold prod's
    unmasked data and would otherwise belong to staging after the swap."""
    aws.call(
        "rds",
        "modify_db_instance",
        DBInstanceIdentifier=identifier,
        MasterUserPassword=password,
        ManageMasterUserPassword=False,
        BackupRetentionPeriod=0,
        ApplyImmediately=True,
    )


def set_backup_retention(aws: AwsGateway, *, identifier: str, days: int) -> None:
    aws.call(
        "rds",
        "modify_db_instance",
        DBInstanceIdentifier=identifier,
        BackupRetentionPeriod=days,
        ApplyImmediately=True,
    )


def rename(aws: AwsGateway, *, identifier: str, new_identifier: str) -> None:
    aws.call(
        "rds",
        "modify_db_instance",
        DBInstanceIdentifier=identifier,
        NewDBInstanceIdentifier=new_identifier,
        ApplyImmediately=True,
    )


def delete(aws: AwsGateway, *, identifier: str) -> bool:
    """Deletes without a final snapshot (only ever a refresh's own copy or a replaced staging
    instance); False if it was already gone."""
    try:
        aws.call(
            "rds",
            "delete_db_instance",
            DBInstanceIdentifier=identifier,
            SkipFinalSnapshot=True,
            DeleteAutomatedBackups=True,
        )
    except ClientError as exc:
        if error_code(exc) in _NOT_FOUND:
            return False
        if (
            error_code(exc) == "InvalidDBInstanceState"
            and (found := describe(aws, identifier)) is not None
            and found.status == "deleting"
        ):
            return True
        raise
    return True


def force_new_deployment(aws: AwsGateway, *, cluster: str, service: str) -> str | None:
    """Returns the id of the new primary deployment."""
    answer = aws.call("ecs", "update_service", cluster=cluster, service=service, forceNewDeployment=True)
    primary = [d for d in answer["service"].get("deployments", []) if d.get("status") == "PRIMARY"]
    return primary[0].get("id") if primary else None
