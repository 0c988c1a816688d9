"""The AWS side of ``deploy``, ``rollback`` and ``scale``: ECR images, ECS task definitions and
services, Application Auto Scaling targets, and following a rollout.

Plain keyword-only functions over the :class:`bot.aws.AwsGateway`, answering frozen dataclasses.
Nothing here knows about Slack, the database or policy: callers decide *whether* to act (roles,
approvals, windows, locks); this package only does it, refusing with one user sentence
(:mod:`bot.errors`) when AWS's state makes the action impossible. ``scale`` repeats the
environment's bounds as a last line of defence.

Every ``dry_run``/``plan_*`` variant reads exactly what the real call reads and changes nothing.
"""

from bot.ecs.deployments import (
    MAX_EVENTS,
    Deployment,
    RolloutState,
    ServiceSnapshot,
    service_snapshot,
    update_service,
)
from bot.ecs.images import (
    MAX_SUGGESTED_TAGS,
    ImageRef,
    find_image,
    image_digest,
    image_tags,
    image_with_tag,
    newest_tags,
    repository_of,
)
from bot.ecs.rollouts import MAX_POLL_FAILURES, RolloutSnapshot, follow_rollout, rollout
from bot.ecs.scaling import ScaleChange, scale
from bot.ecs.task_definitions import (
    MAX_REVISIONS_SEARCHED,
    Difference,
    TaskDefinitionChange,
    TaskDefinitionRef,
    describe_revision,
    plan_revision,
    register_revision,
    resolve_revision,
    rollback_target,
)

__all__ = [
    "MAX_EVENTS",
    "MAX_POLL_FAILURES",
    "MAX_REVISIONS_SEARCHED",
    "MAX_SUGGESTED_TAGS",
    "Deployment",
    "Difference",
    "ImageRef",
    "RolloutSnapshot",
    "RolloutState",
    "ScaleChange",
    "ServiceSnapshot",
    "TaskDefinitionChange",
    "TaskDefinitionRef",
    "describe_revision",
    "find_image",
    "follow_rollout",
    "image_digest",
    "image_tags",
    "image_with_tag",
    "newest_tags",
    "plan_revision",
    "register_revision",
    "repository_of",
    "resolve_revision",
    "rollback_target",
    "rollout",
    "scale",
    "service_snapshot",
    "update_service",
]
