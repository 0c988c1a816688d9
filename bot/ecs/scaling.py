"""``scale``: the service's desired count, or, where the environment autoscales, the Application
Auto Scaling target's bounds; the environment's bounds are checked again here."""

from __future__ import annotations

from dataclasses import dataclass

from bot.aws import AwsGateway
from bot.config import EnvironmentConfig
from bot.ecs.deployments import _describe_service, _update_service
from bot.errors import NotFound, PolicyViolation

_SCALABLE_DIMENSION = "ecs:service:DesiredCount"


@dataclass(frozen=True)
class ScaleChange:
    autoscaled: bool
    desired_before: int
    desired_after: int
    min_before: int | None  # the scalable target's bounds; None on manually scaled environments
    min_after: int | None
    max_before: int | None
    max_after: int | None
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return (self.desired_before, self.min_before, self.max_before) != (
            self.desired_after,
            self.min_after,
            self.max_after,
        )


def scale(*, aws: AwsGateway, env: EnvironmentConfig, count: int, dry_run: bool = False) -> ScaleChange:
    """Manually scaled environments: the service's desired count. Autoscaled ones: the scalable
    target's minimum (and maximum when ``count`` is above it, never lowered), and the desired
    count raised to the new minimum when below it."""
    low, high = env.tasks.min, env.tasks.max
    if not low <= count <= high:
        allowed = f"exactly {low} task{'s' if low != 1 else ''}" if low == high else f"{low}–{high} tasks"
        raise PolicyViolation(f"{env.name} allows {allowed}; ask for a number in that range.")
    desired = int(_describe_service(aws=aws, env=env).get("desiredCount", 0))

    if not env.autoscaling:
        change = ScaleChange(
            autoscaled=False,
            desired_before=desired,
            desired_after=count,
            min_before=None,
            min_after=None,
            max_before=None,
            max_after=None,
            dry_run=dry_run,
        )
        if not dry_run and count != desired:
            _update_service(aws=aws, env=env, desiredCount=count)
        return change

    resource_id = f"service/{env.cluster}/{env.service}"
    targets = aws.paginate(
        "application-autoscaling",
        "describe_scalable_targets",
        "ScalableTargets",
        ServiceNamespace="ecs",
        ResourceIds=[resource_id],
        ScalableDimension=_SCALABLE_DIMENSION,
    )
    target = next(
        (
            t
            for t in targets
            if t.get("ResourceId") == resource_id and t.get("ScalableDimension") == _SCALABLE_DIMENSION
        ),
        None,
    )
    if target is None:
        raise NotFound(
            f"{env.name} is configured for autoscaling but {resource_id} has no scalable target; register "
            "one (or set autoscaling: false for it) before scaling."
        )
    min_before, max_before = int(target["MinCapacity"]), int(target["MaxCapacity"])
    max_after = max(max_before, count)
    change = ScaleChange(
        autoscaled=True,
        desired_before=desired,
        desired_after=max(desired, count),
        min_before=min_before,
        min_after=count,
        max_before=max_before,
        max_after=max_after,
        dry_run=dry_run,
    )
    if dry_run:
        return change
    if (min_before, max_before) != (count, max_after):
        aws.call(
            "application-autoscaling",
            "register_scalable_target",
            ServiceNamespace="ecs",
            ResourceId=resource_id,
            ScalableDimension=_SCALABLE_DIMENSION,
            MinCapacity=count,
            MaxCapacity=max_after,
        )
    if desired < count:
        # AWS's autoscaler would raise it to the new minimum on its own, minutes later; moto never does.
        _update_service(aws=aws, env=env, desiredCount=count)
    return change
