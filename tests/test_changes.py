"""Deploy, rollback and scale through the command service, with the seed's guardrails, against
moto in-process (state asserted after each step) and a frozen clock (Tue 2026-11-24 10:00 PT)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from bot import watch
from bot.answers import ChangeResult, ErrorResult
from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import Config, Role, RoleMembers, load_config
from bot.core import Core
from bot.dispatch import Dispatcher
from bot.identity import StaticGroups
from bot.render import render_text
from bot.settings import Settings
from bot.simulator import REPOSITORY, advance_rollouts, deploy_as_ci, image_manifest, set_rollout
from bot.store.deploys import DeployLog
from tests.conftest import PEOPLE, REGION, STATIC_GROUPS, TEST_ROLES
from tests.harness import RecordingNotifier

DEV, ONCALL, RM, OPS, ADMIN = (
    PEOPLE[r] for r in ("developer", "oncall", "release_manager", "operations", "admin")
)


@pytest.fixture
def rollout_steps(config: Config) -> list[str]:
    """What the simulated ECS does at each of the follower's waits; empty: what ECS normally does."""
    return []


@pytest.fixture
def make_core(
    sqlite_url: str,
    config: Config,
    seeded_aws: AwsGateway,
    clock: FrozenClock,
    notifier: RecordingNotifier,
    rollout_steps: list[str],
):
    built: list[Core] = []
    # A copy: the parametrized list is one object for every run of the test in this process.
    steps = list(rollout_steps)

    def sleep(_seconds: float) -> None:
        if steps:
            for env in config.environments.values():
                primary = _service(seeded_aws, env.name)["deployments"][0]
                if (
                    primary["taskDefinition"] != _service(seeded_aws, env.name)["taskDefinition"]
                    or primary.get("rolloutState") == "IN_PROGRESS"
                ):
                    state, _, reason = steps.pop(0).partition(":")
                    set_rollout(
                        region=REGION,
                        cluster=env.cluster,
                        service=env.service,
                        state=state,
                        reason=reason or None,
                        at=clock.now(),
                    )
                    return
        advance_rollouts(region=REGION, envs=tuple(config.environments.values()), at=clock.now())

    def make(*, database_url: str = sqlite_url, run_background: Any = None) -> Core:
        core = build_core(
            Settings(database_url=database_url),
            config=config,
            aws=seeded_aws,
            groups=StaticGroups(STATIC_GROUPS),
            clock=clock,
            migrate_schema=True,
            notifier=notifier,
            run_background=run_background or (lambda work: work()),
            sleep=sleep,
        )
        built.append(core)
        return core

    yield make
    for core in built:
        core.close()


@pytest.fixture
def core(make_core) -> Core:
    return make_core()


def run(core: Core, user: str, line: str):
    return Dispatcher(core=core).handle(user_id=user, text=line, source="test")


def _service(aws: AwsGateway, env: str) -> dict[str, Any]:
    return aws.call(
        "ecs", "describe_services", cluster=f"menotime-{env}-cluster", services=[f"menotime-{env}-service"]
    )["services"][0]


def _revision(aws: AwsGateway, env: str) -> int:
    return int(_service(aws, env)["taskDefinition"].rsplit(":", 1)[1])


def _image(aws: AwsGateway, env: str) -> str:
    taskdef = aws.call("ecs", "describe_task_definition", taskDefinition=_service(aws, env)["taskDefinition"])
    return next(c["image"] for c in taskdef["taskDefinition"]["containerDefinitions"] if c["name"] == "app")


def _revisions(aws: AwsGateway, env: str) -> int:
    return len(
        aws.paginate(
            "ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=f"menotime-backend-{env}"
        )
    )


def _request_id(result: ChangeResult) -> str:
    return result.buttons[0].value


def _text(reply) -> str:
    return render_text(reply.result)


# --------------------------------------------------------------------------------------------
# dev: no gate, no confirmation


