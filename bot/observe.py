"""Observed deployments: what ECS says happened to an environment's service, whoever did it.

CI/CD deploys staging and prod, people act in the console and the autoscaler moves task counts:
the bot is one actor among several. :func:`observe_env` reads the service from ECS and turns every
deployment it shows into one deployment record (keyed by its ECS deployment id), tying the bot's
own records to theirs, and records a change of the desired count made outside the bot as a
scaling. It runs before every guardrail decision, for ``status`` and ``history``, every minute in
housekeeping, and when an ECS *Deployment State Change* event arrives, so a deployment made between
two looks is still seen while ECS lists it.

Nothing here decides anything: the guardrails read the records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError

from bot import ecs
from bot.aws import AwsGateway
from bot.config import EnvironmentConfig
from bot.errors import BotError
from bot.status import image_tag
from bot.store.deploys import (
    COMPLETED,
    EXTERNAL,
    FAILED,
    IN_PROGRESS,
    REPLACED,
    ROLLED_BACK,
    DeployLog,
    DeployView,
)

log = structlog.get_logger("menotime.observe")

# The seed's CI tags every image with its commit SHA beside PR-<n>, main or the version.
COMMIT_TAG = re.compile(r"^[0-9a-f]{7,40}$")
# How old a deployment first seen may be for its image tag to still say which digest it ran.
FRESH = timedelta(hours=1)


@dataclass(frozen=True)
class Observation:
    env: str
    recorded: tuple[DeployView, ...]  # changes made outside the bot, newly recorded


def outcome_of(deployment: ecs.Deployment) -> str:
    state = deployment.state
    if state == "COMPLETED":
        return COMPLETED
    if state == "FAILED":
        return ROLLED_BACK if deployment.rolled_back else FAILED
    return IN_PROGRESS


def observe_env(*, aws: AwsGateway, deploys: DeployLog, env: EnvironmentConfig, now: datetime) -> Observation:
    """Record what ECS shows for ``env`` now. AWS errors propagate (the caller says what could not
    be read); nothing is half-recorded, since each record is written on its own."""
    snapshot = ecs.service_snapshot(aws=aws, env=env)
    recorded: list[DeployView] = []
    revisions: dict[str, ecs.TaskDefinitionRef] = {}
    epoch = datetime.min.replace(tzinfo=now.tzinfo)
    oldest_first = sorted(snapshot.deployments, key=lambda d: d.created_at or epoch)
    listed = {d.id for d in oldest_first if d.id}
    for deployment in oldest_first:
        if not deployment.id:
            continue
        outcome = outcome_of(deployment)
        finished = (deployment.updated_at or now) if outcome != IN_PROGRESS else None
        known = deploys.by_deployment_id(deployment.id)
        if known is not None:
            if outcome != IN_PROGRESS:
                deploys.settle(id=known.id, outcome=outcome, at=finished, detail=deployment.rollout_reason)
            continue
        if deployment.task_definition_arn not in revisions:
            revisions[deployment.task_definition_arn] = ecs.describe_revision(
                aws=aws, env=env, arn=deployment.task_definition_arn
            )
        ref = revisions[deployment.task_definition_arn]
        # A tag resolves to what it points at now; for a deployment first seen long after it
        # started, the tag may have moved since (main moves with every merge): tag only, then.
        fresh = deployment.created_at is None or now - deployment.created_at <= FRESH
        digest, commit = _image_facts(aws=aws, image=ref.image, resolve_tag=fresh)
        mine = _bot_record_for(deploys, env=env.name, revision=ref.revision)
        if mine is not None:
            deploys.link(id=mine.id, deployment_id=deployment.id, digest=digest, commit=commit)
            if outcome != IN_PROGRESS:
                deploys.settle(id=mine.id, outcome=outcome, at=finished, detail=deployment.rollout_reason)
            continue
        record = _record_external(
            deploys,
            env=env.name,
            deployment=deployment,
            ref=ref,
            digest=digest,
            commit=commit,
            outcome=outcome,
            finished=finished,
            now=now,
        )
        if record is not None:
            recorded.append(record)
    # An open record whose deployment ECS no longer lists was replaced before it completed.
    for record in deploys.open_in(env.name):
        if record.ecs_deployment_id not in listed and record.outcome == IN_PROGRESS:
            deploys.settle(
                id=record.id,
                outcome=REPLACED,
                at=now,
                detail="ECS no longer lists this deployment; another one replaced it",
            )
    scaling = _observe_count(deploys, env=env, desired=snapshot.desired, now=now)
    if scaling is not None:
        recorded.append(scaling)
    return Observation(env=env.name, recorded=tuple(recorded))


def observe_quietly(
    *, aws: AwsGateway, deploys: DeployLog, env: EnvironmentConfig, now: datetime
) -> Observation | None:
    """:func:`observe_env` where the records are a courtesy (status, history, housekeeping): AWS
    not answering is logged and the records stay as they were."""
    try:
        return observe_env(aws=aws, deploys=deploys, env=env, now=now)
    except BotError as exc:
        log.warning("observe_failed", env=env.name, error=exc.kind)
    except Exception as exc:  # noqa: BLE001 - a courtesy must never break the command it serves
        log.warning("observe_failed", env=env.name, error=type(exc).__name__)
    return None


def _image_facts(*, aws: AwsGateway, image: str | None, resolve_tag: bool) -> tuple[str | None, str | None]:
    """The image's digest (None when it cannot be resolved: then it is never soak evidence) and
    the commit SHA it was built from, when a tag says so."""
    if not image:
        return None, None
    if "@sha256:" not in image and not resolve_tag:
        return None, None
    digest = ecs.image_digest(aws=aws, image=image)
    tag = image_tag(image)
    if tag and COMMIT_TAG.match(tag):
        return digest, tag
    if digest is None:
        return None, None
    commit = next(
        (t for t in ecs.image_tags(aws=aws, image=image, digest=digest) if COMMIT_TAG.match(t)), None
    )
    return digest, commit


def _bot_record_for(deploys: DeployLog, *, env: str, revision: int) -> DeployView | None:
    """The bot's own record an ECS deployment of ``revision`` is: the newest deployment record of
    the environment, made by the bot, of that revision, and not tied to another deployment yet."""
    newest = deploys.last(env)
    if (
        newest is not None
        and not newest.external
        and newest.ecs_deployment_id is None
        and newest.to_revision == revision
    ):
        return newest
    return None


def _record_external(
    deploys: DeployLog,
    *,
    env: str,
    deployment: ecs.Deployment,
    ref: ecs.TaskDefinitionRef,
    digest: str | None,
    commit: str | None,
    outcome: str,
    finished: datetime | None,
    now: datetime,
) -> DeployView | None:
    before = deploys.last_before(env, deployment.created_at or now)
    from_revision = before.to_revision if before is not None else None
    going_back = from_revision is not None and ref.revision < from_revision
    try:
        return deploys.start(
            env=env,
            kind="rollback" if going_back else "deploy",
            requested_by="",
            image_tag=ref.image_tag,
            image_digest=digest,
            image_commit=commit,
            from_revision=from_revision,
            to_revision=ref.revision,
            at=deployment.created_at or now,
            source=EXTERNAL,
            ecs_deployment_id=deployment.id,
            outcome=outcome,
            finished_at=finished,
            detail=deployment.rollout_reason,
        )
    except IntegrityError:
        return None  # another replica recorded it a moment ago


def _observe_count(
    deploys: DeployLog, *, env: EnvironmentConfig, desired: int, now: datetime
) -> DeployView | None:
    last = deploys.observed_count(env.name)
    deploys.set_observed_count(env.name, desired, now)
    if last is None or last == desired:
        return None
    return deploys.start(
        env=env.name,
        kind="scale",
        requested_by="",
        image_tag=None,
        image_digest=None,
        from_revision=None,
        to_revision=None,
        at=now,
        source=EXTERNAL,
        outcome=COMPLETED,
        finished_at=now,
        from_count=last,
        to_count=desired,
    )


def bot_scaled(
    deploys: DeployLog,
    *,
    env: str,
    requested_by: str,
    before: int,
    after: int,
    at: datetime,
    request_id: str | None,
) -> None:
    """The bot's own scaling, recorded as it is made, so the observer does not take it for another's."""
    if before != after:
        deploys.start(
            env=env,
            kind="scale",
            requested_by=requested_by,
            image_tag=None,
            image_digest=None,
            from_revision=None,
            to_revision=None,
            at=at,
            outcome=COMPLETED,
            finished_at=at,
            from_count=before,
            to_count=after,
            request_id=request_id,
        )
    deploys.set_observed_count(env, after, at)


@dataclass(frozen=True)
class SoakEvidence:
    """What the soak environment's records say about one candidate image: every deployment there of
    the same digest, or of an image of the same commit, oldest first, and which of those were
    rolled back afterwards (someone went back to the revision before them)."""

    env: str
    records: tuple[DeployView, ...]
    rolled_back: frozenset[int]

    @property
    def completed(self) -> tuple[DeployView, ...]:
        return tuple(r for r in self.records if r.outcome == COMPLETED and r.id not in self.rolled_back)


def soak_evidence(
    *,
    aws: AwsGateway,
    deploys: DeployLog,
    soak_env: EnvironmentConfig,
    image: str,
    tag: str,
    digest: str,
    now: datetime,
) -> SoakEvidence:
    """Read the soak environment from ECS (so CI/CD's deployments count), then gather the evidence
    for ``digest`` (tagged ``tag`` in ``image``'s repository). AWS errors propagate: a soak that
    cannot be checked is never assumed."""
    observe_env(aws=aws, deploys=deploys, env=soak_env, now=now)
    commits = {t for t in (tag, *ecs.image_tags(aws=aws, image=image, digest=digest)) if COMMIT_TAG.match(t)}
    # An image with no resolvable digest is never evidence, whatever commit its tag names.
    records = tuple(
        r
        for r in deploys.ran_matching(env=soak_env.name, digests=(digest,), commits=commits)
        if r.image_digest is not None
    )
    rolled_back = set()
    for record in records:
        following = deploys.next_after(record)
        if following is not None and following.kind == "rollback" and following.outcome == COMPLETED:
            rolled_back.add(record.id)
    return SoakEvidence(env=soak_env.name, records=records, rolled_back=frozenset(rolled_back))
