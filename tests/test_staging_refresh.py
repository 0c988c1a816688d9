"""The staging refresh against moto (RDS, ECS, Secrets Manager) with a fake anonymize step.

The anonymizer itself is not the point here (tests/test_staging_refresh_pg.py runs the real one):
what is checked is what an operator would see in AWS and in Slack — which instance is staging at the
end, that nothing half-done survives a crash or a failed verification, and that no password or
database text reaches the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.config import Config, load_config
from bot.errors import ConfigError
from bot.job import JobContext
from bot.render import render_slack, render_text
from bot.settings import Settings
from bot.store import migrate
from bot.store.db import Database
from bot.store.refresh import RefreshRuns
from jobs.staging_refresh import (
    SPECS,
    STEPS,
    RefreshOptions,
    RefreshReport,
    Verification,
    job_spec,
    prepare_simulated_refresh,
    refresh_staging,
)
from jobs.staging_refresh import rds as refresh_rds
from jobs.staging_refresh.rds import RUN_TAG
from jobs.staging_refresh.secrets import version_token
from tests.blockkit import assert_valid_message
from tests.conftest import REGION, TEST_ROLES

STAGING, NEXT, OLD = "menotime-staging", "menotime-staging-next", "menotime-staging-old-20261124"
COPY_DSN = "postgresql://refresh@127.0.0.1:5432/menotime_refresh_copy"
CLUSTER, SERVICE = "menotime-staging-cluster", "menotime-staging-service"


class SimulatedCrash(BaseException):
    """The process dying: not an Exception, so the refresh neither cleans up nor releases its lock."""


@dataclass
class FakeAnonymizer:
    result: Verification = field(default_factory=lambda: Verification(ok=True, summary="9 tables, 0 leaks"))
    raises: BaseException | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    meanwhile: Callable[[Callable[[str], None]], None] = lambda _on_progress: (
        None
    )  # what happens while it masks

    def __call__(
        self,
        *,
        dsn: str,
        rules_path: str | None,
        salt: bytes,
        on_progress: Callable[[str], None] = lambda _m: None,
    ) -> Verification:
        self.calls.append({"dsn": dsn, "rules_path": rules_path, "salt": salt})
        self.meanwhile(on_progress)
        if self.raises is not None:
            raise self.raises
        return self.result


@dataclass
class FakeDatabaseGate:
    """The copy's databases the anonymizer would not mask (tests/test_staging_refresh_pg.py runs the real one)."""

    others: tuple[str, ...] = ()
    calls: list[frozenset[str]] = field(default_factory=list)

    def __call__(self, *, dsn: str, safe: frozenset[str]) -> tuple[str, ...]:
        self.calls.append(safe)
        return tuple(name for name in self.others if name not in safe)


@dataclass
class Harness:
    aws: AwsGateway
    config: Config
    clock: FrozenClock
    db: Database
    options: RefreshOptions
    anonymizer: FakeAnonymizer
    gate: FakeDatabaseGate = field(default_factory=FakeDatabaseGate)
    posts: list[RefreshReport] = field(default_factory=list)

    def run(self, *, after_step: Callable[[str], None] = lambda _s: None, **overrides: Any) -> RefreshReport:
        kwargs: dict[str, Any] = {
            "options": self.options,
            "anonymize_step": self.anonymizer,
            "database_gate": self.gate,
            **overrides,
        }
        return refresh_staging(
            db=self.db,
            aws=self.aws,
            clock=self.clock,
            config=self.config,
            sleep=lambda _s: None,
            progress=self.posts.append,
            after_step=after_step,
            **kwargs,
        )

    def instances(self) -> dict[str, dict[str, Any]]:
        found = self.aws.paginate("rds", "describe_db_instances", "DBInstances")
        return {i["DBInstanceIdentifier"]: i for i in found}

    def deployment_ids(self) -> list[str]:
        service = self.aws.call("ecs", "describe_services", cluster=CLUSTER, services=[SERVICE])["services"][
            0
        ]
        return [d["id"] for d in service["deployments"]]

    def forget_moto_backups_of_the_copy(self) -> None:
        """moto snapshots each new instance as ``rds:<name>-<wall-clock minute>``: a second restore
        as ``-next`` within the same real minute would collide (AWS has no such limit)."""
        for snapshot in self.aws.paginate(
            "rds", "describe_db_snapshots", "DBSnapshots", SnapshotType="automated"
        ):
            if snapshot["DBSnapshotIdentifier"].startswith(f"rds:{NEXT}-"):
                self.aws.call(
                    "rds", "delete_db_snapshot", DBSnapshotIdentifier=snapshot["DBSnapshotIdentifier"]
                )

    def after_lease_expiry(self) -> None:
        self.clock.advance(minutes=self.options.lease_minutes + 1)


