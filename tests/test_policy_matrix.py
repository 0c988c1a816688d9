"""The shipped permission matrix against DESIGN §5, cell by cell, and deny by default."""

from __future__ import annotations

import itertools

import pytest

from bot.config import ACTIONS, Role, load_config
from bot.identity import RoleResolver, StaticGroups
from bot.policy import Identity, Policy
from tests.conftest import DEV_GROUP, GROUP_MEMBER, NOBODY, PEOPLE, TEST_ROLES

EVERY = {r.value for r in Role}
ENVS = ("dev", "staging", "prod")

# DESIGN §5, transcribed by hand (not read from defaults.yaml, which is what is under test).
DESIGN_MATRIX: dict[str, dict[str, set[str]]] = {
    "status": dict.fromkeys(ENVS, EVERY),
    "history": dict.fromkeys(ENVS, EVERY),
    "alarms": dict.fromkeys(ENVS, EVERY),
    # Developers are read-only outside dev (they reach staging and prod through CI/CD).
    "deploy": {
        "dev": {"developer", "operations", "release_manager"},
        "staging": {"operations", "release_manager"},
        "prod": {"release_manager"},
    },
    "approve": {env: {"operations", "release_manager"} for env in ENVS},
    "rollback": {
        "dev": {"developer", "oncall", "operations", "release_manager"},
        "staging": {"oncall", "operations", "release_manager"},
        "prod": {"oncall", "operations", "release_manager"},
    },
    "scale": {
        "dev": {"developer", "oncall", "operations"},
        "staging": {"oncall", "operations"},
        "prod": {"oncall", "operations"},
    },
    # ack / snooze an alarm thread.
    "acknowledge": {
        "dev": {"developer", "oncall", "operations", "release_manager"},
        "staging": {"oncall", "operations", "release_manager"},
        "prod": {"oncall", "operations", "release_manager"},
    },
    "lock": {env: {"oncall", "operations", "release_manager"} for env in ENVS},
    "unlock": {env: {"oncall", "operations", "release_manager"} for env in ENVS},
    "jobs_run": {env: {"operations"} for env in ENVS},
    # DESIGN §5 (and §10.3): break-glass --emergency is the on-call role's.
    "emergency": {env: {"oncall"} for env in ENVS},
}


def test_design_matrix_covers_every_action() -> None:
    assert set(DESIGN_MATRIX) == set(ACTIONS)


@pytest.mark.parametrize(("role", "action", "env"), list(itertools.product(sorted(EVERY), ACTIONS, ENVS)))
def test_role_action_env(role: str, action: str, env: str) -> None:
    policy = Policy(load_config())
    decision = policy.decide(Identity("U0SOMEONE", frozenset({Role(role)})), action, env)
    expected = role == "admin" or role in DESIGN_MATRIX[action][env]
    assert decision.allowed is expected, f"{role} {action} {env}: {decision.rule}"
    assert decision.rule  # every decision names its rule
    if not expected:
        assert "admin" in decision.allowed_roles
        assert set(decision.allowed_roles) - {"admin"} == DESIGN_MATRIX[action][env] - {"admin"}


@pytest.mark.parametrize(("action", "env"), list(itertools.product(ACTIONS, ENVS)))
def test_no_role_is_denied_everything(action: str, env: str) -> None:
    decision = Policy(load_config()).decide(Identity(NOBODY, frozenset()), action, env)
    assert not decision.allowed
    assert decision.rule == "default-deny:no-role"


def test_denial_sentence_names_the_roles_that_would_allow_it() -> None:
    identity = Identity(PEOPLE["developer"], frozenset({Role.developer}))
    decision = Policy(load_config()).decide(identity, "scale", "prod")
    text = decision.explain(verb="scale", env="prod", identity=identity)
    assert "oncall" in text and "operations" in text and "you have developer" in text


def test_refusing_break_glass_says_it_is_on_calls_not_that_the_verb_is_missing() -> None:
    identity = Identity(PEOPLE["release_manager"], frozenset({Role.release_manager}))
    decision = Policy(load_config()).decide(identity, "emergency", "prod")
    assert not decision.allowed and decision.action == "emergency"
    text = decision.explain(verb="deploy", env="prod", identity=identity)
    assert text.startswith(
        "`--emergency` on prod is break-glass for on-call: it needs the role oncall or admin"
    )
    assert "you have release_manager" in text and "ask on-call" in text
    assert "`deploy`" not in text  # they may deploy prod; what they lack is the flag


def test_roles_come_from_user_ids_and_user_groups() -> None:
    config = load_config(overrides=TEST_ROLES)
    resolver = RoleResolver(config=config, groups=StaticGroups({DEV_GROUP: {GROUP_MEMBER}}))
    assert resolver.identity(PEOPLE["oncall"]).roles == {Role.oncall}
    assert resolver.identity(GROUP_MEMBER).roles == {Role.developer}
    assert resolver.identity(NOBODY).roles == frozenset()


class _CountingGroups:
    def __init__(self, members: dict[str, set[str]], fail: bool = False) -> None:
        self.members_of, self.calls, self.fail = members, 0, fail

    def members(self, group_id: str) -> frozenset[str]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("slack down")
        return frozenset(self.members_of.get(group_id, ()))


def test_group_membership_is_cached_for_the_ttl() -> None:
    now = [0.0]
    groups = _CountingGroups({DEV_GROUP: {GROUP_MEMBER}})
    resolver = RoleResolver(
        config=load_config(overrides=TEST_ROLES), groups=groups, ttl_seconds=60, monotonic=lambda: now[0]
    )
    for _ in range(5):
        assert Role.developer in resolver.identity(GROUP_MEMBER).roles
    assert groups.calls == 1
    now[0] = 61.0
    resolver.identity(GROUP_MEMBER)
    assert groups.calls == 2


def test_a_failing_group_lookup_denies_says_why_and_backs_off() -> None:
    now = [0.0]
    groups = _CountingGroups({}, fail=True)
    resolver = RoleResolver(config=load_config(overrides=TEST_ROLES), groups=groups, monotonic=lambda: now[0])
    identity = resolver.identity(GROUP_MEMBER)
    assert identity.roles == frozenset() and identity.unverified_groups == (DEV_GROUP,)
    decision = Policy(load_config(overrides=TEST_ROLES)).decide(identity, "status", "prod")
    assert not decision.allowed and decision.rule == "default-deny:groups-unverified"
    assert "could not check your Slack user groups" in decision.explain(
        verb="status", env="prod", identity=identity
    )
    for _ in range(5):
        resolver.identity(GROUP_MEMBER)
    assert groups.calls == 1  # a failing Slack is not asked again on every command
    now[0] = 31.0
    groups.fail = False
    groups.members_of = {DEV_GROUP: {GROUP_MEMBER}}
    assert resolver.identity(GROUP_MEMBER).roles == {Role.developer}