def test_deploy_dev_registers_a_revision_moves_the_service_and_follows_the_rollout(
    core: Core, seeded_aws: AwsGateway, notifier: RecordingNotifier
) -> None:
    before = _revision(seeded_aws, "dev")
    reply = run(core, DEV, "deploy dev feature-login --reason 'try the login fix'")
    assert reply.outcome == "ok", _text(reply)
    assert _revision(seeded_aws, "dev") == before + 1
    digest = seeded_aws.call(
        "ecr", "describe_images", repositoryName="menotime-backend", imageIds=[{"imageTag": "feature-login"}]
    )["imageDetails"][0]["imageDigest"]
    # Pinned: the tag for people, the digest for ECS, so moving the tag later changes nothing here.
    assert _image(seeded_aws, "dev").endswith(f"menotime-backend:feature-login@{digest}")
    assert "Deploying `feature-login` to dev" in reply.result.headline
    record = DeployLog(core.db).last("dev")
    assert (record.kind, record.outcome, record.from_revision, record.to_revision) == (
        "deploy",
        "completed",
        before,
        before + 1,
    )
    assert record.requested_by == DEV and record.image_digest.startswith("sha256:")
    channel, first, *_ = notifier.posts[0]
    assert channel == "#menotime-ops" and "Deploying" in first.headline
    assert "COMPLETED" in render_text(notifier.updates[-1][1])
    assert "last deploy  feature-login (rev" in _text(run(core, DEV, "status dev"))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("deploy dev main", "is not an image tag dev accepts"),
        ("deploy dev v1.5.0", "is not an image tag dev accepts"),
        ("deploy dev feature-nope", "There is no image tagged `feature-nope`"),
        ("deploy dev", "needs <tag>"),
        ("scale dev 3", "dev allows 1–2 tasks; ask for a number in that range."),
        ("scale dev 0", "dev allows 1–2 tasks"),
        ("scale prod 9", "prod allows 2–4 tasks; ask for a number in that range."),
        # Past any fixed parser cap, or below zero: still the environment's own range.
        ("scale prod 101", "prod allows 2–4 tasks; ask for a number in that range."),
        ("scale dev -1", "dev allows 1–2 tasks; ask for a number in that range."),
        ("scale dev 99999999999999999999", "dev allows 1–2 tasks; ask for a number in that range."),
        ("scale dev two", "must be a whole number"),
    ],
)
def test_bad_changes_are_one_sentence_and_change_nothing(
    core: Core, seeded_aws: AwsGateway, line: str, expected: str
) -> None:
    before = {
        env: (_revisions(seeded_aws, env), _service(seeded_aws, env)["desiredCount"])
        for env in ("dev", "prod")
    }
    reply = run(core, ONCALL if "prod" in line else DEV, line)
    assert isinstance(reply.result, ErrorResult), _text(reply)
    assert expected in reply.result.message
    assert before == {
        env: (_revisions(seeded_aws, env), _service(seeded_aws, env)["desiredCount"])
        for env in ("dev", "prod")
    }


def test_scale_dev_within_bounds(core: Core, seeded_aws: AwsGateway) -> None:
    reply = run(core, DEV, "scale dev 2")
    assert reply.outcome == "ok" and "Scaled dev to 2 tasks" in reply.result.headline
    assert _service(seeded_aws, "dev")["desiredCount"] == 2
    assert run(core, DEV, "scale dev 3").outcome == "failed"
    assert _service(seeded_aws, "dev")["desiredCount"] == 2


def test_plan_changes_nothing(core: Core, seeded_aws: AwsGateway) -> None:
    before = _revisions(seeded_aws, "dev")
    reply = run(core, DEV, "deploy dev feature-login --plan")
    assert "nothing was changed" in reply.result.headline
    assert any("containerDefinitions[app].image" in line for line in reply.result.details)
    assert _revisions(seeded_aws, "dev") == before
    assert "Desired tasks" in _text(run(core, ONCALL, "scale prod 3 --plan"))
    assert _service(seeded_aws, "prod")["desiredCount"] == 2


def test_wrong_role_is_refused_and_audited(core: Core, seeded_aws: AwsGateway) -> None:
    reply = run(core, PEOPLE["qa"], "scale dev 2")
    assert reply.outcome == "denied" and "developer, oncall, operations or admin" in reply.result.message
    assert _service(seeded_aws, "dev")["desiredCount"] == 1
    assert core.audit.recent()[0].outcome == "denied"


