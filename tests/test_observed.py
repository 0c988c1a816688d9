"""The bot as one actor among several (issue 11): deployments made by CI/CD straight through the
AWS API are observed from ECS and count for the soak, history, status and rollback; ECS events
record them once; the post-deploy watch ties an alarm to the deployment before it.

moto in-process, a frozen clock (Tue 2026-11-24 10:00 PT), the seeded platform."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot import watch
from bot.alarms import process_inbox
from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import Config
from bot.core import Core
from bot.dispatch import Dispatcher
from bot.errors import AwsUnavailable
from bot.fakes.fixture_files import FIXTURES
from bot.identity import StaticGroups
from bot.render import render_text
from bot.settings import Settings
from bot.simulator import REPOSITORY, advance_rollouts, deploy_as_ci, image_manifest
from bot.store.deploys import DeployLog
from tests.conftest import PEOPLE, REGION, STATIC_GROUPS
from tests.harness import RecordingNotifier
from tests.test_alarm_threads import alarm_message, store

RM, OPS, ONCALL, DEV, QA = (PEOPLE[r] for r in ("release_manager", "operations", "oncall", "developer", "qa"))
EVENTS = FIXTURES / "eventbridge"


@pytest.fixture
def core(
    database_url: str, config: Config, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> Iterator[Core]:
    def sleep(_seconds: float) -> None:  # ECS moves on while the bot waits, at the bot's time
        advance_rollouts(region=REGION, envs=tuple(config.environments.values()), at=clock.now())

    built = build_core(
        Settings(database_url=database_url),
        config=config,
        aws=seeded_aws,
        groups=StaticGroups(STATIC_GROUPS),
        clock=clock,
        migrate_schema=True,
        notifier=notifier,
        run_background=lambda work: work(),
        sleep=sleep,
    )
    yield built
    built.close()


def run(core: Core, user: str, line: str):
    return Dispatcher(core=core).handle(user_id=user, text=line, source="test")


def text(reply: Any) -> str:
    return render_text(reply.result)


def _revision(aws: AwsGateway, env: str) -> int:
    service = aws.call(
        "ecs", "describe_services", cluster=f"menotime-{env}-cluster", services=[f"menotime-{env}-service"]
    )["services"][0]
    return int(service["taskDefinition"].rsplit(":", 1)[1])


def _candidate(aws: AwsGateway, *, like: str = "build-1.6", tags: tuple[str, ...] = ()) -> None:
    """`v1.6.0` pushed as CI would: the image of ``like`` (same digest), or another image carrying
    ``tags`` too."""
    aws.call(
        "ecr", "put_image", repositoryName=REPOSITORY, imageTag="v1.6.0", imageManifest=image_manifest(like)
    )
    for tag in tags:
        aws.call(
            "ecr", "put_image", repositoryName=REPOSITORY, imageTag=tag, imageManifest=image_manifest(like)
        )


def _merge_to_main(
    aws: AwsGateway,
    staging: Any,
    at: Any,
    *,
    build: str = "build-1.6",
    outcome: Any = "COMPLETED",
    tags: tuple[str, ...] = (),
) -> None:
    """A merge to main: CI pushes the new build as `main` (and ``tags``) and deploys it to staging."""
    for tag in ("main", *tags):
        aws.call(
            "ecr", "put_image", repositoryName=REPOSITORY, imageTag=tag, imageManifest=image_manifest(build)
        )
    deploy_as_ci(aws, staging, tag="main", at=at, outcome=outcome)


# ------------------------------------------------------------------------------------ the soak


def test_a_ci_deployment_to_staging_is_the_soak_evidence(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    staging = core.config.env("staging")
    watch.housekeep(core)  # the bot has been watching: staging's seeded deployment (another build) is known
    _merge_to_main(seeded_aws, staging, clock.now())  # CI/CD, not the bot
    _candidate(seeded_aws)
    clock.advance(minutes=1)
    watch.housekeep(core)  # a minute later, the bot's housekeeping sees it
    clock.advance(hours=23, minutes=-1)
    early = run(core, RM, "deploy prod v1.6.0")
    assert early.outcome == "failed"
    assert early.result.message.startswith(
        "`v1.6.0` (digest 3bbc9997fd15) has been in staging since 2026-11-24 10:00 PST (18:00 UTC), 23 h; prod "
        "needs 24 h there: soaked at 2026-11-25 10:00 PST (18:00 UTC)."
    )
    clock.advance(hours=2)
    asked = run(core, RM, "deploy prod v1.6.0")
    assert asked.outcome == "ok" and "Approval requested" in asked.result.headline, text(asked)


def test_an_image_of_the_same_commit_counts_when_its_digest_differs(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    staging = core.config.env("staging")
    # CI pushes main with its commit SHA beside it and deploys it; the bot's housekeeping sees it.
    _merge_to_main(seeded_aws, staging, clock.now(), build="main-build", tags=("9e1f2a3b4c5d",))
    watch.housekeep(core)
    # The release build of the same commit: another digest, and the SHA tag moves to it.
    _candidate(seeded_aws, like="release-build", tags=("9e1f2a3b4c5d",))
    clock.advance(hours=25)
    asked = run(core, RM, "deploy prod v1.6.0")
    assert asked.outcome == "ok" and "Approval requested" in asked.result.headline, text(asked)
    # Without the commit in common, the same release build has no evidence at all.
    seeded_aws.call(
        "ecr",
        "put_image",
        repositoryName=REPOSITORY,
        imageTag="v1.7.0",
        imageManifest=image_manifest("other-build"),
    )
    assert "has not run in staging" in run(core, RM, "deploy prod v1.7.0").result.message


def test_a_failed_staging_rollout_never_counts(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    _merge_to_main(seeded_aws, core.config.env("staging"), clock.now(), outcome="FAILED")
    _candidate(seeded_aws)
    watch.housekeep(core)
    clock.advance(hours=48)
    refused = run(core, RM, "deploy prod v1.6.0")
    assert refused.outcome == "failed"
    assert "was rolled back in staging" in refused.result.message  # the seed's circuit breaker rolls back
    assert "needs a completed deployment there 24 h old" in refused.result.message


def test_a_staging_deployment_later_rolled_back_never_counts(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    staging = core.config.env("staging")
    _merge_to_main(seeded_aws, staging, clock.now())
    watch.housekeep(core)
    clock.advance(minutes=30)
    asked = run(core, ONCALL, "rollback staging")
    assert run(core, ONCALL, f"confirm {asked.result.buttons[0].value}").outcome == "ok"
    _candidate(seeded_aws)
    clock.advance(hours=30)
    refused = run(core, RM, "deploy prod v1.6.0")
    assert "was rolled back in staging" in refused.result.message


def test_the_soak_unread_is_a_refusal_not_a_guess(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _merge_to_main(seeded_aws, core.config.env("staging"), clock.now())
    _candidate(seeded_aws)
    watch.housekeep(core)
    clock.advance(hours=25)
    real = core.aws.call

    def throttled(service: str, operation: str, **params: Any) -> Any:
        if operation == "describe_services" and params.get("cluster") == "menotime-staging-cluster":
            raise AwsUnavailable("AWS is throttling ecs:DescribeServices; try again in a minute.")
        return real(service, operation, **params)

    monkeypatch.setattr(core.aws, "call", throttled)
    refused = run(core, RM, "deploy prod v1.6.0")
    assert refused.outcome == "failed"
    assert refused.result.message.startswith("The staging soak could not be checked (AWS is throttling")
    assert _revision(seeded_aws, "prod") == 3 and DeployLog(core.db).last("prod").external  # nothing changed


# ------------------------------------------------------------------------ history, status, rollback


def test_an_external_deployment_shows_in_history_and_status_and_rollback_goes_before_it(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    staging = core.config.env("staging")
    before = _revision(seeded_aws, "staging")
    watch.housekeep(core)  # the bot has been running: it saw the seeded deployment
    clock.advance(minutes=5)
    deploy_as_ci(seeded_aws, staging, tag="PR-42", at=clock.now())
    clock.advance(minutes=5)
    history = text(run(core, QA, "history staging")).splitlines()
    assert f"staging  deploy PR-42 (rev {before + 1}) by CI/CD or console -> completed" in history[1]
    assert "staging  deploy main" in history[2]  # the seeded deployment, seen too
    status = text(run(core, QA, "status staging"))
    assert f"last deploy  PR-42 (rev {before + 1}) by CI/CD or console, completed" in status
    asked = run(core, ONCALL, "rollback staging --plan")
    assert f"menotime-backend-staging:{before}" in text(asked) and "main" in text(asked)


def test_an_ecs_deployment_event_records_it_once_even_when_the_poll_saw_it(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    staging = core.config.env("staging")
    deploy_as_ci(seeded_aws, staging, tag="PR-42", at=clock.now())
    watch.housekeep(core)  # the poll sees it first
    deployments = seeded_aws.call(
        "ecs", "describe_services", cluster=staging.cluster, services=[staging.service]
    )["services"][0]["deployments"]
    event = json.loads(
        (EVENTS / "awsdocs-ecs__ECS_Deployment_State_Change__SERVICE_DEPLOYMENT_COMPLETED.json").read_text()
    )
    event.update(
        region=REGION,
        resources=[f"arn:aws:ecs:{REGION}:123456789012:service/{staging.cluster}/{staging.service}"],
    )
    event["detail"]["deploymentId"] = deployments[0]["id"]
    store(core, json.dumps(event))
    store(core, json.dumps(event))  # SNS delivers it twice, as it may
    process_inbox(core=core)
    records = [
        r for r in DeployLog(core.db).recent("staging", 20) if r.ecs_deployment_id == deployments[0]["id"]
    ]
    assert len(records) == 1 and records[0].external and records[0].image_tag == "PR-42"


def test_an_event_for_a_deployment_the_poll_never_saw_is_recorded_from_ecs(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    staging = core.config.env("staging")
    deploy_as_ci(seeded_aws, staging, tag="PR-42", at=clock.now())
    event = json.loads(
        (EVENTS / "awsdocs-ecs__ECS_Deployment_State_Change__SERVICE_DEPLOYMENT_COMPLETED.json").read_text()
    )
    event.update(
        region=REGION,
        resources=[f"arn:aws:ecs:{REGION}:123456789012:service/{staging.cluster}/{staging.service}"],
    )
    store(core, json.dumps(event))
    process_inbox(core=core)
    assert DeployLog(core.db).last("staging").image_tag == "PR-42"


def test_scalings_by_others_are_recorded_once_and_the_bots_own_are_not_doubled(
    core: Core, seeded_aws: AwsGateway
) -> None:
    watch.housekeep(core)  # the baseline: dev at 1
    seeded_aws.call(
        "ecs",
        "update_service",
        cluster="menotime-dev-cluster",
        service="menotime-dev-service",
        desiredCount=2,
    )  # someone in the console
    watch.housekeep(core)
    watch.housekeep(core)
    assert run(core, DEV, "scale dev 1").outcome == "ok"
    watch.housekeep(core)
    lines = text(run(core, DEV, "history dev")).splitlines()
    scalings = [line for line in lines if " scale " in line]
    assert len(scalings) == 2
    assert (
        "scale 2 → 1 tasks by @U0DEV" in scalings[0]
        and "scale 1 → 2 tasks by console, CLI or autoscaler" in scalings[1]
    )


# ------------------------------------------------------------------------------ post-deploy watch


def _fire(core: Core, name: str, state: str, old: str) -> None:
    arn = f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{name}"
    store(core, alarm_message(name=name, arn=arn, state=state, old=old, at=core.clock.now()))
    process_inbox(core=core)


def test_an_alarm_in_the_watch_names_the_deployment_and_rolls_back_before_it(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    staging = core.config.env("staging")
    before = _revision(seeded_aws, "staging")
    watch.housekeep(core)  # the bot has been running: it knows what staging ran before
    deploy_as_ci(seeded_aws, staging, tag="PR-42", at=clock.now())
    watch.housekeep(core)
    announced = [p for p in notifier.posts if p[2] is None and "now runs in staging" in p[1].headline]
    assert len(announced) == 1 and "Watching staging's alarms until" in announced[0][1].footer
    clock.advance(minutes=12)
    _fire(core, "menotime-staging-api-5xx", "ALARM", "OK")
    root = next(p[1] for p in notifier.posts if p[2] is None and "menotime-staging-api-5xx" in p[1].headline)
    assert (
        "After a deployment",
        f"fired 12 min after `PR-42` (rev {before + 1}) by CI/CD or console",
    ) in root.facts
    [rollback] = [b for b in root.buttons if b.label == "Roll back"]
    assert rollback.value == f"staging:{before}" and rollback.command == f"rollback staging {before}"
    link = [p for p in notifier.posts if p[2] is not None and p[2].ts == "1.0"]
    assert link and "`menotime-staging-api-5xx` fired 12 min after this deployment" in link[-1][1].headline
    clock.advance(minutes=30)
    watch.housekeep(core)
    assert not any("Quiet" in p[1].headline for p in notifier.posts)  # it was not quiet


def test_a_quiet_watch_says_so_and_an_alarm_after_it_is_not_tied(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    deploy_as_ci(seeded_aws, core.config.env("staging"), tag="PR-42", at=clock.now())
    watch.housekeep(core)
    clock.advance(minutes=29)
    watch.housekeep(core)
    assert not any("Quiet" in p[1].headline for p in notifier.posts)
    clock.advance(minutes=2)
    watch.housekeep(core)
    quiet = [p for p in notifier.posts if "Quiet" in p[1].headline]
    assert len(quiet) == 1 and quiet[0][2] is not None  # in the rollout message's thread
    assert "no alarm fired in staging in the 30 min after `PR-42`" in quiet[0][1].headline
    _fire(core, "menotime-staging-api-5xx", "ALARM", "OK")
    root = next(p[1] for p in notifier.posts if p[2] is None and "menotime-staging-api-5xx" in p[1].headline)
    assert not any(label == "After a deployment" for label, _ in root.facts)
    watch.housekeep(core)
    assert len([p for p in notifier.posts if "Quiet" in p[1].headline]) == 1  # said once


def test_the_bots_own_prod_deploy_is_watched(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    _merge_to_main(seeded_aws, core.config.env("staging"), clock.now())
    _candidate(seeded_aws)
    watch.housekeep(core)
    clock.advance(hours=25)
    asked = run(core, RM, "deploy prod v1.6.0")
    assert ("Releases this week", "0 of 2 planned (since Mon 23 Nov)") in run(
        core, RM, "deploy prod v1.6.0 --plan"
    ).result.facts
    request = asked.result.request_id
    done = run(core, OPS, f"approve {request}")
    assert done.outcome == "ok", text(done)
    deployed = _revision(seeded_aws, "prod")
    clock.advance(minutes=5)
    _fire(core, "menotime-prod-api-5xx", "ALARM", "OK")
    root = [p[1] for p in notifier.posts if p[2] is None and "menotime-prod-api-5xx" in p[1].headline][-1]
    assert ("After a deployment", f"fired 5 min after `v1.6.0` (rev {deployed}) by <@{RM}>") in root.facts
    [rollback] = [b for b in root.buttons if b.label == "Roll back"]
    assert rollback.command == f"rollback prod {deployed - 1}"
    record = DeployLog(core.db).last("prod")
    assert not record.external and record.ecs_deployment_id is not None  # the bot's own, tied to ECS's
    assert ("Releases this week", "1 of 2 planned (since Mon 23 Nov)") in run(
        core, RM, "deploy prod v1.6.0 --plan"
    ).result.facts


def test_a_deployment_whose_digest_cannot_be_resolved_is_never_soak_evidence(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    staging = core.config.env("staging")
    watch.housekeep(core)
    # CI deployed an image by its commit SHA, and the image was deleted from ECR before the bot looked.
    seeded_aws.call(
        "ecr",
        "put_image",
        repositoryName=REPOSITORY,
        imageTag="9e1f2a3b4c5d",
        imageManifest=image_manifest("gone-build"),
    )
    deploy_as_ci(seeded_aws, staging, tag="9e1f2a3b4c5d", at=clock.now())
    seeded_aws.call(
        "ecr", "batch_delete_image", repositoryName=REPOSITORY, imageIds=[{"imageTag": "9e1f2a3b4c5d"}]
    )
    watch.housekeep(core)
    record = DeployLog(core.db).last("staging")
    assert (record.image_tag, record.image_digest, record.image_commit) == (
        "9e1f2a3b4c5d",
        None,
        "9e1f2a3b4c5d",
    )
    _candidate(seeded_aws, like="gone-build", tags=("9e1f2a3b4c5d",))  # the same commit, pushed again
    clock.advance(hours=25)
    assert "has not run in staging" in run(core, RM, "deploy prod v1.6.0").result.message


def test_a_blocking_cadence_refuses_a_third_release_and_the_plan_says_why(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    from bot.errors import PolicyViolation
    from bot.guardrails import within_cadence

    prod = core.config.env("prod").model_copy(
        update={"cadence": core.config.env("prod").cadence.model_copy(update={"blocking": True})}
    )
    within_cadence(env=prod, releases=1, emergency=None)
    with pytest.raises(PolicyViolation, match="prod has had 2 releases this week; the plan is 2 a week"):
        within_cadence(env=prod, releases=2, emergency=None)
    within_cadence(env=prod, releases=5, emergency="outage")  # break-glass goes past it
    within_cadence(env=core.config.env("prod"), releases=5, emergency=None)  # informational by default


def test_rollback_refuses_when_ecs_cannot_be_read_and_changes_nothing(
    core: Core, seeded_aws: AwsGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = core.aws.call

    def down(service: str, operation: str, **params: Any) -> Any:
        if operation == "describe_services":
            raise AwsUnavailable("AWS did not answer ecs:DescribeServices; try again in a minute.")
        return real(service, operation, **params)

    monkeypatch.setattr(core.aws, "call", down)
    refused = run(core, ONCALL, "rollback staging")
    assert refused.outcome == "failed" and "ecs:DescribeServices" in refused.result.message
    monkeypatch.undo()
    assert _revision(seeded_aws, "staging") == 3 and DeployLog(core.db).last("staging") is None


def test_a_tag_seen_long_after_its_deployment_is_not_taken_for_the_digest_it_points_at_now(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    staging = core.config.env("staging")
    _merge_to_main(seeded_aws, staging, clock.now(), build="build-a")  # staging runs build A as `main`
    # The next merge pushes build B as `main` before the bot (down for two hours) has looked.
    seeded_aws.call(
        "ecr",
        "put_image",
        repositoryName=REPOSITORY,
        imageTag="main",
        imageManifest=image_manifest("build-b"),
    )
    _candidate(seeded_aws, like="build-b")
    clock.advance(hours=2)
    watch.housekeep(core)
    record = DeployLog(core.db).last("staging")
    assert (record.image_tag, record.image_digest) == ("main", None)  # the tag, never B's digest
    clock.advance(hours=25)
    assert "has not run in staging" in run(core, RM, "deploy prod v1.6.0").result.message
