"""A change held for a click, and what deciding it does: what a confirmation or an approval request
holds and shows, who may confirm, cancel, approve or deny it and the sentence anyone else reads, the
approval message in the channel once it is decided or expired, and the checks run again, against the
request's own parameters, when it runs (digest, revision, lock, window, soak, the requester's role)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import structlog
from botocore.exceptions import ClientError
from sqlalchemy import select, update

from bot import ecs, observe
from bot.answers import Button, ChangeResult
from bot.aws import AwsGateway
from bot.changes import expire_requests
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import Config, load_config
from bot.core import Core
from bot.errors import AwsUnavailable, BadInput
from bot.identity import StaticGroups
from bot.notify import MessageRef
from bot.render import when
from bot.settings import Settings
from bot.simulator import REPOSITORY, deploy_as_ci, image_manifest
from bot.store.changes import Leases, Requests
from bot.store.deploys import DeployLog
from bot.store.models import ChangeRequest, DeployRecord
from tests.conftest import STATIC_GROUPS, TEST_ROLES
from tests.harness import RecordingNotifier
from tests.test_changes import (  # noqa: F401 - fixtures
    DEV,
    ONCALL,
    OPS,
    RM,
    _image,
    _release_candidate,
    _request_id,
    _revision,
    _revisions,
    _service,
    _text,
    core,
    make_core,
    rollout_steps,
    run,
)

PROD_CHANNEL = "#menotime-prod-alerts"
DIGEST = "sha256:" + "ab" * 32
RELEASE = {
    "env": "prod",
    "tag": "v1.6.0",
    "digest": DIGEST,
    "base_arn": "arn:aws:ecs:us-west-1:123456789012:task-definition/menotime-backend-prod:3",
    "from_revision": 3,
    "image": f"123456789012.dkr.ecr.us-west-1.amazonaws.com/menotime-backend:v1.6.0@{DIGEST}",
    "emergency": None,
}


@pytest.fixture
def desk(
    sqlite_url: str, config: Config, aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> Iterator[Core]:
    """The bot with no environment in AWS: enough to hold, decide and expire requests. A request
    that gets as far as ECS would fail here, so a test on it proves a refusal came first."""
    core = build_core(
        Settings(database_url=sqlite_url),
        config=config,
        aws=aws,
        groups=StaticGroups(STATIC_GROUPS),
        clock=clock,
        migrate_schema=True,
        notifier=notifier,
        run_background=lambda work: work(),
        sleep=lambda _seconds: None,
    )
    yield core
    core.close()


def _held(core: Core, kind: str, by: str, action: str = "deploy", **params: Any) -> str:
    """A request as asking holds it (an approval with its message posted in prod's channel)."""
    params = {**RELEASE, **params} if action == "deploy" else {"env": "prod", **params}
    changes = core.config.changes
    ttl = timedelta(
        minutes=changes.approval_ttl_minutes if kind == "approval" else changes.confirmation_ttl_minutes
    )
    request = Requests(core.db).create(
        kind=kind,
        env="prod",
        action=action,
        params=params,
        requested_by=by,
        reason=None,
        now=core.clock.now(),
        ttl=ttl,
    )
    if kind == "approval":
        buttons = (
            Button("Approve", "menotime_approve", request.id, f"approve {request.id}", "primary"),
            Button("Deny", "menotime_deny", request.id, f"deny {request.id}", "danger"),
        )
        ref = core.notifier.post(
            channel=PROD_CHANNEL,
            result=ChangeResult(headline="asks to deploy", emoji=":lock:", buttons=buttons),
        )
        Requests(core.db).set_message(id=request.id, channel=ref.channel, ts=ref.ts)
    return request.id


@pytest.fixture(autouse=True)
def _quiet_log() -> None:
    """What the bot writes to its own log is not asserted here; not rendering it (a crash's traceback
    takes seconds to format) keeps each test about a second. The conftest restores logging after."""
    structlog.configure(processors=[], logger_factory=structlog.ReturnLoggerFactory())


def _ask_prod_release(core: Core, aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier) -> str:
    """RM asks for v1.6.0 on prod, soaked 25 h in staging; the approval request's id."""
    _release_candidate(core, aws, clock, hours_in_staging=25)
    asked = run(core, RM, "deploy prod v1.6.0 --reason 'release 1.6'")
    assert asked.outcome == "ok", _text(asked)
    return asked.result.request_id


def _record_request(core: Core, env: str) -> str | None:
    """The request the newest change record of ``env`` names (what an operator reads in the database)."""
    with core.db.session(write=False) as session:
        return session.execute(
            select(DeployRecord.request_id)
            .where(DeployRecord.env == env)
            .order_by(DeployRecord.id.desc())
            .limit(1)
        ).scalar_one()


def _closed(notifier: RecordingNotifier, request_id: str) -> Any:
    """The last edit of the request's approval message (the post that carries its buttons)."""
    [(ref, _)] = [
        (MessageRef(ch, f"{i + 1}.0"), r)
        for i, (ch, r, *_) in enumerate(notifier.posts)
        if r.buttons and r.buttons[0].value == request_id
    ]
    edits = [r for edited, r in notifier.updates if edited == ref]
    assert edits, "the approval message was never edited"
    return edits[-1]


# -- asking: what is held, and what the asker sees --------------------------------------------------


def test_a_dev_change_runs_at_once_and_is_not_announced(core: Core, notifier: RecordingNotifier) -> None:
    reply = run(core, DEV, "scale dev 2")
    assert reply.outcome == "ok", _text(reply)
    assert reply.result.headline == f"Scaled dev to 2 tasks (asked by <@{DEV}>)"
    assert reply.result.emoji == ":straight_ruler:"
    assert reply.result.facts == (("Environment", "dev"), ("Desired tasks", "1 → 2"))
    assert Requests(core.db).pending() == [] and notifier.posts == []
    [record] = DeployLog(core.db).recent("dev", 1)
    assert (record.kind, record.requested_by, record.from_count, record.to_count) == ("scale", DEV, 1, 2)


def test_a_prod_scale_is_held_for_the_askers_click_with_confirm_and_cancel_buttons(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    asked = run(core, ONCALL, "scale prod 3")
    assert asked.outcome == "ok", _text(asked)
    result, request_id = asked.result, asked.result.request_id
    request = Requests(core.db).get(request_id)
    assert (request.kind, request.env, request.action, request.params) == (
        "confirmation",
        "prod",
        "scale",
        {"env": "prod", "count": 3},
    )
    assert (request.requested_by, request.reason, request.status) == (ONCALL, None, "pending")
    assert request.expires_at == clock.now() + timedelta(minutes=15)
    assert result.headline == "Confirm: scale prod to 3 tasks?"
    assert (result.emoji, result.public) == (":warning:", False)
    assert result.buttons == (
        Button("Confirm", "menotime_confirm", request_id, f"confirm {request_id}", "primary"),
        Button("Cancel", "menotime_cancel", request_id, f"cancel {request_id}"),
    )
    assert (
        result.footer
        == f"Request {request_id} · nothing has changed yet · expires {when(request.expires_at)}"
    )
    assert ("Desired tasks", "2 → 3") in result.facts
    assert _service(seeded_aws, "prod")["desiredCount"] == 2


def test_a_held_rollback_keeps_its_reason(core: Core) -> None:
    asked = run(core, ONCALL, "rollback prod --reason 'errors after v1.5.0'")
    request = Requests(core.db).get(asked.result.request_id)
    assert (request.action, request.reason) == ("rollback", "errors after v1.5.0")
    assert asked.result.headline == "Confirm: roll prod back to `menotime-backend-prod:2`?"
    assert ("From", "`menotime-backend-prod:3` (`v1.5.0`)") in asked.result.facts


def test_a_plan_is_shown_to_the_asker_only_and_holds_nothing(core: Core, seeded_aws: AwsGateway) -> None:
    reply = run(core, ONCALL, "scale prod 3 --plan")
    assert reply.result.headline == "Plan: scale prod to 3 tasks (nothing was changed)"
    assert (reply.result.emoji, reply.result.public, reply.result.buttons) == (":clipboard:", False, ())
    assert reply.result.facts[:2] == (("Environment", "prod"), ("Desired tasks", "2 → 3"))
    assert Requests(core.db).pending() == []
    assert _service(seeded_aws, "prod")["desiredCount"] == 2


def test_an_approval_request_is_posted_for_the_approvers_and_answered_to_the_asker_alone(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=25)
    asked = run(core, RM, "deploy prod v1.6.0 --reason 'release 1.6'")
    result, request_id = asked.result, asked.result.request_id
    request = Requests(core.db).get(request_id)
    assert (request.kind, request.env, request.action, request.reason) == (
        "approval",
        "prod",
        "deploy",
        "release 1.6",
    )
    assert request.params["tag"] == "v1.6.0" and request.params["emergency"] is None
    assert request.expires_at == clock.now() + timedelta(hours=2)
    assert result.headline == f"Approval requested ({request_id}): deploy `v1.6.0` to prod"
    assert (result.emoji, result.public) == (":hourglass_flowing_sand:", False)
    assert result.footer == (
        f"Someone else with the role operations, release_manager must approve it before "
        f"{when(request.expires_at)}; nothing has changed yet."
    )
    channel, posted, *_ = notifier.posts[-1]
    assert channel == PROD_CHANNEL and [b.label for b in posted.buttons] == ["Approve", "Deny"]
    assert posted.footer == (
        f"Needs operations, release_manager, not the requester · expires {when(request.expires_at)}"
    )
    assert posted.facts == (*result.facts, ("Reason", "release 1.6"))
    # The post is remembered, so deciding the request edits it.
    assert (request.channel, request.message_ts) == (PROD_CHANNEL, f"{len(notifier.posts)}.0")


# -- who decides, and the sentence anyone else reads -------------------------------------------------


def test_only_the_asker_confirms_or_cancels_their_request(desk: Core) -> None:
    request_id = _held(desk, "confirmation", ONCALL, action="scale", count=3)
    confirm = run(desk, OPS, f"confirm {request_id}")
    assert confirm.result.message == f"Only <@{ONCALL}>, who asked for {request_id}, can confirm it."
    cancel = run(desk, OPS, f"cancel {request_id}")
    assert cancel.result.message == f"Only <@{ONCALL}>, who asked for {request_id}, can cancel it."
    assert Requests(desk.db).get(request_id).status == "pending"


def test_confirm_and_approve_each_refuse_the_other_kind_of_request(desk: Core) -> None:
    approval = _held(desk, "approval", RM)
    confirmation = _held(desk, "confirmation", ONCALL, action="scale", count=3)
    assert run(desk, RM, f"confirm {approval}").result.message == (
        f"{approval} is an approval request; use `/menotime approve {approval}`."
    )
    assert run(desk, OPS, f"approve {confirmation}").result.message == (
        f"{confirmation} needs no approval; the person who asked confirms it."
    )
    assert run(desk, OPS, f"deny {confirmation}").result.message == (
        f"{confirmation} is not an approval request; its requester can `cancel` it."
    )
    assert run(desk, RM, f"approve {approval}").result.message == (
        f"You asked for {approval}; another person must approve it."
    )
    requests = Requests(desk.db)
    assert (requests.get(approval).status, requests.get(confirmation).status) == ("pending", "pending")


def test_deny_closes_the_approval_message_with_the_reason_if_one_is_given(
    desk: Core, notifier: RecordingNotifier
) -> None:
    first = _held(desk, "approval", RM)
    denied = run(desk, OPS, f"deny {first} --reason 'not before the audit'")
    assert denied.outcome == "ok", _text(denied)
    note = f"Denied by <@{OPS}>: not before the audit ({first})"
    assert (denied.result.headline, denied.result.emoji) == (f"{note}; nothing was changed.", ":x:")
    closed = _closed(notifier, first)
    assert (closed.headline, closed.emoji, closed.buttons) == (note, ":x:", ())
    request = Requests(desk.db).get(first)
    assert (request.status, request.decided_by) == ("denied", OPS)

    second = _held(desk, "approval", RM)
    plain = run(desk, OPS, f"deny {second}")
    assert plain.result.headline == f"Denied by <@{OPS}> ({second}); nothing was changed."
    assert _closed(notifier, second).headline == f"Denied by <@{OPS}> ({second})"


def test_the_asker_cancels_an_approval_request_and_its_message_says_so(
    desk: Core, notifier: RecordingNotifier
) -> None:
    request_id = _held(desk, "approval", RM)
    cancelled = run(desk, RM, f"cancel {request_id}")
    assert cancelled.result.headline == f"Cancelled {request_id}; nothing was changed."
    assert (cancelled.result.emoji, cancelled.result.public) == (":heavy_multiplication_x:", False)
    closed = _closed(notifier, request_id)
    assert (closed.headline, closed.emoji, closed.buttons) == (
        f"Cancelled by <@{RM}> ({request_id})",
        ":heavy_multiplication_x:",
        (),
    )
    request = Requests(desk.db).get(request_id)
    assert (request.status, request.decided_by) == ("cancelled", RM)


def test_a_lock_set_after_the_ask_refuses_the_confirmed_scale(desk: Core) -> None:
    request_id = _held(desk, "confirmation", ONCALL, action="scale", count=3)
    assert run(desk, OPS, "lock prod incident in progress").outcome == "ok"
    reply = run(desk, ONCALL, f"confirm {request_id}")
    assert reply.outcome == "failed"
    assert "incident in progress. No scaling until `/menotime unlock prod`" in reply.result.message
    assert Requests(desk.db).get(request_id).status == "failed"


def test_an_approval_refused_when_it_runs_ends_failed_and_its_message_says_why(
    desk: Core, notifier: RecordingNotifier
) -> None:
    request_id = _held(desk, "approval", RM)
    assert run(desk, ONCALL, "lock prod incident in progress").outcome == "ok"
    reply = run(desk, OPS, f"approve {request_id}")
    assert reply.outcome == "failed"
    assert "incident in progress. No deploys until `/menotime unlock prod`" in reply.result.message
    closed = _closed(notifier, request_id)
    assert closed.headline == (
        f"Approved by <@{OPS}>, but refused when it ran: {reply.result.message} ({request_id})"
    )
    assert (closed.emoji, closed.buttons) == (":x:", ())
    assert Requests(desk.db).get(request_id).status == "failed"


def test_the_requester_must_still_hold_the_permission_the_request_was_asked_under(desk: Core) -> None:
    """On-call may not deploy prod, only break glass: their break-glass request is approved on that
    permission (and goes on to the checks; here the lock refuses it), a plain one of theirs is not."""
    assert run(desk, ONCALL, "lock prod incident in progress").outcome == "ok"
    glass = _held(desk, "approval", ONCALL, emergency="login outage")
    assert "No deploys until" in run(desk, OPS, f"approve {glass}").result.message
    plain = _held(desk, "approval", ONCALL)
    assert run(desk, OPS, f"approve {plain}").result.message == (
        f"<@{ONCALL}>, who asked for {plain}, may no longer deploy on prod; nothing was done."
    )
    assert Requests(desk.db).get(plain).status == "pending"
    # Deciding on the request's environment, not on any: operations may deploy dev and staging, not prod.
    elsewhere = _held(desk, "approval", OPS)
    assert run(desk, RM, f"approve {elsewhere}").result.message == (
        f"<@{OPS}>, who asked for {elsewhere}, may no longer deploy on prod; nothing was done."
    )


# -- decided: what runs, what is recorded, what the channel reads ------------------------------------


def test_a_confirmed_scale_runs_under_the_requests_lease_as_the_asker_and_is_announced(
    core: Core, seeded_aws: AwsGateway, notifier: RecordingNotifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = run(core, ONCALL, "scale prod 3").result.request_id
    held: list[Any] = []
    real_scale = ecs.scale

    def scale(**kwargs: Any) -> Any:
        if not kwargs.get("dry_run"):
            held.append(Leases(core.db).get("prod", now=core.clock.now()))
        return real_scale(**kwargs)

    monkeypatch.setattr(ecs, "scale", scale)
    done = run(core, ONCALL, f"confirm {request_id}")
    assert done.outcome == "ok", _text(done)
    [lease] = held
    assert (lease.holder, lease.action, lease.user) == (request_id, "scale", ONCALL)
    assert done.result.headline == f"Scaled prod to 3 tasks (asked by <@{ONCALL}>)"
    assert notifier.posts[-1][:2] == (PROD_CHANNEL, done.result)
    [record] = DeployLog(core.db).recent("prod", 1)
    assert (record.kind, record.requested_by, record.from_count, record.to_count) == ("scale", ONCALL, 2, 3)
    assert _record_request(core, "prod") == request_id
    request = Requests(core.db).get(request_id)
    assert (request.status, request.decided_by) == ("executed", ONCALL)
    assert Leases(core.db).get("prod", now=core.clock.now()) is None


def test_scaling_below_what_runs_says_the_autoscaler_brings_them_down(core: Core) -> None:
    run(core, ONCALL, f"confirm {_request_id(run(core, ONCALL, 'scale prod 4').result)}")
    down = run(core, ONCALL, f"confirm {_request_id(run(core, ONCALL, 'scale prod 2').result)}")
    assert down.result.headline == (
        f"prod's autoscaling minimum is now 2 (asked by <@{ONCALL}>); 4 tasks run until the autoscaler "
        "brings them down"
    )


def test_an_approved_deploy_names_both_people_records_both_and_closes_the_approval_message(
    make_core,
    seeded_aws: AwsGateway,
    clock: FrozenClock,
    notifier: RecordingNotifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core = make_core(run_background=lambda work: None)  # the rollout is not followed: the lease stays
    request_id = _ask_prod_release(core, seeded_aws, clock, notifier)
    real_update = ecs.update_service

    def update_service(**kwargs: Any) -> str:
        real_update(**kwargs)
        return "ecs-svc/4"  # what real ECS answers (moto starts no deployment)

    monkeypatch.setattr(ecs, "update_service", update_service)
    digest = Requests(core.db).get(request_id).params["digest"]
    approved = run(core, OPS, f"approve {request_id}")
    assert approved.outcome == "ok", _text(approved)
    assert approved.result.headline == (
        "Deploying `v1.6.0` to prod: `menotime-backend-prod:3` → `menotime-backend-prod:4` "
        f"(asked by <@{RM}>, approved by <@{OPS}>)"
    )
    assert approved.result.emoji == ":rocket:"
    assert approved.result.facts == (
        ("Image", f"`v1.6.0` ({digest.removeprefix('sha256:')[:12]})"),
        ("Rollout", f"followed in {PROD_CHANNEL}"),
    )
    record = DeployLog(core.db).last("prod")
    assert (record.kind, record.requested_by, record.image_tag, record.image_digest) == (
        "deploy",
        RM,
        "v1.6.0",
        digest,
    )
    assert (record.from_revision, record.to_revision, record.approval_id, record.emergency_reason) == (
        3,
        4,
        request_id,
        None,
    )
    assert _image(seeded_aws, "prod").endswith(f"menotime-backend:v1.6.0@{digest}")
    assert _record_request(core, "prod") == request_id
    # Tied to its ECS deployment at once, so the observer never takes it for someone else's.
    assert record.ecs_deployment_id == "ecs-svc/4"
    lease = Leases(core.db).get("prod", now=clock.now())
    assert (lease.holder, lease.action, lease.user) == (request_id, "deploy", RM)
    request = Requests(core.db).get(request_id)
    assert (request.status, request.decided_by) == ("executed", OPS)
    closed = _closed(notifier, request_id)
    assert closed.headline == f"Approved by <@{OPS}>: deploying `v1.6.0` to prod ({request_id})"
    assert (closed.emoji, closed.buttons) == (":white_check_mark:", ())


def test_a_confirmed_staging_deploy_names_no_approver_and_is_followed_to_its_end(
    core: Core, seeded_aws: AwsGateway, notifier: RecordingNotifier
) -> None:
    asked = run(core, RM, "deploy staging main")
    done = run(core, RM, f"confirm {asked.result.request_id}")
    assert done.outcome == "ok", _text(done)
    assert done.result.headline.endswith(f"(asked by <@{RM}>)")
    record = DeployLog(core.db).last("staging")
    assert (record.kind, record.requested_by, record.approval_id) == ("deploy", RM, None)
    assert (record.outcome, record.from_revision, record.to_revision) == ("completed", 3, 4)
    assert _record_request(core, "staging") == asked.result.request_id
    channel, announced, *_ = notifier.posts[0]
    assert (channel, announced.headline) == ("#menotime-staging-alerts", done.result.headline)
    assert Leases(core.db).get("staging", now=core.clock.now()) is None
    assert notifier.updates and not any("Approved by" in r.headline for _, r in notifier.updates)


def test_a_break_glass_request_is_approved_on_the_emergency_permission_outside_window_and_soak(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    clock.advance(days=4)  # Saturday: prod's window is closed
    _release_candidate(core, seeded_aws, clock, hours_in_staging=1)  # and v1.6.0 is not soaked
    asked = run(core, ONCALL, "deploy prod v1.6.0 --emergency 'login outage'")
    assert asked.outcome == "ok", _text(asked)
    before = _revision(seeded_aws, "prod")
    # On-call may not deploy prod, only break glass: the approval stands on that permission.
    approved = run(core, OPS, f"approve {asked.result.request_id}")
    assert approved.outcome == "ok", _text(approved)
    assert _revision(seeded_aws, "prod") == before + 1
    record = DeployLog(core.db).last("prod")
    assert (record.requested_by, record.emergency_reason) == (ONCALL, "login outage")


# -- run again when it runs: what changed since the ask refuses it ------------------------------------


def test_a_tag_moved_since_the_ask_refuses_the_approval(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    request_id = _ask_prod_release(core, seeded_aws, clock, notifier)
    asked_digest = Requests(core.db).get(request_id).params["digest"]
    seeded_aws.call(
        "ecr",
        "put_image",
        repositoryName=REPOSITORY,
        imageTag="v1.6.0",
        imageManifest=image_manifest("v1.6.0"),
    )
    now_digest = seeded_aws.call(
        "ecr", "describe_images", repositoryName=REPOSITORY, imageIds=[{"imageTag": "v1.6.0"}]
    )["imageDetails"][0]["imageDigest"]
    assert now_digest != asked_digest
    reply = run(core, OPS, f"approve {request_id}")
    assert reply.outcome == "failed"
    sentence = (
        f"`v1.6.0` now points at a different image ({now_digest[7:19]}) than when this was asked "
        f"({asked_digest[7:19]}); nothing was done. Ask again."
    )
    assert reply.result.message == sentence
    closed = _closed(notifier, request_id)
    assert closed.headline == f"Approved by <@{OPS}>, but refused when it ran: {sentence} ({request_id})"
    assert (closed.emoji, closed.buttons) == (":x:", ())
    assert Requests(core.db).get(request_id).status == "failed"
    assert _revision(seeded_aws, "prod") == 3


def test_a_service_changed_since_the_ask_refuses_the_confirmation_and_frees_the_lease(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    request_id = run(core, RM, "deploy staging main").result.request_id
    deploy_as_ci(seeded_aws, core.config.env("staging"), tag="main", at=clock.now())
    revisions, now_on = _revisions(seeded_aws, "staging"), _revision(seeded_aws, "staging")
    reply = run(core, RM, f"confirm {request_id}")
    assert reply.outcome == "failed"
    assert reply.result.message == (
        f"staging changed since this was asked (it now runs `menotime-backend-staging:{now_on}`); "
        "nothing was done. Ask again."
    )
    assert (_revisions(seeded_aws, "staging"), _revision(seeded_aws, "staging")) == (revisions, now_on)
    assert Requests(core.db).get(request_id).status == "failed"
    assert Leases(core.db).get("staging", now=clock.now()) is None


def test_a_crash_while_an_approval_runs_ends_it_failed_and_closes_its_message(
    core: Core,
    seeded_aws: AwsGateway,
    clock: FrozenClock,
    notifier: RecordingNotifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request_id = _ask_prod_release(core, seeded_aws, clock, notifier)

    def crash(**_kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ecs, "update_service", crash)
    reply = run(core, OPS, f"approve {request_id}")
    assert reply.outcome == "error"
    record = DeployLog(core.db).last("prod")
    assert (record.kind, record.outcome, record.detail) == ("deploy", "failed", "RuntimeError")
    assert Requests(core.db).get(request_id).status == "failed"
    closed = _closed(notifier, request_id)
    assert closed.headline == (
        f"Approved by <@{OPS}>, but refused when it ran: an unexpected error ({request_id})"
    )
    assert Leases(core.db).get("prod", now=clock.now()) is None


@pytest.mark.parametrize(
    ("failure", "outcome", "detail", "says"),
    [
        (
            AwsUnavailable("AWS did not answer (ECS: could not connect)."),
            "unknown",
            "AWS did not answer (ECS: could not connect).",
            "AWS did not answer while dev's service was being updated, so the deploy may or may not have "
            "started; check `/menotime status dev` before trying again.",
        ),
        (
            BadInput("ECS refused the service update."),
            "failed",
            "ECS refused the service update.",
            "ECS refused the service update.",
        ),
    ],
)
def test_a_failed_service_update_is_recorded_with_why_and_frees_the_lease(
    core: Core,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    outcome: str,
    detail: str,
    says: str,
) -> None:
    def fail(**_kwargs: Any) -> None:
        raise failure

    monkeypatch.setattr(ecs, "update_service", fail)
    reply = run(core, DEV, "deploy dev feature-login")
    assert (reply.outcome, reply.result.message) == ("failed", says)
    record = DeployLog(core.db).last("dev")
    assert (record.kind, record.requested_by, record.outcome, record.detail) == (
        "deploy",
        DEV,
        outcome,
        detail,
    )
    assert record.finished_at == clock.now()
    assert Leases(core.db).get("dev", now=clock.now()) is None


@pytest.mark.parametrize(
    ("failure", "why"),
    [
        (
            ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "DescribeServices"),
            "AWS answered ClientError",
        ),
        (
            AwsUnavailable("AWS did not answer (ECS: could not connect)."),
            "AWS did not answer (ECS: could not connect)",
        ),
    ],
)
def test_a_soak_that_cannot_be_checked_refuses_the_deploy_and_says_why(
    core: Core,
    seeded_aws: AwsGateway,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    why: str,
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=25)

    def unreadable(**_kwargs: Any) -> None:
        raise failure

    monkeypatch.setattr(observe, "soak_evidence", unreadable)
    reply = run(core, RM, "deploy prod v1.6.0")
    assert reply.outcome == "failed"
    assert reply.result.message == (
        f"The staging soak could not be checked ({why}); nothing was changed. Try again in a minute."
    )
    assert Requests(core.db).pending() == []


def test_a_deploy_in_flight_refuses_the_next_deploy_but_not_an_incident_rollback(make_core) -> None:
    held = make_core(run_background=lambda work: None)  # the rollout never ends: the lease stays
    assert run(held, DEV, "deploy dev feature-login").outcome == "ok"
    refused = run(held, DEV, "deploy dev develop")
    assert refused.outcome == "failed" and "Another change is in flight on dev" in refused.result.message
    rollback = run(held, DEV, "rollback dev")
    assert rollback.outcome == "ok", _text(rollback)
    lease = Leases(held.db).get("dev", now=held.clock.now())
    assert (lease.action, lease.user) == ("rollback", DEV)


_PROD_CADENCE_BLOCKING = load_config(
    overrides={**TEST_ROLES, "environments": {"prod": {"cadence": {"per_week": 1, "blocking": True}}}}
)


@pytest.mark.parametrize("config", [_PROD_CADENCE_BLOCKING])
def test_a_release_made_since_the_ask_refuses_the_approval_over_a_blocking_cadence(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier, config: Config
) -> None:
    request_id = _ask_prod_release(core, seeded_aws, clock, notifier)  # the week's first release
    deploy_as_ci(seeded_aws, core.config.env("prod"), tag="v1.5.0", at=clock.now())
    # Meanwhile CI/CD released to prod, and the bot saw it.
    observe.observe_env(
        aws=core.aws, deploys=DeployLog(core.db), env=core.config.env("prod"), now=clock.now()
    )
    reply = run(core, OPS, f"approve {request_id}")
    assert reply.outcome == "failed"
    assert reply.result.message == (
        "prod has had 1 release this week; the plan is 1 a week. Wait for Monday, or if this cannot wait "
        'and you are on call, add `--emergency "<reason>"`.'
    )
    assert Requests(core.db).get(request_id).status == "failed"


@pytest.mark.parametrize("config", [_PROD_CADENCE_BLOCKING])
def test_a_break_glass_approval_runs_over_a_blocking_cadence(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock, config: Config
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=25)
    deploy_as_ci(seeded_aws, core.config.env("prod"), tag="v1.5.0", at=clock.now())  # the week's one
    observe.observe_env(
        aws=core.aws, deploys=DeployLog(core.db), env=core.config.env("prod"), now=clock.now()
    )
    asked = run(core, ONCALL, "deploy prod v1.6.0 --emergency 'login outage'")
    assert asked.outcome == "ok", _text(asked)
    before = _revision(seeded_aws, "prod")
    approved = run(core, OPS, f"approve {asked.result.request_id}")
    assert approved.outcome == "ok", _text(approved)  # checked again when it runs, on the same permission
    assert _revision(seeded_aws, "prod") == before + 1


def test_a_prod_deploy_not_yet_soaked_is_refused_naming_the_image_and_when_it_will_be(
    core: Core, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    _release_candidate(core, seeded_aws, clock, hours_in_staging=1)
    [image] = seeded_aws.call(
        "ecr", "describe_images", repositoryName=REPOSITORY, imageIds=[{"imageTag": "v1.6.0"}]
    )["imageDetails"]
    digest = image["imageDigest"].removeprefix("sha256:")[:12]
    reply = run(core, RM, "deploy prod v1.6.0")
    assert reply.outcome == "failed"
    assert reply.result.message.startswith(f"`v1.6.0` (digest {digest}) has been in staging since ")
    assert "; prod needs 24 h there: soaked at " in reply.result.message
    assert Requests(core.db).pending() == []


def test_a_request_for_a_change_this_bot_does_not_know_is_denied_and_runs_nothing(desk: Core) -> None:
    """A request row written by another version of the bot (a rolling upgrade) may name a change this
    one does not know: no role holds a permission for it, so confirming it is denied (deny by
    default) and the request stays as it was."""
    request_id = _held(desk, "confirmation", ONCALL, action="scale", count=3)
    with desk.db.session() as session:
        session.execute(update(ChangeRequest).where(ChangeRequest.id == request_id).values(action="reboot"))
    reply = run(desk, ONCALL, f"confirm {request_id}")
    assert reply.outcome == "denied", _text(reply)
    assert Requests(desk.db).get(request_id).status == "pending"


# -- expiry --------------------------------------------------------------------------------------------


def test_overdue_requests_are_expired_audited_and_their_approval_message_closed(
    desk: Core, clock: FrozenClock, notifier: RecordingNotifier
) -> None:
    approval = _held(desk, "approval", RM)
    confirmation = _held(desk, "confirmation", ONCALL, action="scale", count=3)
    cancelled = _held(desk, "confirmation", ONCALL, action="scale", count=4)
    run(desk, ONCALL, f"cancel {cancelled}")
    request = Requests(desk.db).get(approval)
    clock.advance(minutes=16)
    assert expire_requests(desk) == 1  # the confirmation; the approval has two hours
    clock.advance(hours=2)

    assert expire_requests(desk) == 1
    assert expire_requests(desk) == 0
    statuses = {i: Requests(desk.db).get(i).status for i in (approval, confirmation, cancelled)}
    assert statuses == {approval: "expired", confirmation: "expired", cancelled: "cancelled"}
    [entry] = [e for e in desk.audit.recent(limit=10) if e.outcome == "expired" and e.request_id == approval]
    assert (entry.actor, entry.source, entry.verb, entry.env, entry.rule) == (
        "menotime-bot",
        "expiry",
        "deploy",
        "prod",
        "expiry",
    )
    assert entry.args == {"request": approval, **request.params}
    assert entry.detail == f"approval not decided by {when(request.expires_at)}"
    closed = _closed(notifier, approval)
    assert closed.headline == (
        f"Expired: nobody decided {approval} by {when(request.expires_at)}; ask again if it is still wanted"
    )
    assert (closed.emoji, closed.buttons) == (":hourglass:", ())
    assert desk.audit.verify().ok


def test_two_overdue_requests_are_both_expired_in_one_sweep(desk: Core, clock: FrozenClock) -> None:
    first = _held(desk, "confirmation", ONCALL, action="scale", count=3)
    second = _held(desk, "confirmation", ONCALL, action="scale", count=4)
    clock.advance(minutes=16)
    assert expire_requests(desk) == 2
    assert {Requests(desk.db).get(i).status for i in (first, second)} == {"expired"}


def test_a_request_another_replica_expired_first_is_not_counted_and_the_rest_still_are(
    desk: Core, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _held(desk, "confirmation", ONCALL, action="scale", count=3)
    second = _held(desk, "confirmation", ONCALL, action="scale", count=4)
    clock.advance(minutes=16)
    real_expire = Requests.expire
    taken: list[str] = []

    def other_replica_first(self: Requests, *, id: str) -> bool:
        if not taken:
            taken.append(id)
            real_expire(self, id=id)  # the other replica's expiry
            return False
        return real_expire(self, id=id)

    monkeypatch.setattr(Requests, "expire", other_replica_first)
    assert expire_requests(desk) == 1
    assert {Requests(desk.db).get(i).status for i in (first, second)} == {"expired"}
    audited = [e.request_id for e in desk.audit.recent(limit=10) if e.outcome == "expired"]
    assert audited == [({first, second} - set(taken)).pop()]