# --------------------------------------------------------------------------------------------
# confirmations (staging and prod)


def test_prod_scale_needs_the_askers_click_and_moves_the_autoscaling_bounds(
    core: Core, seeded_aws: AwsGateway
) -> None:
    asked = run(core, ONCALL, "scale prod 3")
    assert asked.outcome == "ok" and asked.result.headline.startswith("Confirm: scale prod to 3 tasks")
    assert [b.label for b in asked.result.buttons] == ["Confirm", "Cancel"]
    assert _service(seeded_aws, "prod")["desiredCount"] == 2  # nothing before the click
    request_id = _request_id(asked.result)
    assert "Only <@" in run(core, OPS, f"confirm {request_id}").result.message  # not theirs to click
    done = run(core, ONCALL, f"confirm {request_id}")
    assert done.outcome == "ok", _text(done)
    target = seeded_aws.call(
        "application-autoscaling",
        "describe_scalable_targets",
        ServiceNamespace="ecs",
        ResourceIds=["service/menotime-prod-cluster/menotime-prod-service"],
    )["ScalableTargets"][0]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (3, 4)
    assert _service(seeded_aws, "prod")["desiredCount"] == 3
    assert "already" in run(core, ONCALL, f"confirm {request_id}").result.message  # used once


def test_a_confirmation_expires(core: Core, clock: FrozenClock, seeded_aws: AwsGateway) -> None:
    request_id = _request_id(run(core, ONCALL, "scale prod 3").result)
    clock.advance(minutes=16)
    reply = run(core, ONCALL, f"confirm {request_id}")
    assert "expired" in reply.result.message
    assert _service(seeded_aws, "prod")["desiredCount"] == 2


def test_rollback_prod_shows_from_and_to_and_goes_back_after_the_click(
    core: Core, seeded_aws: AwsGateway
) -> None:
    asked = run(core, ONCALL, "rollback prod --reason 'errors after v1.5.0'")
    shown = _text(asked)
    assert "menotime-backend-prod:3" in shown and "menotime-backend-prod:2" in shown and "v1.4.2" in shown
    assert _revision(seeded_aws, "prod") == 3
    done = run(core, ONCALL, f"confirm {_request_id(asked.result)}")
    assert done.outcome == "ok", _text(done)
    assert _revision(seeded_aws, "prod") == 2
    record = DeployLog(core.db).last("prod")
    assert (record.kind, record.from_revision, record.to_revision, record.outcome) == (
        "rollback",
        3,
        2,
        "completed",
    )


def test_rollback_to_a_named_version_and_refusals(core: Core, seeded_aws: AwsGateway) -> None:
    asked = run(core, ONCALL, "rollback prod v1.4.1")
    assert "menotime-backend-prod:1" in _text(asked)
    missing = run(core, ONCALL, "rollback prod v0.0.9")
    assert missing.outcome == "failed"
    assert "No active revision of menotime-backend-prod runs `v0.0.9`" in missing.result.message
    assert "v1.5.0, v1.4.2, v1.4.1" in missing.result.message
    assert run(core, ONCALL, "rollback prod 3").outcome == "failed"  # already running it


def test_cancel_drops_the_request(core: Core, seeded_aws: AwsGateway) -> None:
    request_id = _request_id(run(core, ONCALL, "scale prod 4").result)
    assert run(core, ONCALL, f"cancel {request_id}").outcome == "ok"
    assert "cancelled" in run(core, ONCALL, f"confirm {request_id}").result.message
    assert _service(seeded_aws, "prod")["desiredCount"] == 2


# --------------------------------------------------------------------------------------------
# prod deploys: window, soak, two people


def _release_candidate(core: Core, aws: AwsGateway, clock: FrozenClock, *, hours_in_staging: float) -> None:
    """`v1.6.0` is the image staging runs as `main` (same digest), deployed there by CI/CD (straight
    through the AWS API, as the seed's pipeline does) hours ago."""
    aws.call(
        "ecr", "put_image", repositoryName=REPOSITORY, imageTag="v1.6.0", imageManifest=image_manifest("main")
    )
    deploy_as_ci(aws, core.config.env("staging"), tag="main", at=clock.now())
    watch.housekeep(core)  # the bot, running meanwhile, sees it within the minute
    clock.advance(hours=hours_in_staging)