def run_tag(instance: dict[str, Any]) -> str | None:
    return {t["Key"]: t["Value"] for t in instance.get("TagList", [])}.get(RUN_TAG)


def crash_at(step: str) -> Callable[[str], None]:
    def hook(done: str) -> None:
        if done == step:
            raise SimulatedCrash(step)

    return hook


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def harness(seeded_aws: AwsGateway, config: Config, clock: FrozenClock, store: Database) -> Harness:
    options = prepare_simulated_refresh(
        seeded_aws, config, now=clock.now(), dsn_for_next=COPY_DSN, shared_server=False
    )
    return Harness(
        aws=seeded_aws, config=config, clock=clock, db=store, options=options, anonymizer=FakeAnonymizer()
    )


def assert_refreshed(h: Harness, *, by: str) -> None:
    """The end state every successful refresh converges to: the copy of run ``by`` is staging, the
    replaced staging exists once under its old name, no copy is left over."""
    names = h.instances()
    assert NEXT not in names
    assert run_tag(names[STAGING]) == by
    olds = [name for name in names if name.startswith(f"{STAGING}-old-")]
    assert olds == [OLD]
    assert run_tag(names[OLD]) is None  # the original staging instance, not a copy
    assert {"menotime-dev", "menotime-prod"} <= set(names)


# -- the whole refresh -----------------------------------------------------------------------------


def test_full_refresh_swaps_in_an_anonymized_private_copy_and_redeploys_staging(harness: Harness) -> None:
    deployments_before = harness.deployment_ids()

    report = harness.run()

    assert report.outcome == "succeeded", report.headline
    assert_refreshed(harness, by=str(report.run_id))
    staging = harness.instances()[STAGING]
    assert staging["PubliclyAccessible"] is False
    assert [g["VpcSecurityGroupId"] for g in staging["VpcSecurityGroups"]] == list(
        harness.options.security_group_ids
    )
    assert {"Key": "Environment", "Value": "staging"} in staging["TagList"]
    assert staging["DBInstanceClass"] == "db.m7g.large"
    # The service was redeployed (it reads the new credentials when its tasks start).
    assert harness.deployment_ids() != deployments_before
    # The anonymizer worked on the copy through the configured DSN, with the salt from Secrets Manager.
    [call] = harness.anonymizer.calls
    assert call["dsn"] == COPY_DSN
    assert len(call["salt"]) >= 16
    # Each step is in the report with its outcome, and the verification summary is there.
    assert [(s.step, s.outcome) for s in report.steps] == [(step, "done") for step in STEPS]
    assert report.verification == "9 tables, 0 leaks" and report.verification_ok is True
    assert dict(report.names)["replaced instance"] == OLD
    assert report.template == "staging_refresh" and report.audience == "in_channel"


def test_progress_is_one_message_updated_after_every_step(harness: Harness) -> None:
    report = harness.run()

    # Updated when each step starts and when it ends, and finally to show how the run ended.
    assert len(harness.posts) == 2 * len(STEPS) + 1
    assert {p.status for p in harness.posts[:-1]} == {"running"}
    assert [s.outcome for s in harness.posts[-2].steps] == ["done"] * len(STEPS)
    assert harness.posts[-1] == report
    for shown in (*harness.posts, report):
        assert_valid_message(render_slack(shown))
    text = render_text(report)
    assert OLD in text and "Anonymize and verify" in text and "Verification passed" in text


