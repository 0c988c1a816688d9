"""Which environment an event belongs to, and so the channel it is posted in."""

from __future__ import annotations

import re

from bot.config import Config, EnvironmentConfig
from bot.events.event import Event


def route(event: Event, config: Config, *, topic_arn: str | None = None) -> tuple[str | None, str]:
    """(environment name or None, channel) for ``event``: by a topic configured for an environment
    (``alarm_topics``), by alarm name prefix, by resource name (cluster, service, DB instance: exact
    or ``<name>-``-prefixed), then by the topic's name (``menotime-<env>``). The channel is the
    env's alerts channel, else the default alerts one."""
    env = (
        _env_by_configured_topic(topic_arn, config)
        or _env_by_alarm_prefix(event, config)
        or _env_by_resource(event, config)
        or _env_by_topic(topic_arn, config)
    )
    if env is None:
        return None, config.channels.default_alerts
    return env.name, env.alerts_channel or config.channels.default_alerts


def _env_by_configured_topic(topic_arn: str | None, config: Config) -> EnvironmentConfig | None:
    return next((e for e in config.environments.values() if topic_arn and topic_arn in e.alarm_topics), None)


def _env_by_alarm_prefix(event: Event, config: Config) -> EnvironmentConfig | None:
    if event.kind != "alarm" or not event.resource:
        return None
    hits = [e for e in config.environments.values() if event.resource.startswith(e.alarm_name_prefix)]
    return max(hits, key=lambda e: len(e.alarm_name_prefix), default=None)


def _env_by_resource(event: Event, config: Config) -> EnvironmentConfig | None:
    names = set(event.names)
    for part in (event.cluster, event.service):
        if part:
            names.add(part)
    best: tuple[int, EnvironmentConfig] | None = None
    for env in config.environments.values():
        for known in (env.cluster, env.service, env.rds_instance):
            for name in names:
                matches = name == known or name.startswith(f"{known}-")
                if matches and (best is None or len(known) > best[0]):
                    best = (len(known), env)
    return best[1] if best else None


def _env_by_topic(topic_arn: str | None, config: Config) -> EnvironmentConfig | None:
    if not topic_arn:
        return None
    topic = topic_arn.rsplit(":", 1)[-1]
    hits = [
        e
        for e in config.environments.values()
        if re.search(rf"menotime-{re.escape(e.name)}(?![a-z0-9])", topic)
    ]
    return max(hits, key=lambda e: len(e.name), default=None)