def test_prod_deploy_needs_another_persons_approval(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=25)
    before = _revision(seeded_aws, "prod")
    asked = run(core, RM, "deploy prod v1.6.0 --reason 'release 1.6'")
    assert asked.outcome == "ok" and "Approval requested" in asked.result.headline
    channel, approval, *_ = notifier.posts[-1]
    assert channel == "#menotime-prod-alerts" and [b.label for b in approval.buttons] == ["Approve", "Deny"]
    request_id = approval.buttons[0].value
    assert _revision(seeded_aws, "prod") == before

    assert "another person must approve" in run(core, RM, f"approve {request_id}").result.message
    assert run(core, DEV, f"approve {request_id}").outcome == "denied"  # developers do not approve
    approved = run(core, OPS, f"approve {request_id}")
    assert approved.outcome == "ok", _text(approved)
    assert _revision(seeded_aws, "prod") == before + 1
    assert ":v1.6.0@sha256:" in _image(seeded_aws, "prod")
    record = DeployLog(core.db).last("prod")
    assert (record.requested_by, record.approval_id, record.outcome) == (RM, request_id, "completed")
    assert "Approved by <@" in notifier.updates[0][1].headline or any(
        "Approved by" in u[1].headline for u in notifier.updates
    )
    assert "already" in run(core, PEOPLE["admin"], f"approve {request_id}").result.message


def test_the_requester_cannot_approve_even_as_admin(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=25)
    run(core, ADMIN, "deploy prod v1.6.0")
    request_id = notifier.posts[-1].result.buttons[0].value
    assert "another person must approve" in run(core, ADMIN, f"approve {request_id}").result.message


def test_prod_deploy_without_the_soak_is_refused(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=3)
    reply = run(core, RM, "deploy prod v1.6.0")
    assert reply.outcome == "failed"
    assert (
        "has been in staging since 2026-11-24 10:00 PST (18:00 UTC), 3 h; prod needs 24 h there: soaked at "
        "2026-11-25 10:00 PST (18:00 UTC)"
    ) in reply.result.message
    never = run(core, RM, "deploy prod v1.4.2")
    assert "has not run in staging" in never.result.message


def test_prod_deploy_outside_the_window_is_refused_unless_emergency(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=24 * 4 + 2)  # Sat 12:00 PT
    reply = run(core, RM, "deploy prod v1.6.0")
    assert reply.outcome == "failed"
    assert "prod deploys are allowed Mon–Fri 09:00–17:00 PT; it is Sat 12:00 PST now" in reply.result.message
    assert run(core, DEV, "deploy prod v1.6.0 --emergency 'outage'").outcome == "denied"
    emergency = run(core, ONCALL, "deploy prod v1.6.0 --emergency 'login outage, fix is v1.6.0'")
    assert emergency.outcome == "ok" and "Approval requested" in emergency.result.headline
    assert any("EMERGENCY" in r.headline for _, r, *_ in notifier.posts)
    event = core.audit.recent()[0]
    assert event.rule.startswith("matrix:emergency/prod:oncall")


def test_an_approval_expires(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=25)
    run(core, RM, "deploy prod v1.6.0")
    request_id = notifier.posts[-1].result.buttons[0].value
    clock.advance(hours=2, minutes=1)
    assert "expired" in run(core, OPS, f"approve {request_id}").result.message