def test_the_new_master_password_is_stored_pending_until_the_swap_and_never_shown(harness: Harness) -> None:
    options = harness.options.model_copy(update={"dsn_overrides": {}})  # connect as in production
    passwords_seen: list[str] = []

    def peek(step: str) -> None:
        if step == "password":
            versions = harness.aws.call(
                "secretsmanager", "list_secret_version_ids", SecretId=options.master_secret_id
            )["Versions"]
            passwords_seen.extend(v["VersionId"] for v in versions)

    report = harness.run(options=options, after_step=peek)

    assert report.outcome == "succeeded", report.headline
    token = version_token(str(report.run_id))
    assert token in passwords_seen
    secret = harness.aws.call(
        "secretsmanager", "get_secret_value", SecretId=options.master_secret_id, VersionId=token
    )
    password = json.loads(secret["SecretString"])["password"]
    assert len(password) >= 32
    stages = {
        v["VersionId"]: v["VersionStages"]
        for v in harness.aws.call(
            "secretsmanager", "list_secret_version_ids", SecretId=options.master_secret_id
        )["Versions"]
    }
    assert "AWSCURRENT" in stages[token]
    # The anonymizer connected to the copy's endpoint with the reset credentials…
    dsn = harness.anonymizer.calls[0]["dsn"]
    assert "menotime-staging-next." in dsn and "user=menotime_admin" in dsn and password in dsn
    assert "sslmode=require" in dsn
    # …and the password is nowhere an operator or the store can see.
    shown = render_text(report) + json.dumps(render_slack(report))
    assert password not in shown
    runs = RefreshRuns(harness.db)
    assert password not in json.dumps(runs.get(str(report.run_id)).state)  # type: ignore[union-attr]
    assert all(password not in (s.detail or "") for s in runs.steps(str(report.run_id)))


# -- crashes and convergence -----------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_after_any_step_is_resumed_by_the_next_run(harness: Harness, step: str) -> None:
    with pytest.raises(SimulatedCrash):
        harness.run(after_step=crash_at(step))
    [crashed] = RefreshRuns(harness.db).unfinished()
    harness.after_lease_expiry()

    report = harness.run()

    assert report.outcome == "succeeded", report.headline
    assert report.run_id == crashed.id
    assert any("Resumed run" in note for note in report.notes)
    assert_refreshed(harness, by=crashed.id)
    assert len(harness.anonymizer.calls) == 1  # a verified copy is never anonymized twice
    assert RefreshRuns(harness.db).unfinished() == []


