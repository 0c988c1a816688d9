"""Roles of a Slack user: direct membership by user ID, and membership of Slack user groups.

Group members come from Slack (`usergroups.users.list`) and are cached for a TTL. If Slack cannot
answer, the members last seen keep serving for a while (a brief Slack hiccup must not lock on-call
out), but never a grant older than ``max_stale_seconds``: then the group counts as unknown for that
request (deny by default, the user is told why) and Slack is asked again next time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from bot.config import Config, Role
from bot.policy import Identity

log = structlog.get_logger(__name__)

FAILURE_BACKOFF_SECONDS = 30.0
_NO_SUCH_GROUP = frozenset({"no_such_subteam", "subteam_not_found"})


class GroupDirectory(Protocol):
    def members(self, group_id: str) -> frozenset[str]:
        """User IDs in the Slack user group; raises on failure."""
        ...


class StaticGroups:
    """Group membership given up front (console, demo, tests)."""

    def __init__(self, groups: Mapping[str, frozenset[str] | set[str] | list[str]] | None = None) -> None:
        self._groups = {k: frozenset(v) for k, v in (groups or {}).items()}

    def members(self, group_id: str) -> frozenset[str]:
        return self._groups.get(group_id, frozenset())


class SlackGroups:
    """Members of Slack user groups through the Web API (scope `usergroups:read`)."""

    def __init__(self, client: object) -> None:
        self._client = client

    def members(self, group_id: str) -> frozenset[str]:
        from slack_sdk.errors import SlackApiError

        try:
            response = self._client.usergroups_users_list(usergroup=group_id)  # type: ignore[attr-defined]
        except SlackApiError as exc:
            if exc.response.get("error") in _NO_SUCH_GROUP:
                return frozenset()  # a definite answer: nobody is in a group that does not exist
            raise
        return frozenset(response.get("users") or ())


class RoleResolver:
    def __init__(
        self,
        *,
        config: Config,
        groups: GroupDirectory,
        ttl_seconds: float = 300.0,
        max_stale_seconds: float = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._groups = groups
        self._ttl = ttl_seconds
        self._max_stale = max_stale_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._failures: dict[str, float] = {}
        self._lock = threading.Lock()

    def identity(self, user_id: str) -> Identity:
        roles: set[Role] = set()
        unknown: set[str] = set()
        for role, members in self._config.roles.items():
            if user_id in members.users:
                roles.add(role)
                continue
            for group in members.groups:
                found = self._members(group)
                if found is None:
                    unknown.add(group)
                elif user_id in found:
                    roles.add(role)
                    break
        return Identity(user_id=user_id, roles=frozenset(roles), unverified_groups=tuple(sorted(unknown)))

    def _members(self, group_id: str) -> frozenset[str] | None:
        """Members of the group, or None when Slack could not say (nor said recently)."""
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(group_id)
            failed_at = self._failures.get(group_id)
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        if failed_at is not None and now - failed_at < FAILURE_BACKOFF_SECONDS:
            # Slack failed a moment ago (often a 429): do not hammer it on every command.
            return self._last_seen(group_id, cached, now)
        try:
            members = self._groups.members(group_id)
        except Exception as exc:  # noqa: BLE001 - a failed look-up grants nothing; the user is told why
            log.warning("usergroup_lookup_failed", group=group_id, error=type(exc).__name__)
            with self._lock:
                self._failures[group_id] = now
            return self._last_seen(group_id, cached, now)
        with self._lock:
            self._cache[group_id] = (now, members)
            self._failures.pop(group_id, None)
        return members

    def _last_seen(
        self, group_id: str, cached: tuple[float, frozenset[str]] | None, now: float
    ) -> frozenset[str] | None:
        """While Slack cannot be asked: the members last seen, unless that answer is older than the
        bound; then it is dropped (fail closed: a removal Slack could not tell us about must not
        keep granting)."""
        if cached is None:
            return None
        if now - cached[0] <= self._max_stale:
            return cached[1]
        with self._lock:
            dropped = self._cache.get(group_id) is cached and self._cache.pop(group_id, None) is not None
        if dropped:
            log.warning(
                "usergroup_cache_dropped",
                group=group_id,
                age_seconds=int(now - cached[0]),
                max_stale_seconds=self._max_stale,
            )
        return None
