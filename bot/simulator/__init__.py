"""The embedded AWS simulator: moto's server in a thread, seeded with MenoTime's environments.

``menotime-bot demo``, ``console --simulate`` and the end-to-end tests run the bot against it, so
everything the bot does goes through real boto3 calls over HTTP. The seed follows the environments
specification: one ECR repository, and per environment a cluster, a task-definition family with a
few revisions, the service, its scaling target (where autoscaled), the RDS instance and alarms.

moto's ECS never advances a deployment (a new service stays ``IN_PROGRESS`` with no running task
forever), so :func:`set_rollout` moves the in-process simulated service the way ECS would. Nothing
else here reaches into moto's internals.
"""

from bot.simulator.alarm_notifications import alarm_notification
from bot.simulator.images import REPOSITORY, image_manifest
from bot.simulator.rollouts import RolloutState, advance_rollouts, autopilot, deploy_as_ci, set_rollout
from bot.simulator.seed import APP_CONTAINER, SIDECAR_CONTAINER, SeededEnv, SeedReport, seed_environments
from bot.simulator.server import DEFAULT_REGION, Simulator

__all__ = [
    "APP_CONTAINER",
    "DEFAULT_REGION",
    "REPOSITORY",
    "SIDECAR_CONTAINER",
    "RolloutState",
    "SeedReport",
    "SeededEnv",
    "Simulator",
    "advance_rollouts",
    "alarm_notification",
    "autopilot",
    "deploy_as_ci",
    "image_manifest",
    "seed_environments",
    "set_rollout",
]
