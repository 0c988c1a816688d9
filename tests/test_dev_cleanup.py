"""The weekly dev cleanup against moto: guards, two phases, caps, dry run, errors, the report."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.config import Config, load_config
from bot.errors import ConfigError
from bot.job import JobContext
from bot.notify import NullNotifier
from bot.render import render_slack, render_text
from bot.settings import Settings
from bot.simulator import REPOSITORY
from bot.store.cleanup import CleanupMarks
from bot.store.db import Database
from jobs.dev_cleanup import IAM_ACTIONS, SPECS, DevCleanupOptions, DevCleanupReport, clean
from jobs.dev_cleanup.clutter import OLD, Backdater, DevClutter, seed_dev_clutter
from tests.blockkit import assert_valid_message
from tests.conftest import TEST_ROLES

FAMILY = "menotime-backend-dev"
# What the clutter holds that a cleanup with default options must delete, as `state` names it.
DOOMED = {
    f"td:{FAMILY}:1",
    f"td:{FAMILY}:2",
    f"td:{FAMILY}:4",
    f"td:{FAMILY}:6",
    "img:feature-old-search",
    "img:feature-old-billing",
    "img:0badc0ffee42",
    "img:<untagged>",
    "snap:menotime-dev-before-migration",
    "vol:menotime-dev-scratch",
    "log:/ecs/menotime-dev-old-worker",
}


def state(aws: AwsGateway) -> set[str]:
    """Everything in moto the cleanup could conceivably touch, by a readable name."""
    found: set[str] = set()
    for arn in aws.paginate("ecs", "list_task_definitions", "taskDefinitionArns", status="ACTIVE"):
        found.add("td:" + arn.rsplit("/", 1)[1])
    for image in aws.paginate("ecr", "describe_images", "imageDetails", repositoryName=REPOSITORY):
        found.add("img:" + (",".join(sorted(image.get("imageTags") or [])) or "<untagged>"))
    for snap in aws.paginate("rds", "describe_db_snapshots", "DBSnapshots"):
        if snap["SnapshotType"] == "manual":
            found.add("snap:" + snap["DBSnapshotIdentifier"])
    for vol in aws.paginate("ec2", "describe_volumes", "Volumes"):
        name = {t["Key"]: t["Value"] for t in vol.get("Tags") or []}.get("Name", vol["VolumeId"])
        found.add("vol:" + name)
    for group in aws.paginate("logs", "describe_log_groups", "logGroups"):
        found.add("log:" + group["logGroupName"])
    return found


@pytest.fixture
def now() -> FrozenClock:
    # moto stamps resources with the wall clock: the job's clock starts there and moves forward.
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
def clutter(seeded_aws: AwsGateway, config: Config, now: FrozenClock) -> DevClutter:
    made = seed_dev_clutter(seeded_aws, config, now=now.now())
    aws, old = seeded_aws, now.now() - OLD
    back = Backdater(account_id="123456789012", region=aws.region)
    # Staging and prod look-alikes, old enough to go if the guards failed.
    aws.call(
        "rds",
        "create_db_snapshot",
        DBInstanceIdentifier="menotime-staging",
        DBSnapshotIdentifier="menotime-staging-manual",
        Tags=[{"Key": "Environment", "Value": "staging"}],
    )
    back.snapshot("menotime-staging-manual", old)
    aws.call(
        "rds",
        "create_db_snapshot",
        DBInstanceIdentifier="menotime-dev",
        DBSnapshotIdentifier="menotime-dev-untagged",
    )  # no Environment=dev tag
    back.snapshot("menotime-dev-untagged", old)
    vol = aws.call(
        "ec2",
        "create_volume",
        AvailabilityZone="us-west-1a",
        Size=50,
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [
                    {"Key": "Environment", "Value": "staging"},
                    {"Key": "Name", "Value": "menotime-staging-scratch"},
                ],
            }
        ],
    )
    back.volume(vol["VolumeId"], old)
    # Another team's dev-tagged volume in a shared account: the tag alone does not make it ours.
    other = aws.call(
        "ec2",
        "create_volume",
        AvailabilityZone="us-west-1a",
        Size=30,
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [
                    {"Key": "Environment", "Value": "dev"},
                    {"Key": "Name", "Value": "billing-team-scratch"},
                ],
            }
        ],
    )
    back.volume(other["VolumeId"], old)
    for name in ("/ecs/menotime-backend-staging", "/ecs/menotime-dev-prod-mirror"):
        aws.call("logs", "create_log_group", logGroupName=name, tags={"Environment": "dev"})
        back.log_group(name, old)
    return made


def run(aws: AwsGateway, db: Database, config: Config, clock: FrozenClock, **kw: Any) -> DevCleanupReport:
    raw = kw.pop("options", {})
    options = DevCleanupOptions.model_validate(raw)
    return clean(aws=aws, db=db, config=config, options=options, now=clock.now(), run_id=1, **kw)


@pytest.fixture
def store(sqlite_url: str) -> Database:
    from bot.store import migrate

    database = Database(sqlite_url)
    migrate.upgrade(database)
    return database


def labels(report: DevCleanupReport, kind: str, field: str) -> set[str]:
    return {r.label for r in getattr(report.kind(kind), field)}


# --------------------------------------------------------------------------------------------
# The two phases


def test_first_run_marks_and_the_next_deletes_exactly_what_still_matches(
    seeded_aws: AwsGateway,
    clutter: DevClutter,
    db: Database,
    config: Config,
    now: FrozenClock,
) -> None:
    aws = seeded_aws
    before = state(aws)
    assert before >= DOOMED

    first = run(aws, db, config, now)

    assert first.outcome == "succeeded"
    assert state(aws) == before, "the first run only marks"
    assert labels(first, "task_definitions", "marked") == {f"{FAMILY}:{n}" for n in (1, 2, 4, 6)}
    assert {r.id for r in first.kind("rds_snapshots").marked} == {"menotime-dev-before-migration"}
    assert len(first.kind("ecr_images").marked) == 4
    assert len(CleanupMarks(db).all()) == len(clutter.candidates) == 11
    assert "marked 11 for next run" in first.summary

    # Between the runs: someone keeps a marked log group and a marked revision, and an old volume turns up.
    aws.call(
        "logs",
        "tag_resource",
        resourceArn=_log_arn(aws, "/ecs/menotime-dev-old-worker"),
        tags={"menotime:keep": "true"},
    )
    aws.call(
        "ecs",
        "tag_resource",
        resourceArn=f"arn:aws:ecs:us-west-1:123456789012:task-definition/{FAMILY}:6",
        tags=[{"key": "menotime:keep", "value": "true"}],
    )
    late = aws.call(
        "ec2",
        "create_volume",
        AvailabilityZone="us-west-1a",
        Size=8,
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [
                    {"Key": "Environment", "Value": "dev"},
                    {"Key": "Name", "Value": "menotime-dev-late"},
                ],
            }
        ],
    )
    Backdater(account_id="123456789012", region=aws.region).volume(late["VolumeId"], now.now() - OLD)

    now.advance(days=7)
    second = run(aws, db, config, now)

    gone = DOOMED - {"log:/ecs/menotime-dev-old-worker", f"td:{FAMILY}:6"}
    assert second.outcome == "succeeded"
    assert state(aws) == (before | {"vol:menotime-dev-late"}) - gone, "exactly the still-matching marks went"
    assert second.kind("log_groups").dropped == second.kind("task_definitions").dropped == 1
    assert dict(second.kind("task_definitions").spared)["keep tag"] == 2
    assert dict(second.kind("log_groups").spared)["keep tag"] == 2
    # Marked now, deleted next week: the late volume and the one that has just turned seven days old.
    assert {r.label.split()[1] for r in second.kind("ebs_volumes").marked} == {
        "menotime-dev-late",
        "menotime-dev-recent",
    }
    assert {rid for _, rid in CleanupMarks(db).all()} == {r.id for r in second.kind("ebs_volumes").marked}
    snapshots = second.kind("rds_snapshots")
    assert snapshots.bytes_freed == 100 * 1024**3 and snapshots.monthly_saving_usd == pytest.approx(9.5)
    assert second.kind("ebs_volumes").monthly_saving_usd == pytest.approx(1.6)  # 20 GiB gp3


def _log_arn(aws: AwsGateway, name: str) -> str:
    group = aws.call("logs", "describe_log_groups", logGroupNamePrefix=name)["logGroups"][0]
    return group["logGroupArn"]


def test_spared_resources_say_why(
    seeded_aws: AwsGateway, clutter: DevClutter, store: Database, config: Config, now: FrozenClock
) -> None:
    report = run(seeded_aws, store, config, now)

    assert dict(report.kind("task_definitions").spared) == {"newest 5": 5, "in use": 1, "keep tag": 1}
    assert dict(report.kind("ecr_images").spared) == {
        "in use": 9,
        "tag of another environment": 1,
        "too new": 1,
    }
    assert dict(report.kind("rds_snapshots").spared) == {
        "automated snapshot": 1,
        "keep tag": 1,
        "too new": 1,
        "not tagged Environment=dev": 1,
    }
    assert dict(report.kind("ebs_volumes").spared) == {
        "keep tag": 1,
        "too new": 1,
        "looks like staging/prod": 1,
        "name does not say dev": 1,
    }
    assert dict(report.kind("log_groups").spared) == {
        "keep tag": 1,
        "too new": 1,
        "looks like staging/prod": 1,
    }


def _revision_arn(revision: int) -> str:
    return f"arn:aws:ecs:us-west-1:123456789012:task-definition/{FAMILY}:{revision}"


def test_a_dev_family_revision_not_tagged_environment_dev_is_never_deregistered(
    seeded_aws: AwsGateway, clutter: DevClutter, store: Database, config: Config, now: FrozenClock
) -> None:
    aws = seeded_aws
    # Old enough and not protected otherwise: revision 2 lost its Environment tag before any run.
    aws.call("ecs", "untag_resource", resourceArn=_revision_arn(2), tagKeys=["Environment"])

    first = run(aws, store, config, now)

    assert labels(first, "task_definitions", "marked") == {f"{FAMILY}:{n}" for n in (1, 4, 6)}
    assert dict(first.kind("task_definitions").spared)["not tagged Environment=dev"] == 1
    # Between the runs, marked revision 4 is re-tagged as prod's: its mark must not delete it.
    aws.call(
        "ecs",
        "tag_resource",
        resourceArn=_revision_arn(4),
        tags=[{"key": "Environment", "value": "prod"}],
    )
    now.advance(days=7)

    second = run(aws, store, config, now)

    assert labels(second, "task_definitions", "deleted") == {f"{FAMILY}:1", f"{FAMILY}:6"}
    assert dict(second.kind("task_definitions").spared)["not tagged Environment=dev"] == 2
    active = {a.rsplit("/", 1)[1] for a in aws.paginate("ecs", "list_task_definitions", "taskDefinitionArns")}
    assert {f"{FAMILY}:2", f"{FAMILY}:4"} <= active
    assert not {f"{FAMILY}:1", f"{FAMILY}:6"} & active


def test_a_mark_is_not_deleted_before_its_grace_period(
    seeded_aws: AwsGateway, clutter: DevClutter, store: Database, config: Config, now: FrozenClock
) -> None:
    before = state(seeded_aws)
    run(seeded_aws, store, config, now)
    now.advance(hours=1)

    again = run(seeded_aws, store, config, now)

    assert state(seeded_aws) == before
    assert again.kind("task_definitions").waiting == 4 and not again.kind("task_definitions").deleted


# --------------------------------------------------------------------------------------------
# Dry run


def test_dry_run_changes_nothing_and_lists_what_would_be_marked_and_deleted(
    seeded_aws: AwsGateway,
    clutter: DevClutter,
    store: Database,
    config: Config,
    now: FrozenClock,
) -> None:
    aws = seeded_aws
    before = state(aws)

    dry = run(aws, store, config, now, dry_run=True)

    assert state(aws) == before and CleanupMarks(store).all() == {}
    assert sum(len(k.marked) for k in dry.kinds) == 11 and not any(k.deleted for k in dry.kinds)
    text = render_text(dry)
    assert "would mark: menotime-backend-dev:4" in text and "nothing was changed" in text

    run(aws, store, config, now)
    marks = CleanupMarks(store).all()
    now.advance(days=7)
    dry = run(aws, store, config, now, dry_run=True)

    assert state(aws) == before and CleanupMarks(store).all() == marks
    assert labels(dry, "task_definitions", "deleted") == {f"{FAMILY}:{n}" for n in (1, 2, 4, 6)}
    assert sum(len(k.deleted) for k in dry.kinds) == 11
    assert dry.summary.startswith("dry run: would delete 11 resources")
    assert "would delete: menotime-dev-before-migration (100 GiB)" in render_text(dry)


# --------------------------------------------------------------------------------------------
# Caps


@pytest.mark.parametrize(
    ("caps", "kind", "words"),
    [
        ({"ecr_images": {"max_count": 2}}, "ecr_images", "over the cap of 2 per run"),
        ({"task_definitions": {"max_share": 0.3}}, "task_definitions", "4 of 11 (36%), over the cap of 30%"),
    ],
)
def test_a_cap_exceeded_deletes_nothing_at_all_until_overridden(
    seeded_aws: AwsGateway,
    clutter: DevClutter,
    store: Database,
    config: Config,
    now: FrozenClock,
    caps: dict[str, Any],
    kind: str,
    words: str,
) -> None:
    aws, options = seeded_aws, {"caps": caps}
    before = state(aws)
    run(aws, store, config, now, options=options)
    now.advance(days=7)

    refused = run(aws, store, config, now, options=options)

    assert refused.outcome == "refused"
    assert state(aws) == before, "no kind deletes anything when one kind is over its cap"
    assert kind in refused.refused and words in refused.refused
    assert "jobs run dev-cleanup --override" in refused.refused
    assert refused.kind(kind).cap_exceeded
    slack = render_slack(refused)
    assert_valid_message(slack)
    assert "--override" in str(slack) and kind in refused.summary

    overridden = run(aws, store, config, now, options=options, override=True)

    assert overridden.outcome == "succeeded"
    assert state(aws) == before - DOOMED
    assert "caps overridden" in render_text(overridden)


# --------------------------------------------------------------------------------------------
# Guards


@pytest.mark.parametrize(
    ("options", "overrides", "words"),
    [
        ({"rds_instance": "menotime-prod"}, {}, "RDS instance is `menotime-prod`"),
        ({"task_family": "menotime-backend-staging"}, {}, "task family is `menotime-backend-staging`"),
        ({"log_group_prefixes": ["/ecs/menotime-prod"]}, {}, "log group prefix"),
        ({"cluster": "menotime-qa-cluster"}, {}, "does not name dev"),
        ({"repositories": ["menotime-prod-backend"]}, {}, "ECR repository"),
        (
            {
                "database": {
                    "dsn": "postgresql+psycopg://ops@menotime-prod.xxxxx.us-west-1.rds.amazonaws.com/menotime_dev",
                    "tables": [{"table": "events", "column": "created_at"}],
                }
            },
            {},
            "dev database's host",
        ),
        ({}, {"environments": {"dev": {"task_family": "menotime-backend-prod"}}}, "menotime-backend-prod"),
        ({}, {"environments": {"dev": {"rds_instance": "menotime-staging"}}}, "menotime-staging"),
        (
            {"allowed_account_ids": ["111122223333"]},
            {},
            "not in jobs.options.dev-cleanup.allowed_account_ids",
        ),
    ],
)
def test_a_target_that_looks_like_staging_or_prod_refuses_to_start(
    seeded_aws: AwsGateway,
    clutter: DevClutter,
    store: Database,
    now: FrozenClock,
    options: dict[str, Any],
    overrides: dict[str, Any],
    words: str,
) -> None:
    config = load_config(overrides={**TEST_ROLES, **overrides})
    before = state(seeded_aws)

    report = run(seeded_aws, store, config, now, options=options)

    assert report.outcome == "refused"
    assert words in report.refused and "refuses to start" in report.refused
    assert report.kinds == () and CleanupMarks(store).all() == {} and state(seeded_aws) == before
    assert "xxxxx" not in report.summary, "a DSN is never echoed"
    assert_valid_message(render_slack(report))
    assert render_text(report).splitlines()[2].startswith("Refused: ")


def test_no_retention_for_dev_refuses(seeded_aws: AwsGateway, store: Database, now: FrozenClock) -> None:
    config = load_config(overrides={**TEST_ROLES, "environments": {"dev": {"retention_days": None}}})

    report = run(seeded_aws, store, config, now)

    assert report.outcome == "refused" and "retention_days" in report.refused


def test_the_spec_parses_options_and_names_a_bad_one(config: Config) -> None:
    spec = SPECS[0]
    good = load_config(overrides={**TEST_ROLES, "jobs": {"options": {"dev-cleanup": {"keep_newest": 3}}}})
    assert spec.options(good).keep_newest == 3
    assert spec.name == "dev-cleanup" and spec.env == "dev" and spec.supports_override
    bad = load_config(overrides={**TEST_ROLES, "jobs": {"options": {"dev-cleanup": {"caps": {"amis": {}}}}}})
    with pytest.raises(ConfigError, match=r"jobs.options.dev-cleanup.caps: .*unknown kind 'amis'"):
        spec.options(bad)


# --------------------------------------------------------------------------------------------
# Faults


def _failing(aws: AwsGateway, operation: str, match: Callable[[dict[str, Any]], bool]) -> Callable[..., Any]:
    real = aws.call

    def call(service: str, op: str, /, **params: Any) -> dict[str, Any]:
        if op == operation and match(params):
            raise ClientError(
                {"Error": {"Code": "InvalidParameterException", "Message": "simulated failure"}}, op
            )
        return real(service, op, **params)

    return call


def test_an_aws_error_on_one_resource_is_reported_and_the_rest_continue(
    seeded_aws: AwsGateway,
    clutter: DevClutter,
    store: Database,
    config: Config,
    now: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws = seeded_aws
    before = state(aws)
    run(aws, store, config, now)
    now.advance(days=7)
    monkeypatch.setattr(
        aws,
        "call",
        _failing(aws, "deregister_task_definition", lambda p: p["taskDefinition"].endswith(f"{FAMILY}:2")),
    )

    report = run(aws, store, config, now)

    assert report.outcome == "succeeded"
    assert state(aws) == (before - DOOMED) | {f"td:{FAMILY}:2"}
    [error] = report.errors
    assert error.resource == f"{FAMILY}:2" and "simulated failure" in error.message
    assert (
        "task_definitions",
        f"arn:aws:ecs:us-west-1:123456789012:task-definition/{FAMILY}:2",
    ) in CleanupMarks(store).all(), "a failed deletion keeps its mark for the next run"
    assert "1 error" in report.summary
    assert "simulated failure" in render_text(report)


def test_a_kind_that_cannot_be_listed_is_reported_and_keeps_its_marks(
    seeded_aws: AwsGateway,
    clutter: DevClutter,
    store: Database,
    config: Config,
    now: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws = seeded_aws
    before = state(aws)
    run(aws, store, config, now)
    now.advance(days=7)
    real = aws.paginate

    def paginate(service: str, op: str, key: str, /, **params: Any) -> list[Any]:
        if op == "describe_volumes":
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed"}}, op)
        return real(service, op, key, **params)

    monkeypatch.setattr(aws, "paginate", paginate)
    report = run(aws, store, config, now)

    monkeypatch.undo()
    volumes = report.kind("ebs_volumes")
    assert volumes.failed and "UnauthorizedOperation" in volumes.errors[0].message
    assert state(aws) == before - (DOOMED - {"vol:menotime-dev-scratch"})
    assert [k for k, _ in CleanupMarks(store).all()] == ["ebs_volumes"]
    assert_valid_message(render_slack(report))


# --------------------------------------------------------------------------------------------
# The report and the job contract


def test_the_slack_report_caps_its_lists(
    seeded_aws: AwsGateway, clutter: DevClutter, store: Database, config: Config, now: FrozenClock
) -> None:
    report = run(seeded_aws, store, config, now, options={"slack_list_limit": 2})

    slack = render_slack(report)
    assert_valid_message(slack)
    revisions = next(b["text"]["text"] for b in slack["blocks"] if "Task-definition" in str(b))
    assert "Marked for next run:" in revisions and "… and 2 more" in revisions
    assert "$0.10" in str(slack["blocks"][-1])  # the unit prices the saving assumes
    text = render_text(report)
    assert all(f"marked: {FAMILY}:{n}" in text for n in (1, 2, 4, 6)), "the console lists everything"


def test_the_job_runs_through_its_spec_and_uses_only_the_declared_iam_actions(
    seeded_aws: AwsGateway,
    clutter: DevClutter,
    store: Database,
    config: Config,
    now: FrozenClock,
    sqlite_url: str,
) -> None:
    spec = SPECS[0]
    seeded_aws.iam_actions.clear()

    def context(**kw: Any) -> JobContext:
        return JobContext(
            settings=Settings(database_url=sqlite_url),
            config=config,
            db=store,
            aws=seeded_aws,
            clock=now,
            notifier=NullNotifier(),
            options=spec.options(config),
            run_id=7,
            **kw,
        )

    first = spec.run(context())
    now.advance(days=8)
    second = spec.run(context())

    assert first.outcome == second.outcome == "succeeded"
    assert {m.run_id for m in CleanupMarks(store).all().values()} == {7}
    assert seeded_aws.iam_actions <= set(IAM_ACTIONS), seeded_aws.iam_actions - set(IAM_ACTIONS)
    assert isinstance(second, DevCleanupReport) and second.audience == "in_channel"
    assert timedelta(days=8) == second.started_at - first.started_at


def test_the_untagged_children_of_a_multi_arch_image_are_never_deleted(
    seeded_aws: AwsGateway,
    clutter: DevClutter,
    db: Database,
    config: Config,
    now: FrozenClock,
) -> None:
    """A multi-arch image is a tagged index listing untagged per-platform images: deleting those
    "untagged" images breaks the tagged one (here a prod release nobody's task definition names)."""
    import hashlib
    import json

    from bot.simulator import image_manifest

    aws, back = seeded_aws, Backdater(account_id="123456789012", region=seeded_aws.region)
    children = []
    for platform in ("amd64", "arm64"):
        image = aws.call(
            "ecr",
            "put_image",
            repositoryName=REPOSITORY,
            imageManifest=image_manifest(f"v9-{platform}"),
            imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
        )["image"]
        children.append(image["imageId"]["imageDigest"])
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "digest": d,
                    "size": 100,
                    "platform": {"architecture": arch, "os": "linux"},
                }
                for d, arch in zip(children, ("amd64", "arm64"), strict=True)
            ],
        }
    )
    index_digest = "sha256:" + hashlib.sha256(index.encode()).hexdigest()
    aws.call(
        "ecr",
        "put_image",
        repositoryName=REPOSITORY,
        imageTag="v9.0.0",
        imageManifest=index,
        imageManifestMediaType="application/vnd.oci.image.index.v1+json",
        imageDigest=index_digest,
    )
    back.images(REPOSITORY, {d: now.now() - OLD for d in [*children, index_digest]})

    first = run(aws, db, config, now)
    now.advance(days=7)
    second = run(aws, db, config, now)

    ids = {r.id for r in [*first.kind("ecr_images").marked, *second.kind("ecr_images").deleted]}
    assert not ids & {f"{REPOSITORY}@{d}" for d in children}
    assert dict(second.kind("ecr_images").spared)["part of a multi-arch image"] == 2
    assert len(second.kind("ecr_images").deleted) == 4  # the clutter's own candidates still go
    left = {
        i["imageDigest"]
        for i in aws.paginate("ecr", "describe_images", "imageDetails", repositoryName=REPOSITORY)
    }
    assert {*children, index_digest} <= left