def test_a_crash_between_the_two_renames_is_finished_by_the_next_run(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rename = refresh_rds.rename

    def dies_before_renaming_the_copy(aws: AwsGateway, *, identifier: str, new_identifier: str) -> None:
        if identifier == NEXT:
            raise SimulatedCrash("between the renames")
        real_rename(aws, identifier=identifier, new_identifier=new_identifier)

    monkeypatch.setattr(refresh_rds, "rename", dies_before_renaming_the_copy)
    with pytest.raises(SimulatedCrash):
        harness.run()
    assert STAGING not in harness.instances()  # the outage a crash here leaves behind…
    monkeypatch.setattr(refresh_rds, "rename", real_rename)
    harness.after_lease_expiry()

    report = harness.run()

    assert report.outcome == "succeeded", report.headline
    assert_refreshed(harness, by=str(report.run_id))  # …is gone: staging exists, once, and is the copy


def test_a_crash_while_anonymizing_deletes_the_half_masked_copy_and_starts_afresh(harness: Harness) -> None:
    harness.anonymizer.raises = SimulatedCrash("killed while masking")
    with pytest.raises(SimulatedCrash):
        harness.run()
    [crashed] = RefreshRuns(harness.db).unfinished()
    harness.anonymizer.raises = None
    harness.after_lease_expiry()

    report = harness.run()

    assert report.outcome == "succeeded", report.headline
    assert report.run_id != crashed.id
    assert any("half-anonymized copy was deleted" in note for note in report.notes)
    assert_refreshed(harness, by=str(report.run_id))
    assert len(harness.anonymizer.calls) == 2
    assert RefreshRuns(harness.db).get(crashed.id).status == "abandoned"  # type: ignore[union-attr]


def test_a_crash_while_deleting_a_failed_copy_is_never_resumed_into_a_second_anonymization(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.anonymizer.result = Verification(ok=False, summary="patients.email: 3 original values survived")
    real_delete = refresh_rds.delete

    def dies_while_deleting(aws: AwsGateway, *, identifier: str) -> bool:
        raise SimulatedCrash("killed while deleting the unverified copy")

    monkeypatch.setattr(refresh_rds, "delete", dies_while_deleting)
    with pytest.raises(SimulatedCrash):
        harness.run()
    [crashed] = RefreshRuns(harness.db).unfinished()
    assert crashed.step == "cleanup" and NEXT in harness.instances()
    monkeypatch.setattr(refresh_rds, "delete", real_delete)
    harness.anonymizer.result = Verification(ok=True, summary="9 tables, 0 leaks")
    harness.forget_moto_backups_of_the_copy()
    harness.after_lease_expiry()

    report = harness.run()

    # The unverified copy was deleted, not anonymized a second time and swapped in: a fresh restore was.
    assert report.outcome == "succeeded", report.headline
    assert report.run_id != crashed.id
    assert any("stopped while cleaning up after a failure" in note for note in report.notes)
    assert RefreshRuns(harness.db).get(crashed.id).status == "failed"  # type: ignore[union-attr]
    assert_refreshed(harness, by=str(report.run_id))
    assert len(harness.anonymizer.calls) == 2


def test_a_second_refresh_does_not_start_while_one_holds_the_lock(harness: Harness) -> None:
    with pytest.raises(SimulatedCrash):
        harness.run(after_step=crash_at("wait"))

    report = harness.run()  # the lock has not expired: as if the first were still running

    assert report.outcome == "refused"
    assert "another staging refresh is running" in report.headline
    assert len(harness.anonymizer.calls) == 0
    assert NEXT in harness.instances() and run_tag(harness.instances()[STAGING]) is None


# -- failures --------------------------------------------------------------------------------------


def test_a_failed_verification_never_swaps_and_deletes_the_copy(harness: Harness) -> None:
    deployments_before = harness.deployment_ids()
    harness.anonymizer.result = Verification(ok=False, summary="patients.email: 3 original values survived")

    report = harness.run()

    assert report.outcome == "failed"
    assert "verification failed" in report.headline and "Staging was not swapped" in report.headline
    assert report.verification_ok is False
    assert report.verification == "patients.email: 3 original values survived"
    names = harness.instances()
    assert NEXT not in names and not any(n.startswith(f"{STAGING}-old-") for n in names)
    assert run_tag(names[STAGING]) is None  # still the original
    assert harness.deployment_ids() == deployments_before
    outcomes = {s.step: s.outcome for s in report.steps}
    assert outcomes["anonymize"] == "failed" and outcomes["cleanup"] == "done" and "swap" not in outcomes
    assert "Verification failed" in render_text(report)


def test_an_anonymizer_error_is_a_failed_verification_reported_without_its_text(harness: Harness) -> None:
    harness.anonymizer.raises = RuntimeError(
        "connection to postgresql://admin:hunter2@10.0.0.5 failed: Jane Doe"
    )

    report = harness.run()

    assert report.outcome == "failed"
    assert NEXT not in harness.instances() and run_tag(harness.instances()[STAGING]) is None
    shown = render_text(report) + json.dumps(render_slack(report))
    assert "RuntimeError" in shown
    assert "hunter2" not in shown and "Jane Doe" not in shown


# -- what the copy carries to staging: backups, other databases -------------------------------------


def backup_retention(h: Harness, name: str) -> int:
    [instance] = h.aws.call("rds", "describe_db_instances", DBInstanceIdentifier=name)["DBInstances"]
    return int(instance["BackupRetentionPeriod"])


def test_the_copy_keeps_no_backup_while_unmasked_and_staging_gets_its_retention_back(
    harness: Harness,
) -> None:
    harness.aws.call(
        "rds",
        "modify_db_instance",
        DBInstanceIdentifier=STAGING,
        BackupRetentionPeriod=3,
        ApplyImmediately=True,
    )
    assert backup_retention(harness, "menotime-prod") == 7  # what the restored copy starts with
    seen: dict[str, int] = {}

    def after(step: str) -> None:
        if step in ("password", "swap"):
            seen[step] = backup_retention(harness, NEXT if step == "password" else STAGING)

    harness.anonymizer.meanwhile = lambda _p: seen.setdefault("anonymize", backup_retention(harness, NEXT))

    report = harness.run(after_step=after)

    assert report.outcome == "succeeded", report.headline
    # Backups off (their unmasked data deleted) from the password reset until verified and swapped in.
    assert seen == {"password": 0, "anonymize": 0, "swap": 0}
    assert backup_retention(harness, STAGING) == 3  # the replaced staging's retention, not prod's 7
    assert run_tag(harness.instances()[STAGING]) == report.run_id
    deploy = next(s for s in report.steps if s.step == "deploy")
    assert deploy.detail and deploy.detail.startswith("automated backups kept 3 days")
    assert RefreshRuns(harness.db).get(str(report.run_id)).state["staging_backup_retention"] == 3  # type: ignore[union-attr]


def test_without_a_staging_to_copy_from_backups_come_back_at_seven_days(harness: Harness) -> None:
    harness.aws.call("rds", "delete_db_instance", DBInstanceIdentifier=STAGING, SkipFinalSnapshot=True)

    def restored_with_prods_retention(step: str) -> None:
        if step == "restore":  # whatever prod's snapshot carried; moto restores its own default
            harness.aws.call(
                "rds",
                "modify_db_instance",
                DBInstanceIdentifier=NEXT,
                BackupRetentionPeriod=2,
                ApplyImmediately=True,
            )

    report = harness.run(after_step=restored_with_prods_retention)

    assert report.outcome == "succeeded", report.headline
    assert backup_retention(harness, STAGING) == 7


def test_a_failed_verification_never_turns_backups_back_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    turned_on: list[tuple[str, int]] = []
    monkeypatch.setattr(
        refresh_rds,
        "set_backup_retention",
        lambda aws, *, identifier, days: turned_on.append((identifier, days)),
    )
    harness.anonymizer.result = Verification(ok=False, summary="patients.email: 1 original value survived")

    report = harness.run()

    assert report.outcome == "failed" and turned_on == []
    assert NEXT not in harness.instances() and backup_retention(harness, STAGING) == 7


def test_a_copy_holding_another_database_is_refused_before_anonymizing(harness: Harness) -> None:
    harness.gate.others = ("reports", "postgres")

    report = harness.run()

    assert report.outcome == "failed" and "Staging was not swapped" in report.headline
    assert report.verification_ok is False
    assert report.verification and "would not mask: reports, postgres" in report.verification
    assert "extra_databases_safe" in report.verification
    assert harness.anonymizer.calls == []  # nothing masked: the copy is deleted as it is
    names = harness.instances()
    assert NEXT not in names and run_tag(names[STAGING]) is None


def test_a_database_declared_safe_does_not_stop_the_refresh(harness: Harness) -> None:
    harness.gate.others = ("reports",)

    report = harness.run(options=harness.options.model_copy(update={"extra_databases_safe": ("reports",)}))

    assert report.outcome == "succeeded", report.headline
    assert harness.gate.calls == [frozenset({"reports"})]


# -- the lock, during a long anonymization -----------------------------------------------------------


def test_the_lock_is_renewed_while_anonymizing_so_a_manual_run_cannot_take_it(harness: Harness) -> None:
    manual: list[RefreshReport] = []

    def long_masking(on_progress: Callable[[str], None]) -> None:
        for table in range(6):  # twice the lock's lifetime in all
            harness.clock.advance(minutes=harness.options.lease_minutes / 3)
            on_progress(f"masking table {table}")
        manual.append(
            refresh_staging(
                db=harness.db,
                aws=harness.aws,
                clock=harness.clock,
                config=harness.config,
                options=harness.options,
                anonymize_step=FakeAnonymizer(),
                database_gate=harness.gate,
                sleep=lambda _s: None,
                requested_by="U0OPS",
            )
        )

    harness.anonymizer.meanwhile = long_masking

    report = harness.run()

    assert [m.outcome for m in manual] == ["refused"] and "another staging refresh is running" in manual[
        0
    ].headline
    assert report.outcome == "succeeded", report.headline
    assert run_tag(harness.instances()[STAGING]) == report.run_id and NEXT not in harness.instances()


def test_a_run_that_lost_its_lock_stops_before_swapping(harness: Harness) -> None:
    from bot.store.changes import Leases
    from jobs.staging_refresh.run_state import LEASE_KEY

    def stalls_then_another_run_takes_the_lock(_on_progress: Callable[[str], None]) -> None:
        harness.after_lease_expiry()  # no progress reported meanwhile: the lock expires
        Leases(harness.db).acquire(
            env=LEASE_KEY,
            holder="manual-run",
            action="refresh",
            user="U0OPS",
            now=harness.clock.now(),
            ttl=timedelta(minutes=harness.options.lease_minutes),
        )

    harness.anonymizer.meanwhile = stalls_then_another_run_takes_the_lock
    deployments_before = harness.deployment_ids()

    report = harness.run()

    assert report.outcome == "failed"
    assert "stopped at “anonymize”: another run took its lock" in report.headline
    names = harness.instances()
    assert run_tag(names[STAGING]) is None and not any(n.startswith(f"{STAGING}-old-") for n in names)
    assert harness.deployment_ids() == deployments_before
    assert NEXT in names  # left to the lock's holder, which owns the run now
    lease = Leases(harness.db).get(LEASE_KEY, now=harness.clock.now())
    assert lease is not None and lease.holder == "manual-run"  # not released by the run that lost it


def test_no_automated_snapshot_is_refused_and_creates_nothing(harness: Harness) -> None:
    snapshots = harness.aws.paginate(
        "rds",
        "describe_db_snapshots",
        "DBSnapshots",
        DBInstanceIdentifier="menotime-prod",
        SnapshotType="automated",
    )
    for snapshot in snapshots:
        harness.aws.call("rds", "delete_db_snapshot", DBSnapshotIdentifier=snapshot["DBSnapshotIdentifier"])
    harness.aws.call(
        "rds",
        "create_db_snapshot",
        DBInstanceIdentifier="menotime-prod",
        DBSnapshotIdentifier="menotime-prod-manual",
    )  # a manual one is not taken instead
    before = set(harness.instances())

    report = harness.run()

    assert report.outcome == "refused"
    assert (
        "no automated snapshot of menotime-prod" in report.headline
        and "Nothing was created" in report.headline
    )
    assert set(harness.instances()) == before
    assert harness.anonymizer.calls == []
    with pytest.raises(ClientError):
        harness.aws.call("secretsmanager", "describe_secret", SecretId=harness.options.master_secret_id)


def test_a_missing_salt_secret_is_refused_before_anything_is_created(harness: Harness) -> None:
    harness.aws.call(
        "secretsmanager",
        "delete_secret",
        SecretId=harness.options.salt_secret_id,
        ForceDeleteWithoutRecovery=True,
    )

    report = harness.run()

    assert report.outcome == "refused"
    assert f"the anonymization salt secret {harness.options.salt_secret_id} does not exist" in report.headline
    assert NEXT not in harness.instances() and harness.anonymizer.calls == []


def test_an_rds_error_is_reported_and_the_copy_deleted(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*_a: Any, **_k: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "InvalidDBInstanceState", "Message": "busy"}}, "ModifyDBInstance"
        )

    monkeypatch.setattr(refresh_rds, "reset_master_password", refused)

    report = harness.run()

    assert report.outcome == "failed"
    assert "AWS refused ModifyDBInstance (InvalidDBInstanceState)" in report.headline
    assert NEXT not in harness.instances()
    assert RefreshRuns(harness.db).get(str(report.run_id)).status == "failed"  # type: ignore[union-attr]