def test_an_undecided_approval_is_swept_expired_audited_and_its_buttons_removed(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    from bot.changes import expire_requests

    _release_candidate(core, seeded_aws, clock, hours_in_staging=25)
    live = _revision(seeded_aws, "prod")
    run(core, RM, "deploy prod v1.6.0")
    request_id = notifier.posts[-1].result.buttons[0].value
    clock.advance(hours=1)
    assert expire_requests(core) == 0  # not due yet
    clock.advance(hours=1, minutes=1)
    assert expire_requests(core) == 1 and expire_requests(core) == 0  # once
    closed = notifier.updates[-1][1]
    assert closed.headline.startswith(f"Expired: nobody decided {request_id}") and closed.buttons == ()
    [entry] = [e for e in core.audit.recent(limit=5) if e.outcome == "expired"]
    assert (entry.actor, entry.env, entry.rule, entry.request_id) == (
        "menotime-bot",
        "prod",
        "expiry",
        request_id,
    )
    assert core.audit.verify().ok
    assert "expired" in run(core, OPS, f"approve {request_id}").result.message
    assert _revision(seeded_aws, "prod") == live  # nothing deployed


# --------------------------------------------------------------------------------------------
# locks and one change at a time


def test_lock_freezes_deploys_and_scaling_but_not_rollback(core: Core, seeded_aws: AwsGateway) -> None:
    assert run(core, ONCALL, "lock dev database failover in progress").outcome == "ok"
    refused = run(core, DEV, "deploy dev feature-login")
    assert (
        "dev is locked by <@" in refused.result.message
        and "database failover in progress" in refused.result.message
    )
    assert "locked" in run(core, DEV, "scale dev 2").result.message
    assert _service(seeded_aws, "dev")["desiredCount"] == 1
    assert "locked by" in _text(run(core, DEV, "status dev"))
    assert run(core, DEV, "rollback dev").outcome == "ok"  # dev rolls back without confirmation
    assert _revision(seeded_aws, "dev") == 2
    assert run(core, ONCALL, "unlock dev").outcome == "ok"
    assert run(core, DEV, "scale dev 2").outcome == "ok"


def test_a_change_in_flight_refuses_the_next(make_core, seeded_aws: AwsGateway) -> None:
    held = make_core(run_background=lambda work: None)  # the rollout never ends: the lease stays
    assert run(held, DEV, "deploy dev feature-login").outcome == "ok"
    refused = run(held, DEV, "scale dev 2")
    assert "Another change is in flight on dev" in refused.result.message
    assert "in flight" in _text(run(held, DEV, "status dev"))


@pytest.mark.postgres
def test_ten_simultaneous_deploys_exactly_one_proceeds(
    make_core, postgres_server: str, seeded_aws: AwsGateway
) -> None:
    from tests.conftest import _reset_postgres

    _reset_postgres(postgres_server)
    cores = [make_core(database_url=postgres_server, run_background=lambda work: None) for _ in range(10)]
    barrier = threading.Barrier(10)
    replies: list[Any] = []
    lock = threading.Lock()

    def replica(core: Core) -> None:
        barrier.wait()
        reply = run(core, DEV, "deploy dev feature-login")
        with lock:
            replies.append(reply)

    threads = [threading.Thread(target=replica, args=(c,)) for c in cores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted(r.outcome for r in replies)
    assert outcomes == ["failed"] * 9 + ["ok"], [_text(r) for r in replies]
    assert all(
        "Another change is in flight on dev" in r.result.message for r in replies if r.outcome == "failed"
    )
    assert _revisions(seeded_aws, "dev") == 4  # exactly one new revision


# --------------------------------------------------------------------------------------------
# rollouts that go wrong


@pytest.mark.parametrize("rollout_steps", [["IN_PROGRESS", "FAILED"]])
def test_a_circuit_breaker_rollback_is_reported_as_such_and_offers_nothing_to_undo(
    core: Core, notifier: RecordingNotifier, rollout_steps: list[str]
) -> None:
    assert run(core, DEV, "deploy dev feature-login").outcome == "ok"
    final = notifier.updates[-1][1]
    assert "ROLLED BACK by ECS" in render_text(final)
    assert final.buttons == ()  # ECS already put the previous revision back
    assert DeployLog(core.db).last("dev").outcome == "rolled_back"


@pytest.mark.parametrize("rollout_steps", [["IN_PROGRESS", "FAILED:tasks failed their health checks"]])
def test_a_failed_rollout_offers_a_roll_back_to_exactly_what_ran_before(
    core: Core, notifier: RecordingNotifier, seeded_aws: AwsGateway, rollout_steps: list[str]
) -> None:
    assert run(core, DEV, "deploy dev feature-login").outcome == "ok"
    final = notifier.updates[-1][1]
    assert "FAILED" in render_text(final) and "health checks" in render_text(final)
    [button] = final.buttons
    assert (button.value, button.command) == ("dev:3", "rollback dev 3")
    assert DeployLog(core.db).last("dev").outcome == "failed"
    assert run(core, DEV, button.command).outcome == "ok"
    assert _revision(seeded_aws, "dev") == 3


# --------------------------------------------------------------------------------------------
# the change window across both DST transitions


@pytest.mark.parametrize(
    ("utc", "inside"),
    [
        (datetime(2026, 3, 6, 16, 59, tzinfo=UTC), False),  # Fri 08:59 PST
        (datetime(2026, 3, 6, 17, 0, tzinfo=UTC), True),  # Fri 09:00 PST
        (datetime(2026, 3, 9, 15, 59, tzinfo=UTC), False),  # Mon 08:59 PDT (after spring forward)
        (datetime(2026, 3, 9, 16, 0, tzinfo=UTC), True),  # Mon 09:00 PDT
        (datetime(2026, 3, 9, 23, 59, tzinfo=UTC), True),  # Mon 16:59 PDT
        (datetime(2026, 3, 10, 0, 0, tzinfo=UTC), False),  # Mon 17:00 PDT
        (datetime(2026, 10, 30, 23, 59, tzinfo=UTC), True),  # Fri 16:59 PDT
        (datetime(2026, 11, 2, 16, 30, tzinfo=UTC), False),  # Mon 08:30 PST (after fall back)
        (datetime(2026, 11, 2, 17, 0, tzinfo=UTC), True),  # Mon 09:00 PST
        (datetime(2026, 11, 7, 18, 0, tzinfo=UTC), False),  # Sat 10:00 PST
    ],
)
def test_change_window_edges_and_dst(utc: datetime, inside: bool) -> None:
    window = load_config().env("prod").change_window
    assert window.contains(utc) is inside


def test_status_help_and_whoami_know_the_new_verbs(core: Core) -> None:
    assert {"deploy", "approve", "deny", "confirm"} <= {v.name for v in run(core, RM, "help").result.verbs}
    assert "approve" not in {v.name for v in run(core, DEV, "help").result.verbs}
    per_env = {p.env: p.verbs for p in run(core, DEV, "whoami").result.per_env}
    assert "deploy" in per_env["dev"] and "deploy" not in per_env["prod"]


def test_history_lists_changes_not_reads(core: Core) -> None:
    run(core, DEV, "scale dev 2")
    run(core, DEV, "status dev")
    shown = _text(run(core, DEV, "history dev 3")).splitlines()
    # newest first, one line per change, what changed and who; the reads are not there
    assert "dev  scale 1 → 2 tasks by @U0DEV -> completed" in shown[1]
    assert "dev  deploy develop (rev 3) by CI/CD or console -> completed" in shown[2]
    assert not any("status" in line or "history" in line for line in shown)


def test_an_approval_is_refused_when_the_requester_lost_the_role(
    make_core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier, config: Config
) -> None:
    core = make_core()
    _release_candidate(core, seeded_aws, clock, hours_in_staging=25)
    run(core, RM, "deploy prod v1.6.0")
    request_id = notifier.posts[-1].result.buttons[0].value
    demoted = config.model_copy(update={"roles": {**config.roles, Role.release_manager: RoleMembers()}})
    later = make_core()
    later.roles._config = demoted  # the operator removed the release manager from the role
    reply = run(later, OPS, f"approve {request_id}")
    assert "may no longer deploy on prod" in reply.result.message
    assert _revision(seeded_aws, "prod") == 3


def test_a_failed_aws_call_midway_is_recorded_truthfully(
    core: Core, seeded_aws: AwsGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import ecs
    from bot.errors import AwsUnavailable

    def down(**_kwargs: Any) -> None:
        raise AwsUnavailable("AWS did not answer (ECS: could not connect); nothing was changed.")

    monkeypatch.setattr(ecs, "update_service", down)
    reply = run(core, DEV, "deploy dev feature-login")
    assert reply.outcome == "failed" and "may or may not have started" in reply.result.message
    record = DeployLog(core.db).last("dev")
    assert record.outcome == "unknown" and "AWS did not answer" in record.detail
    assert _service(seeded_aws, "dev")["taskDefinition"].endswith(":3")  # the service never moved
    monkeypatch.undo()
    assert run(core, DEV, "scale dev 2").outcome == "ok"  # the lease was released


def test_emergency_is_on_calls_permission_alone(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=1)
    refused = run(core, RM, "deploy prod v1.6.0 --emergency 'just because'")
    assert refused.outcome == "denied" and "oncall" in refused.result.message
    assert "has neither" in run(core, ONCALL, "deploy dev feature-login --emergency 'x'").result.message


def test_a_second_rollback_goes_further_back_not_forward(core: Core, seeded_aws: AwsGateway) -> None:
    assert run(core, DEV, "deploy dev feature-login").outcome == "ok"  # 3 -> 4
    assert run(core, DEV, "rollback dev").outcome == "ok"  # 4 -> 3
    assert _revision(seeded_aws, "dev") == 3
    assert run(core, DEV, "rollback dev").outcome == "ok"  # 3 -> 2, not back to 4
    assert _revision(seeded_aws, "dev") == 2
    assert "only goes back" in run(core, DEV, "rollback dev 4").result.message


def test_an_approval_refused_when_it_runs_ends_failed_and_says_so(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=25)  # Wed 11:00 PT
    run(core, RM, "deploy prod v1.6.0")
    request_id = notifier.posts[-1].result.buttons[0].value
    assert run(core, ONCALL, "lock prod incident in progress").outcome == "ok"  # before the approval came
    reply = run(core, OPS, f"approve {request_id}")
    assert reply.outcome == "failed" and "prod is locked" in reply.result.message
    from bot.store.changes import Requests

    assert Requests(core.db).get(request_id).status == "failed"
    closed = notifier.updates[-1][1]
    assert "refused when it ran" in closed.headline and closed.emoji == ":x:" and closed.buttons == ()
    assert _revision(seeded_aws, "prod") == 3


def test_an_approval_given_after_the_window_closed_deploys_nothing(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    from bot.store.changes import Requests

    _release_candidate(core, seeded_aws, clock, hours_in_staging=30.5)  # Wed 16:30 PT: inside the window
    live, revisions = _revision(seeded_aws, "prod"), _revisions(seeded_aws, "prod")
    asked = run(core, RM, "deploy prod v1.6.0 --reason 'release 1.6'")
    assert asked.outcome == "ok" and "Approval requested" in asked.result.headline
    request_id = notifier.posts[-1].result.buttons[0].value
    clock.advance(minutes=45)  # Wed 17:15 PT: the window closed; the approval has not expired

    reply = run(core, OPS, f"approve {request_id}")

    assert reply.outcome == "failed", _text(reply)
    assert "prod deploys are allowed Mon–Fri 09:00–17:00 PT; it is Wed 17:15 PST now" in reply.result.message
    assert Requests(core.db).get(request_id).status == "failed"
    closed = notifier.updates[-1][1]
    assert "refused when it ran" in closed.headline and "deploys are allowed" in closed.headline
    # Nothing reached ECS: no revision registered, the service still on what it ran.
    assert _revisions(seeded_aws, "prod") == revisions
    assert _revision(seeded_aws, "prod") == live and ":v1.6.0@" not in _image(seeded_aws, "prod")


def test_an_incident_rollback_takes_the_lock_from_a_deploy_still_rolling_out(
    make_core, seeded_aws: AwsGateway
) -> None:
    held = make_core(run_background=lambda work: None)
    assert run(held, DEV, "deploy dev feature-login").outcome == "ok"
    assert "in flight" in run(held, DEV, "scale dev 2").result.message
    assert run(held, DEV, "rollback dev").outcome == "ok"  # not refused by the deploy's lock
    assert _revision(seeded_aws, "dev") == 3


def test_plan_reports_what_would_refuse_it(core: Core, seeded_aws: AwsGateway, clock: FrozenClock) -> None:
    clock.advance(days=4)  # Saturday
    reply = run(core, RM, "deploy prod v1.5.0 --plan")
    assert reply.outcome == "ok"
    shown = "\n".join(reply.result.details)
    assert "Would be refused now: prod deploys are allowed" in shown and "has not run in staging" in shown


def test_scaling_an_autoscaled_env_down_says_what_really_happens(core: Core, seeded_aws: AwsGateway) -> None:
    run(core, ONCALL, f"confirm {_request_id(run(core, ONCALL, 'scale prod 4').result)}")
    down = run(core, ONCALL, f"confirm {_request_id(run(core, ONCALL, 'scale prod 2').result)}")
    assert "autoscaling minimum is now 2" in down.result.headline and "4 tasks run" in down.result.headline


def test_rollouts_left_open_by_a_stopped_bot_are_ended_at_start_up(
    make_core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    from bot.changes import finish_orphaned_rollouts
    from bot.store.changes import Leases

    core = make_core(run_background=lambda work: None)  # the bot "dies" before following the rollout
    assert run(core, DEV, "deploy dev feature-login").outcome == "ok"
    advance_rollouts(region=REGION, envs=tuple(core.config.environments.values()))
    advance_rollouts(region=REGION, envs=tuple(core.config.environments.values()))
    assert finish_orphaned_rollouts(core) == 0  # its lock is still live: someone may be following it
    clock.advance(minutes=46)
    assert Leases(core.db).get("dev", now=clock.now()) is None
    assert finish_orphaned_rollouts(core) == 1
    record = DeployLog(core.db).last("dev")
    assert record.outcome == "completed" and "after a restart" in record.detail


# -- who decides a held request: deny as `approve`, a break-glass confirmation as `emergency` --------


def test_a_prod_deploy_is_denied_by_an_approver_who_may_not_deploy_there(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    """Denying is deciding on the approval: operations may approve prod (not deploy there), so they
    may deny; a developer may do neither. Nothing moves either way."""
    from bot.store.changes import Requests

    _release_candidate(core, seeded_aws, clock, hours_in_staging=25)
    before = _revision(seeded_aws, "prod")
    run(core, RM, "deploy prod v1.6.0 --reason 'release 1.6'")
    request_id = notifier.posts[-1].result.buttons[1].value

    refused = run(core, DEV, f"deny {request_id}")
    assert refused.outcome == "denied"
    assert "`deny` on prod needs the role operations, release_manager or admin" in refused.result.message
    assert Requests(core.db).get(request_id).status == "pending"

    denied = run(core, OPS, f"deny {request_id}")
    assert denied.outcome == "ok", _text(denied)
    assert Requests(core.db).get(request_id).status == "denied"
    assert _revision(seeded_aws, "prod") == before
    [entry] = [e for e in core.audit.recent(limit=5) if e.verb == "deny" and e.actor == OPS]
    assert (entry.env, entry.rule) == ("prod", "matrix:approve/prod:operations")


_STAGING_WINDOW_CLOSED = load_config(
    overrides={
        **TEST_ROLES,
        "environments": {
            "staging": {
                "change_window": {
                    "days": ["sat"],
                    "start": "09:00",
                    "end": "10:00",
                    "timezone": "America/Los_Angeles",
                }
            }
        },
    }
)


@pytest.mark.parametrize("config", [_STAGING_WINDOW_CLOSED])
def test_a_break_glass_confirmation_is_decided_as_the_emergency_it_was_asked_with(
    core: Core, seeded_aws: AwsGateway, config: Config
) -> None:
    """With a change window on staging (closed on a Tuesday), on-call's break-glass deploy there waits
    for their own click; on-call may not deploy staging, only break glass, and the click is decided
    under `emergency`, as the ask was."""
    assert run(core, ONCALL, "deploy staging main").outcome == "denied"
    asked = run(core, ONCALL, "deploy staging main --emergency 'login outage, fix is on main'")
    assert asked.outcome == "ok", _text(asked)
    before = _revision(seeded_aws, "staging")

    done = run(core, ONCALL, f"confirm {_request_id(asked.result)}")

    assert done.outcome == "ok", _text(done)
    assert _revision(seeded_aws, "staging") == before + 1
    [entry] = [e for e in core.audit.recent(limit=5) if e.verb == "confirm"]
    assert (entry.actor, entry.env, entry.rule) == (ONCALL, "staging", "matrix:emergency/staging:oncall")
