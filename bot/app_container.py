"""Which container of a task definition is the application's: one rule for status and deploys.

`app_container` when the environment names one; otherwise the only essential container (ECS treats a
container without "essential" as essential). Several essential containers, or none, is a question
for the operator, never a guess: a deploy would change the wrong image, a status would show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.config import EnvironmentConfig
from bot.errors import BadInput


def app_container(taskdef: Mapping[str, Any], env: EnvironmentConfig) -> dict[str, Any]:
    containers: list[dict[str, Any]] = list(taskdef.get("containerDefinitions") or [])
    names = ", ".join(str(c.get("name")) for c in containers)
    label = f"{taskdef.get('family')}:{taskdef.get('revision')}"
    if env.app_container is not None:
        for container in containers:
            if container.get("name") == env.app_container:
                return container
        raise BadInput(
            f"{label} has no container named {env.app_container}; set app_container for {env.name} "
            f"to one of: {names}."
        )
    # ECS treats a container without "essential" as essential.
    essential = [c for c in containers if c.get("essential", True)]
    if len(essential) == 1:
        return essential[0]
    if not essential:
        raise BadInput(
            f"{label} has no essential container; set app_container for {env.name} to one of: {names}."
        )
    several = ", ".join(str(c.get("name")) for c in essential)
    raise BadInput(
        f"{label} has several essential containers ({several}); set app_container for {env.name} "
        "to the one deploys should change."
    )


def app_container_or_none(taskdef: Mapping[str, Any], env: EnvironmentConfig) -> dict[str, Any] | None:
    try:
        return app_container(taskdef, env)
    except BadInput:
        return None