def test_a_copy_that_never_becomes_available_times_out_and_is_deleted(harness: Harness) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    def stuck(step: str) -> None:
        if step == "password":
            rds_backends[DEFAULT_ACCOUNT_ID][REGION].databases[NEXT].status = "resetting-master-credentials"

    options = harness.options.model_copy(update={"wait_minutes": 0.5, "poll_seconds": 10.0})

    report = harness.run(options=options, after_step=stuck)

    assert report.outcome == "failed"
    assert "timed out after 0.5 min waiting for menotime-staging-next to become available" in report.headline
    assert NEXT not in harness.instances() and run_tag(harness.instances()[STAGING]) is None


def test_a_failed_second_rename_puts_the_old_staging_back(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rename = refresh_rds.rename

    def refuses_the_copy(aws: AwsGateway, *, identifier: str, new_identifier: str) -> None:
        if identifier == NEXT:
            raise ClientError(
                {"Error": {"Code": "InvalidDBInstanceState", "Message": "no"}}, "ModifyDBInstance"
            )
        real_rename(aws, identifier=identifier, new_identifier=new_identifier)

    monkeypatch.setattr(refresh_rds, "rename", refuses_the_copy)

    report = harness.run()

    assert report.outcome == "failed"
    names = harness.instances()
    assert run_tag(names[STAGING]) is None and NEXT not in names
    assert not any(n.startswith(f"{STAGING}-old-") for n in names)


def test_a_leftover_copy_not_made_by_a_refresh_is_not_deleted(harness: Harness) -> None:
    harness.aws.call(
        "rds",
        "create_db_instance",
        DBInstanceIdentifier=NEXT,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="someone",
        MasterUserPassword="x" * 16,
        AllocatedStorage=20,
    )

    report = harness.run()

    assert report.outcome == "refused"
    assert "menotime-staging-next exists and was not made by a staging refresh" in report.headline
    assert NEXT in harness.instances()


def test_without_a_locked_down_security_group_it_refuses(harness: Harness) -> None:
    report = harness.run(options=harness.options.model_copy(update={"security_group_ids": ()}))

    assert report.outcome == "refused" and "security_group_ids" in report.headline
    assert NEXT not in harness.instances()


def test_dry_run_names_the_snapshot_and_changes_nothing(harness: Harness) -> None:
    before = set(harness.instances())

    report = harness.run(dry_run=True)

    assert report.outcome == "succeeded" and report.dry_run
    assert "rds:menotime-prod-" in report.headline
    assert set(harness.instances()) == before and harness.anonymizer.calls == []


# -- the replaced instance is deleted by a later run -----------------------------------------------


def test_the_replaced_instance_is_deleted_by_the_first_run_more_than_24_hours_later(harness: Harness) -> None:
    first = harness.run()
    assert first.outcome == "succeeded"

    harness.clock.advance(hours=23)
    harness.forget_moto_backups_of_the_copy()
    second = harness.run()
    assert second.outcome == "succeeded", second.headline
    assert OLD in harness.instances()  # 23 h after its swap: kept
    assert "kept menotime-staging-old-20261124" in (second.steps[0].detail or "")

    harness.clock.advance(hours=2)
    harness.forget_moto_backups_of_the_copy()
    third = harness.run()

    assert third.outcome == "succeeded"
    names = harness.instances()
    assert OLD not in names  # 25 h after its swap: deleted
    assert "menotime-staging-old-20261125" in names  # the second run's replaced copy, 2 h old: kept
    assert run_tag(names[STAGING]) == third.run_id
    assert third.steps[0].detail and third.steps[0].detail.startswith(f"deleted {OLD}")


# -- the job as the scheduler sees it --------------------------------------------------------------


def test_the_job_spec_runs_through_a_job_context(harness: Harness, sqlite_url: str) -> None:
    [spec] = SPECS
    assert (spec.name, spec.env, spec.options_key) == ("staging-refresh", "staging", "staging-refresh")
    section = harness.options.model_dump(
        mode="json", exclude={"dsn_overrides", "poll_seconds", "wait_minutes"}
    )
    config = load_config(overrides={**TEST_ROLES, "jobs": {"options": {"staging-refresh": section}}})
    options = spec.options(config)
    assert (
        isinstance(options, RefreshOptions)
        and options.security_group_ids == harness.options.security_group_ids
    )
    progress: list[Any] = []
    ctx = JobContext(
        settings=Settings(database_url=sqlite_url),
        config=config,
        db=harness.db,
        aws=harness.aws,
        clock=harness.clock,
        notifier=None,
        options=options,
        run_id=7,  # type: ignore[arg-type]
        dry_run=True,
        progress=progress.append,
    )

    report = spec.run(ctx)

    assert report.outcome == "succeeded" and "Dry run" in report.summary
    # Every AWS action a real run uses is declared for the IAM policy.
    harness.aws.iam_actions.clear()  # forget the seeding's
    real = harness.run()
    assert real.outcome == "succeeded"
    assert harness.aws.iam_actions <= set(spec.iam_actions)


def test_a_bad_option_is_a_config_error_naming_it() -> None:
    config = load_config(
        overrides={**TEST_ROLES, "jobs": {"options": {"staging-refresh": {"poll_seconds": 0}}}}
    )

    with pytest.raises(ConfigError, match=r"jobs\.options\.staging-refresh\.poll_seconds"):
        SPECS[0].options(config)


@dataclass
class RecordingNotifier:
    """What the ops channel would show: posts and in-place edits, rendered as Slack would get them."""

    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def post(self, *, channel: str, result: Any, thread: Any = None) -> Any:
        from bot.notify import MessageRef

        self.posts.append((channel, render_slack(result)))
        return MessageRef(channel=channel, ts=f"{len(self.posts)}.0")

    def update(self, *, ref: Any, result: Any) -> None:
        self.updates.append((ref.ts, render_slack(result)))

    def upload(self, *, ref: Any, filename: str, content: bytes, title: str) -> None:
        raise AssertionError("the refresh attaches no file")


def test_jobs_run_staging_refresh_swaps_staging_with_one_living_progress_message(
    harness: Harness, sqlite_url: str
) -> None:
    from bot.compose import build_core
    from bot.scheduler import JobRunner

    # The real anonymizer is exercised in tests/test_staging_refresh_pg.py; here the fake stands in.
    spec = job_spec(anonymize_step=harness.anonymizer, database_gate=harness.gate)
    section = harness.options.model_dump(mode="json")
    config = load_config(overrides={**TEST_ROLES, "jobs": {"options": {"staging-refresh": section}}})
    notifier = RecordingNotifier()
    core = build_core(
        Settings(database_url=sqlite_url),
        config=config,
        aws=harness.aws,
        clock=harness.clock,
        notifier=notifier,
        migrate_schema=True,
        jobs=(spec,),
    )
    try:
        done = JobRunner(core).run("staging-refresh", trigger="manual", requested_by="U0OPS")
    finally:
        core.close()

    assert done is not None and done.outcome == "succeeded", done and done.summary
    assert run_tag(harness.instances()[STAGING]) and NEXT not in harness.instances()
    progress_ts = {ts for ts, _ in notifier.updates}
    assert len(progress_ts) == 1  # one message, edited in place after every step
    assert len(notifier.updates) == 2 * len(STEPS)
    # Posted twice: the progress message (first state) and the final report.
    assert [channel for channel, _ in notifier.posts] == [config.channels.ops] * 2
    final = notifier.posts[-1][1]
    assert_valid_message(final)
    assert "Staging refreshed" in final["text"]
