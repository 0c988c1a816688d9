"""bot.ecs over moto in-process: every change is checked against moto's state afterwards.

moto never advances an ECS deployment, so the rollout tests move the service with
``bot.simulator.set_rollout`` from a fake ``sleep``, and a fake clock drives the timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.aws import AwsGateway
from bot.config import Config, EnvironmentConfig
from bot.ecs import (
    Difference,
    ImageRef,
    RolloutSnapshot,
    ScaleChange,
    find_image,
    follow_rollout,
    image_with_tag,
    plan_revision,
    register_revision,
    repository_of,
    resolve_revision,
    rollback_target,
    rollout,
    scale,
    service_snapshot,
    update_service,
)
from bot.errors import AwsUnavailable, BadInput, NotFound, PolicyViolation
from bot.simulator import (
    APP_CONTAINER,
    REPOSITORY,
    SIDECAR_CONTAINER,
    SeedReport,
    set_rollout,
)
from tests.conftest import REGION, Platform

PROD_FAMILY = "menotime-backend-prod"


# -- helpers reading moto back ---------------------------------------------------------------


def _service(aws: AwsGateway, env: EnvironmentConfig) -> dict[str, Any]:
    return aws.call("ecs", "describe_services", cluster=env.cluster, services=[env.service])["services"][0]


def _taskdef(aws: AwsGateway, ref: str) -> dict[str, Any]:
    answer = aws.call("ecs", "describe_task_definition", taskDefinition=ref, include=["TAGS"])
    return {**answer["taskDefinition"], "tags": answer.get("tags", [])}


def _active_arns(aws: AwsGateway, family: str) -> list[str]:
    return aws.paginate(
        "ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=family, status="ACTIVE"
    )


def _target(aws: AwsGateway, env: EnvironmentConfig) -> tuple[int, int] | None:
    targets = aws.call(
        "application-autoscaling",
        "describe_scalable_targets",
        ServiceNamespace="ecs",
        ResourceIds=[f"service/{env.cluster}/{env.service}"],
    )["ScalableTargets"]
    return (targets[0]["MinCapacity"], targets[0]["MaxCapacity"]) if targets else None


def _set_target(aws: AwsGateway, env: EnvironmentConfig, low: int, high: int) -> None:
    aws.call(
        "application-autoscaling",
        "register_scalable_target",
        ServiceNamespace="ecs",
        ResourceId=f"service/{env.cluster}/{env.service}",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=low,
        MaxCapacity=high,
    )


def _move(env: EnvironmentConfig, state: Any, reason: str | None = None) -> None:
    set_rollout(region=REGION, cluster=env.cluster, service=env.service, state=state, reason=reason)


def _image(seeded: SeedReport, tag: str) -> str:
    return f"{seeded.repository_uri}:{tag}"


# -- read-only: one seeded moto for the class ------------------------------------------------


class TestReading:
    def test_find_image_returns_digest_and_push_time(self, platform: Platform) -> None:
        aws, _ = platform
        ref = find_image(aws=aws, repository=REPOSITORY, tag="v1.4.2")
        detail = aws.call(
            "ecr", "describe_images", repositoryName=REPOSITORY, imageIds=[{"imageTag": "v1.4.2"}]
        )["imageDetails"][0]
        assert ref == ImageRef(
            repository=REPOSITORY, tag="v1.4.2", digest=detail["imageDigest"], pushed_at=ref.pushed_at
        )
        assert ref.digest.startswith("sha256:") and len(ref.digest) == 71
        assert ref.pushed_at is not None and ref.pushed_at.tzinfo is not None

    def test_missing_tag_suggests_the_newest_tags(self, platform: Platform, config: Config) -> None:
        aws, _ = platform
        with pytest.raises(NotFound) as caught:
            find_image(aws=aws, repository=REPOSITORY, tag="v9.9.9")
        assert caught.value.message == (
            "There is no image tagged `v9.9.9` in menotime-backend; push it first or pick one of: "
            "v1.5.0, v1.4.2, v1.4.1, main, PR-42."
        )
        # Restricted to what the environment accepts, as deploy asks.
        with pytest.raises(NotFound) as caught:
            find_image(
                aws=aws, repository=REPOSITORY, tag="v9.9.9", suggest_if=config.env("prod").image_tags.accepts
            )
        assert caught.value.message == (
            "There is no image tagged `v9.9.9` in menotime-backend; push it first or pick one of: "
            "v1.5.0, v1.4.2, v1.4.1."
        )

    def test_missing_repository_is_not_found(self, platform: Platform) -> None:
        aws, _ = platform
        with pytest.raises(NotFound, match="no ECR repository named menotime-frontend"):
            find_image(aws=aws, repository="menotime-frontend", tag="v1.0.0")

    def test_service_snapshot_of_prod(self, platform: Platform, config: Config) -> None:
        aws, seeded = platform
        snap = service_snapshot(aws=aws, env=config.env("prod"))
        assert snap.task_definition_arn == seeded.env("prod").task_definition_arns[-1]
        assert (snap.family, snap.revision, snap.task_definition) == (PROD_FAMILY, 3, f"{PROD_FAMILY}:3")
        assert (snap.desired, snap.running, snap.pending) == (2, 2, 0)
        assert snap.image == _image(seeded, "v1.5.0") and snap.image_tag == "v1.5.0"
        assert snap.app_container == APP_CONTAINER
        assert snap.rollout_state == "COMPLETED"
        assert [d.status for d in snap.deployments] == ["PRIMARY"]
        assert snap.deployments[0].task_definition_arn == snap.task_definition_arn
        assert snap.events and "steady state" in snap.events[0].message

    def test_missing_cluster_and_service_are_sentences(self, platform: Platform, config: Config) -> None:
        aws, _ = platform
        prod = config.env("prod")
        with pytest.raises(NotFound) as caught:
            service_snapshot(aws=aws, env=prod.model_copy(update={"cluster": "menotime-nope-cluster"}))
        assert caught.value.message == (
            "Cluster menotime-nope-cluster of prod does not exist; check the cluster "
            "named for prod in the configuration."
        )
        with pytest.raises(NotFound) as caught:
            service_snapshot(aws=aws, env=prod.model_copy(update={"service": "menotime-nope-service"}))
        assert caught.value.message == (
            "Service menotime-nope-service is not in cluster menotime-prod-cluster; "
            "check the service named for prod in the configuration."
        )

    def test_plan_revision_registers_nothing(self, platform: Platform, config: Config) -> None:
        aws, seeded = platform
        prod = config.env("prod")
        before = _active_arns(aws, PROD_FAMILY)
        plan = plan_revision(aws=aws, env=prod, base_arn=before[-1], image=_image(seeded, "v1.4.2"))
        assert _active_arns(aws, PROD_FAMILY) == before
        assert (plan.to_arn, plan.to_revision, plan.registered) == (None, None, False)
        assert (plan.from_revision, plan.container, plan.family) == (3, APP_CONTAINER, PROD_FAMILY)
        assert (plan.from_image, plan.to_image) == (_image(seeded, "v1.5.0"), _image(seeded, "v1.4.2"))
        assert plan.differences == (
            Difference(
                field="containerDefinitions[app].image",
                before=_image(seeded, "v1.5.0"),
                after=_image(seeded, "v1.4.2"),
            ),
        )
        # The same image again: a plan with no differences.
        same = plan_revision(aws=aws, env=prod, base_arn=before[-1], image=_image(seeded, "v1.5.0"))
        assert same.differences == ()

    def test_resolve_revision_by_number(self, platform: Platform, config: Config) -> None:
        aws, seeded = platform
        prod = config.env("prod")
        for spec in ("2", "#2", f"{PROD_FAMILY}:2", " 2 "):
            ref = resolve_revision(aws=aws, env=prod, spec=spec)
            assert ref.arn == seeded.env("prod").task_definition_arns[1]
            assert (ref.revision, ref.image_tag, ref.label) == (2, "v1.4.2", f"{PROD_FAMILY}:2")
            assert ref.image == _image(seeded, "v1.4.2")
        with pytest.raises(NotFound) as caught:
            resolve_revision(aws=aws, env=prod, spec="41")
        assert (
            caught.value.message == f"{PROD_FAMILY} has no revision 41; `status prod` shows the current one."
        )

    def test_resolve_revision_by_tag(self, platform: Platform, config: Config) -> None:
        aws, seeded = platform
        prod = config.env("prod")
        ref = resolve_revision(aws=aws, env=prod, spec="v1.4.1")
        assert (ref.revision, ref.arn) == (1, seeded.env("prod").task_definition_arns[0])
        with pytest.raises(NotFound) as caught:
            resolve_revision(aws=aws, env=prod, spec="v1.3.0")
        assert caught.value.message == (
            f"No active revision of {PROD_FAMILY} runs `v1.3.0`; name a revision number "
            "instead or one of the versions it has: v1.5.0, v1.4.2, v1.4.1."
        )

    def test_rollout_of_a_settled_service(self, platform: Platform, config: Config) -> None:
        aws, seeded = platform
        snap = rollout(aws=aws, env=config.env("prod"))
        assert (snap.state, snap.rolled_back, snap.running, snap.desired, snap.pending) == (
            "COMPLETED",
            False,
            2,
            2,
            0,
        )
        assert snap.task_definition_arn == seeded.env("prod").task_definition_arns[-1]
        assert snap.finished


def test_repository_of_and_image_with_tag() -> None:
    host = "123456789012.dkr.ecr.us-west-1.amazonaws.com"
    assert repository_of(f"{host}/menotime-backend:v1.5.0") == "menotime-backend"
    assert repository_of(f"{host}/menotime-backend@sha256:{'a' * 64}") == "menotime-backend"
    assert repository_of(f"{host}/team/menotime-backend:v1.5.0") == "team/menotime-backend"
    assert repository_of(f"{host}/menotime-backend") == "menotime-backend"
    for image in (
        "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
        "nginx:1.27",
        "menotime-backend",
    ):
        with pytest.raises(BadInput, match="not an ECR image"):
            repository_of(image)
    assert image_with_tag(f"{host}/menotime-backend:v1.5.0", "v1.4.2") == f"{host}/menotime-backend:v1.4.2"
    assert (
        image_with_tag(f"{host}/menotime-backend@sha256:{'a' * 64}", "v1.4.2")
        == f"{host}/menotime-backend:v1.4.2"
    )
    assert image_with_tag("localhost:5000/app:1", "2") == "localhost:5000/app:2"
    digest = f"sha256:{'b' * 64}"
    pinned = image_with_tag(f"{host}/menotime-backend:v1.5.0@sha256:{'a' * 64}", "v1.6.0", digest)
    assert pinned == f"{host}/menotime-backend:v1.6.0@{digest}"


# -- ECR -------------------------------------------------------------------------------------


def test_untagged_images_are_never_suggested(seeded_aws: AwsGateway) -> None:
    # moto answers the TAGGED filter with untagged images too; the newest push here is untagged.
    manifest = (
        '{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", '
        '"config": {"digest": "sha256:' + "b" * 64 + '", "size": 1, "mediaType": "x"}, "layers": []}'
    )
    seeded_aws.call("ecr", "put_image", repositoryName=REPOSITORY, imageManifest=manifest)
    with pytest.raises(NotFound) as caught:
        find_image(aws=seeded_aws, repository=REPOSITORY, tag="v9.9.9")
    assert caught.value.message.endswith("pick one of: v1.5.0, v1.4.2, v1.4.1, main, PR-42.")


def test_empty_repository_says_push_it(aws: AwsGateway) -> None:
    aws.call("ecr", "create_repository", repositoryName=REPOSITORY)
    with pytest.raises(NotFound) as caught:
        find_image(aws=aws, repository=REPOSITORY, tag="v1.0.0")
    assert caught.value.message == "There is no image tagged `v1.0.0` in menotime-backend; push it first."


# -- task definitions ------------------------------------------------------------------------


def test_register_revision_changes_only_the_app_image(
    seeded_aws: AwsGateway, seeded: SeedReport, config: Config
) -> None:
    aws, prod = seeded_aws, config.env("prod")
    base_arn = seeded.env("prod").task_definition_arns[-1]
    change = register_revision(aws=aws, env=prod, base_arn=base_arn, image=_image(seeded, "v1.4.2"))

    assert (change.from_arn, change.from_revision, change.to_revision) == (base_arn, 3, 4)
    assert change.to_arn is not None and change.to_arn.endswith(f"task-definition/{PROD_FAMILY}:4")
    assert change.registered and change.container == APP_CONTAINER
    assert [d.field for d in change.differences] == ["containerDefinitions[app].image"]

    base, new = _taskdef(aws, base_arn), _taskdef(aws, change.to_arn)
    volatile = {"taskDefinitionArn", "revision", "registeredAt", "registeredBy", "containerDefinitions"}
    assert {k: v for k, v in new.items() if k not in volatile} == {
        k: v for k, v in base.items() if k not in volatile
    }
    assert (new["cpu"], new["memory"], new["family"]) == ("1024", "2048", PROD_FAMILY)
    assert new["tags"] == [{"key": "Environment", "value": "prod"}]
    new_app, new_sidecar = new["containerDefinitions"]
    base_app, base_sidecar = base["containerDefinitions"]
    assert new_sidecar == base_sidecar and new_sidecar["name"] == SIDECAR_CONTAINER
    assert new_app == {**base_app, "image": _image(seeded, "v1.4.2")}
    # The base revision is untouched and still active; the service has not moved.
    assert base["status"] == "ACTIVE" and base_app["image"] == _image(seeded, "v1.5.0")
    assert _service(aws, prod)["taskDefinition"] == base_arn


def test_several_essential_containers_need_app_container(
    seeded_aws: AwsGateway, seeded: SeedReport, config: Config
) -> None:
    aws, prod = seeded_aws, config.env("prod")
    containers = [
        {"name": name, "image": _image(seeded, "v1.5.0"), "essential": True} for name in ("api", "worker")
    ]
    arn = aws.call(
        "ecs",
        "register_task_definition",
        family=PROD_FAMILY,
        containerDefinitions=containers,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )["taskDefinition"]["taskDefinitionArn"]
    before = _active_arns(aws, PROD_FAMILY)

    with pytest.raises(BadInput) as caught:
        register_revision(aws=aws, env=prod, base_arn=arn, image=_image(seeded, "v1.4.2"))
    assert caught.value.message == (
        f"{PROD_FAMILY}:4 has several essential containers (api, worker); "
        "set app_container for prod to the one deploys should change."
    )
    with pytest.raises(
        BadInput, match="no container named app; set app_container for prod to one of: api, worker"
    ):
        register_revision(
            aws=aws,
            env=prod.model_copy(update={"app_container": "app"}),
            base_arn=arn,
            image=_image(seeded, "v1.4.2"),
        )
    assert _active_arns(aws, PROD_FAMILY) == before

    chosen = register_revision(
        aws=aws,
        env=prod.model_copy(update={"app_container": "worker"}),
        base_arn=arn,
        image=_image(seeded, "v1.4.2"),
    )
    assert chosen.to_arn is not None
    images = {c["name"]: c["image"] for c in _taskdef(aws, chosen.to_arn)["containerDefinitions"]}
    assert images == {"api": _image(seeded, "v1.5.0"), "worker": _image(seeded, "v1.4.2")}


def test_register_revision_of_a_missing_base(seeded_aws: AwsGateway, config: Config) -> None:
    with pytest.raises(NotFound, match=f"Task definition {PROD_FAMILY}:99 of prod does not exist"):
        register_revision(aws=seeded_aws, env=config.env("prod"), base_arn=f"{PROD_FAMILY}:99", image="x:y")


def test_update_service_moves_the_service(seeded_aws: AwsGateway, seeded: SeedReport, config: Config) -> None:
    aws, prod = seeded_aws, config.env("prod")
    change = register_revision(
        aws=aws,
        env=prod,
        base_arn=seeded.env("prod").task_definition_arns[-1],
        image=_image(seeded, "v1.4.2"),
    )
    assert change.to_arn is not None
    deployment = update_service(aws=aws, env=prod, task_definition_arn=change.to_arn)

    svc = _service(aws, prod)
    assert svc["taskDefinition"] == change.to_arn
    assert svc["desiredCount"] == 2
    # moto answers with the old PRIMARY deployment (it never starts one): no id for the new revision.
    assert deployment is None
    snap = service_snapshot(aws=aws, env=prod)
    assert (snap.revision, snap.image_tag) == (4, "v1.4.2")


def test_update_service_of_a_missing_service(seeded_aws: AwsGateway, config: Config) -> None:
    env = config.env("prod").model_copy(update={"service": "menotime-nope-service"})
    with pytest.raises(
        NotFound, match="Service menotime-nope-service is not active in cluster menotime-prod-cluster"
    ):
        update_service(aws=seeded_aws, env=env, task_definition_arn=f"{PROD_FAMILY}:1")


def test_rollback_target_from_records_and_from_the_family(
    seeded_aws: AwsGateway, seeded: SeedReport, config: Config
) -> None:
    aws, prod = seeded_aws, config.env("prod")
    arns = seeded.env("prod").task_definition_arns
    current = arns[-1]

    from_records = rollback_target(aws=aws, env=prod, current_arn=current, previous_from_records=1)
    assert (from_records.arn, from_records.revision, from_records.image_tag) == (arns[0], 1, "v1.4.1")

    from_family = rollback_target(aws=aws, env=prod, current_arn=current, previous_from_records=None)
    assert (from_family.arn, from_family.revision, from_family.image_tag) == (arns[1], 2, "v1.4.2")
    # Records naming the current revision say nothing useful: the family decides.
    assert rollback_target(aws=aws, env=prod, current_arn=current, previous_from_records=3).revision == 2

    # A revision newer than the current one is never a default target.
    newer = register_revision(aws=aws, env=prod, base_arn=current, image=_image(seeded, "v1.4.2"))
    assert newer.to_revision == 4
    assert rollback_target(aws=aws, env=prod, current_arn=current, previous_from_records=None).revision == 2

    aws.call("ecs", "deregister_task_definition", taskDefinition=arns[1])
    assert rollback_target(aws=aws, env=prod, current_arn=current, previous_from_records=None).revision == 1
    with pytest.raises(NotFound) as caught:
        rollback_target(aws=aws, env=prod, current_arn=current, previous_from_records=2)
    assert caught.value.message == (
        f"Revision {PROD_FAMILY}:2, which prod ran before the current one, has been "
        "deregistered; name an active revision or version to roll back to, like "
        "`rollback prod <revision>`."
    )
    with pytest.raises(
        NotFound, match=f"Revision {PROD_FAMILY}:41, which prod ran before the current one, no longer"
    ):
        rollback_target(aws=aws, env=prod, current_arn=current, previous_from_records=41)

    aws.call("ecs", "deregister_task_definition", taskDefinition=arns[0])
    with pytest.raises(NotFound) as caught:
        rollback_target(aws=aws, env=prod, current_arn=current, previous_from_records=None)
    assert caught.value.message == "prod has no earlier active revision to roll back to."
    assert _service(aws, prod)["taskDefinition"] == current  # reading only


def test_resolve_revision_prefers_the_newest_and_refuses_deregistered(
    seeded_aws: AwsGateway, seeded: SeedReport, config: Config
) -> None:
    aws, prod = seeded_aws, config.env("prod")
    arns = seeded.env("prod").task_definition_arns
    again = register_revision(aws=aws, env=prod, base_arn=arns[-1], image=_image(seeded, "v1.4.2"))
    assert resolve_revision(aws=aws, env=prod, spec="v1.4.2").arn == again.to_arn

    aws.call("ecs", "deregister_task_definition", taskDefinition=arns[0])
    with pytest.raises(NotFound) as caught:
        resolve_revision(aws=aws, env=prod, spec="1")
    assert caught.value.message == (
        f"Revision {PROD_FAMILY}:1 has been deregistered and cannot run again; pick "
        "an active revision or a version instead."
    )
    with pytest.raises(NotFound, match=r"No active revision of menotime-backend-prod runs `v1\.4\.1`"):
        resolve_revision(aws=aws, env=prod, spec="v1.4.1")


# -- scaling ---------------------------------------------------------------------------------


def test_scale_dev_sets_desired_count(seeded_aws: AwsGateway, config: Config) -> None:
    aws, dev = seeded_aws, config.env("dev")
    plan = scale(aws=aws, env=dev, count=2, dry_run=True)
    assert plan == ScaleChange(
        autoscaled=False,
        desired_before=1,
        desired_after=2,
        min_before=None,
        min_after=None,
        max_before=None,
        max_after=None,
        dry_run=True,
    )
    assert _service(aws, dev)["desiredCount"] == 1

    change = scale(aws=aws, env=dev, count=2)
    assert change == ScaleChange(
        autoscaled=False,
        desired_before=1,
        desired_after=2,
        min_before=None,
        min_after=None,
        max_before=None,
        max_after=None,
    )
    assert change.changed
    assert _service(aws, dev)["desiredCount"] == 2
    assert _target(aws, dev) is None

    assert scale(aws=aws, env=dev, count=1).desired_after == 1
    assert _service(aws, dev)["desiredCount"] == 1


def test_scale_prod_moves_the_scalable_target(seeded_aws: AwsGateway, config: Config) -> None:
    aws, prod = seeded_aws, config.env("prod")
    assert (_target(aws, prod), _service(aws, prod)["desiredCount"]) == ((2, 4), 2)

    plan = scale(aws=aws, env=prod, count=3, dry_run=True)
    assert (plan.min_after, plan.max_after, plan.desired_after, plan.dry_run) == (3, 4, 3, True)
    assert (_target(aws, prod), _service(aws, prod)["desiredCount"]) == ((2, 4), 2)

    change = scale(aws=aws, env=prod, count=3)
    assert change == ScaleChange(
        autoscaled=True,
        desired_before=2,
        desired_after=3,
        min_before=2,
        min_after=3,
        max_before=4,
        max_after=4,
    )
    assert (_target(aws, prod), _service(aws, prod)["desiredCount"]) == ((3, 4), 3)

    # Lowering the minimum never lowers the maximum nor fights the autoscaler over the desired count.
    change = scale(aws=aws, env=prod, count=2)
    assert (change.min_after, change.max_after, change.desired_after) == (2, 4, 3)
    assert (_target(aws, prod), _service(aws, prod)["desiredCount"]) == ((2, 4), 3)


def test_scale_prod_raises_the_max_when_needed(seeded_aws: AwsGateway, config: Config) -> None:
    aws, prod = seeded_aws, config.env("prod")
    _set_target(aws, prod, 2, 2)
    change = scale(aws=aws, env=prod, count=4)
    assert change == ScaleChange(
        autoscaled=True,
        desired_before=2,
        desired_after=4,
        min_before=2,
        min_after=4,
        max_before=2,
        max_after=4,
    )
    assert (_target(aws, prod), _service(aws, prod)["desiredCount"]) == ((4, 4), 4)


@pytest.mark.parametrize(
    ("env_name", "count", "message"),
    [
        ("prod", 9, "prod allows 2–4 tasks; ask for a number in that range."),
        ("prod", 1, "prod allows 2–4 tasks; ask for a number in that range."),
        ("dev", 3, "dev allows 1–2 tasks; ask for a number in that range."),
        ("dev", 0, "dev allows 1–2 tasks; ask for a number in that range."),
        ("staging", -1, "staging allows 2–3 tasks; ask for a number in that range."),
    ],
)
def test_scale_out_of_bounds_changes_nothing(
    seeded_aws: AwsGateway, config: Config, env_name: str, count: int, message: str
) -> None:
    aws, env = seeded_aws, config.env(env_name)
    before = (_target(aws, env), _service(aws, env)["desiredCount"])
    for dry_run in (False, True):
        with pytest.raises(PolicyViolation) as caught:
            scale(aws=aws, env=env, count=count, dry_run=dry_run)
        assert caught.value.message == message
    assert (_target(aws, env), _service(aws, env)["desiredCount"]) == before


def test_scale_without_a_scalable_target_is_refused(seeded_aws: AwsGateway, config: Config) -> None:
    aws, prod = seeded_aws, config.env("prod")
    aws.call(
        "application-autoscaling",
        "deregister_scalable_target",
        ServiceNamespace="ecs",
        ResourceId=f"service/{prod.cluster}/{prod.service}",
        ScalableDimension="ecs:service:DesiredCount",
    )
    with pytest.raises(NotFound) as caught:
        scale(aws=aws, env=prod, count=3)
    assert caught.value.message == (
        "prod is configured for autoscaling but service/menotime-prod-cluster/menotime-prod-service has no "
        "scalable target; register one (or set autoscaling: false for it) before scaling."
    )
    assert (_target(aws, prod), _service(aws, prod)["desiredCount"]) == (None, 2)


# -- rollouts --------------------------------------------------------------------------------


class FakeTime:
    """A clock that moves only when slept on; each sleep may also run the next step of a script."""

    def __init__(self, steps: list[Callable[[], None]] | None = None) -> None:
        self.at = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
        self.steps = list(steps or [])
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)
        if self.steps:
            self.steps.pop(0)()


def _deploy(aws: AwsGateway, seeded: SeedReport, env: EnvironmentConfig, tag: str) -> str:
    change = register_revision(
        aws=aws, env=env, base_arn=_service(aws, env)["taskDefinition"], image=_image(seeded, tag)
    )
    assert change.to_arn is not None
    update_service(aws=aws, env=env, task_definition_arn=change.to_arn)
    return change.to_arn


def test_follow_rollout_to_completed(seeded_aws: AwsGateway, seeded: SeedReport, config: Config) -> None:
    aws, prod = seeded_aws, config.env("prod")
    new_arn = _deploy(aws, seeded, prod, "v1.4.2")
    time = FakeTime([lambda: _move(prod, "IN_PROGRESS"), lambda: None, lambda: _move(prod, "COMPLETED")])
    seen: list[RolloutSnapshot] = []

    final = follow_rollout(
        aws=aws,
        env=prod,
        task_definition_arn=new_arn,
        on_change=seen.append,
        sleep=time.sleep,
        now=time.now,
        interval=10.0,
    )

    assert [s.state for s in seen] == ["IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
    assert seen[0].reason == "Waiting for ECS to start the deployment."  # moto: no deployment yet
    assert (seen[1].running, seen[1].pending, seen[1].desired) == (0, 2, 2)
    assert "has started 2 tasks" in seen[1].events[0].message
    assert final is seen[-1]
    assert (final.state, final.rolled_back, final.running, final.desired, final.pending) == (
        "COMPLETED",
        False,
        2,
        2,
        0,
    )
    assert final.task_definition_arn == new_arn
    assert "steady state" in final.events[0].message and len(final.events) <= 5
    assert time.slept == [10.0, 10.0, 10.0]  # the unchanged poll in the middle was not reported
    svc = _service(aws, prod)
    assert svc["taskDefinition"] == new_arn and svc["runningCount"] == 2
    assert service_snapshot(aws=aws, env=prod).image_tag == "v1.4.2"


def test_follow_rollout_to_a_circuit_breaker_rollback(
    seeded_aws: AwsGateway, seeded: SeedReport, config: Config
) -> None:
    aws, prod = seeded_aws, config.env("prod")
    old_arn = _service(aws, prod)["taskDefinition"]
    new_arn = _deploy(aws, seeded, prod, "v1.4.2")
    _move(prod, "IN_PROGRESS")
    time = FakeTime([lambda: _move(prod, "FAILED")])
    seen: list[RolloutSnapshot] = []

    final = follow_rollout(
        aws=aws, env=prod, task_definition_arn=new_arn, on_change=seen.append, sleep=time.sleep, now=time.now
    )

    assert [s.state for s in seen] == ["IN_PROGRESS", "FAILED"]
    assert final.state == "FAILED" and final.rolled_back
    assert final.reason == "ECS deployment circuit breaker: tasks failed to start."
    assert "deployment failed" in final.events[0].message

    # ECS then starts the previous revision again: the deployment stays FAILED, rolled back, and the
    # snapshot says what the service now runs.
    update_service(aws=aws, env=prod, task_definition_arn=old_arn)
    _move(prod, "IN_PROGRESS")
    after = rollout(aws=aws, env=prod, task_definition_arn=new_arn)
    assert (after.state, after.rolled_back, after.task_definition_arn) == ("FAILED", True, old_arn)
    _move(prod, "COMPLETED")  # the failed deployment is gone from the list
    gone = rollout(aws=aws, env=prod, task_definition_arn=new_arn)
    assert (gone.state, gone.rolled_back, gone.task_definition_arn) == ("FAILED", True, old_arn)
    assert gone.reason == f"ECS replaced the deployment; the service now runs {PROD_FAMILY}:3."


def test_a_failure_without_rollback_is_not_reported_as_one(
    seeded_aws: AwsGateway, seeded: SeedReport, config: Config
) -> None:
    aws, prod = seeded_aws, config.env("prod")
    new_arn = _deploy(aws, seeded, prod, "v1.4.2")
    time = FakeTime(
        [
            lambda: _move(prod, "IN_PROGRESS"),
            lambda: _move(prod, "FAILED", reason="Task failed to start: CannotPullContainerError"),
        ]
    )
    final = follow_rollout(
        aws=aws,
        env=prod,
        task_definition_arn=new_arn,
        on_change=lambda _: None,
        sleep=time.sleep,
        now=time.now,
    )
    assert (final.state, final.rolled_back, final.task_definition_arn) == ("FAILED", False, new_arn)
    assert final.reason == "Task failed to start: CannotPullContainerError"


def test_follow_rollout_times_out(seeded_aws: AwsGateway, seeded: SeedReport, config: Config) -> None:
    aws, dev = seeded_aws, config.env("dev")
    new_arn = _deploy(aws, seeded, dev, "feature-login")
    _move(dev, "IN_PROGRESS")
    time = FakeTime()
    seen: list[RolloutSnapshot] = []

    final = follow_rollout(
        aws=aws,
        env=dev,
        task_definition_arn=new_arn,
        on_change=seen.append,
        sleep=time.sleep,
        now=time.now,
        interval=60.0,
        timeout=timedelta(minutes=5),
    )

    assert final.state == "TIMED_OUT" and not final.rolled_back
    assert (
        final.reason
        == "The rollout had not finished after 5 minutes; it may still complete — check `status dev`."
    )
    assert [s.state for s in seen] == ["IN_PROGRESS", "TIMED_OUT"]
    assert time.slept == [60.0] * 5
    assert time.at == datetime(2026, 11, 24, 18, 5, tzinfo=UTC)
    assert _service(aws, dev)["taskDefinition"] == new_arn  # nothing undone


class _Flaky:
    """The gateway, except that describe_services fails ``failures`` times first."""

    def __init__(self, aws: AwsGateway, failures: int) -> None:
        self._aws, self._left = aws, failures

    def call(self, service: str, operation: str, /, **params: Any) -> dict[str, Any]:
        if operation == "describe_services" and self._left > 0:
            self._left -= 1
            raise AwsUnavailable("AWS did not answer (ECS: could not connect); nothing was changed.")
        return self._aws.call(service, operation, **params)


def test_follow_rollout_rides_out_a_short_outage(
    seeded_aws: AwsGateway, seeded: SeedReport, config: Config
) -> None:
    aws, dev = seeded_aws, config.env("dev")
    new_arn = _deploy(aws, seeded, dev, "develop")
    _move(dev, "IN_PROGRESS")
    time = FakeTime([lambda: None, lambda: _move(dev, "COMPLETED")])
    final = follow_rollout(
        aws=_Flaky(aws, 2),
        env=dev,
        task_definition_arn=new_arn,  # type: ignore[arg-type]
        on_change=lambda _: None,
        sleep=time.sleep,
        now=time.now,
    )
    assert final.state == "COMPLETED"

    time = FakeTime()
    with pytest.raises(AwsUnavailable):
        follow_rollout(
            aws=_Flaky(aws, 3),
            env=dev,
            task_definition_arn=new_arn,  # type: ignore[arg-type]
            on_change=lambda _: None,
            sleep=time.sleep,
            now=time.now,
        )
    assert len(time.slept) == 2
