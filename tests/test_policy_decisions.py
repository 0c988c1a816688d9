"""The policy's decisions beyond the matrix cells: the rule each decision names (the audit trail records
it), env-less and open actions, who a refusal says could do it, and the refusal sentences word for word."""

from __future__ import annotations

import pytest

from bot.commands import OPEN
from bot.config import Role, load_config
from bot.policy import Identity, Policy

EVERY_ROLE = ("viewer", "developer", "qa", "oncall", "operations", "release_manager", "admin")


def person(*roles: Role, unverified: tuple[str, ...] = ()) -> Identity:
    return Identity("U0SOMEONE", frozenset(roles), unverified)


@pytest.fixture
def policy() -> Policy:
    return Policy(load_config())


# -- what is decided, and the rule named ----------------------------------------------------------


@pytest.mark.parametrize("env", ["prod", None])
def test_help_and_whoami_are_open_to_someone_without_any_role(policy: Policy, env: str | None) -> None:
    decision = policy.decide(person(), OPEN, env)
    assert decision.allowed
    assert decision.rule == "open:help-and-whoami"
    assert decision.action == OPEN


def test_an_admin_may_do_what_the_matrix_gives_nobody_else_and_the_rule_says_why(policy: Policy) -> None:
    decision = policy.decide(person(Role.developer, Role.admin), "deploy", "prod")
    assert decision.allowed
    assert decision.rule == "superuser:admin"
    assert decision.allowed_roles == ("release_manager", "admin")


def test_the_rule_names_the_first_allowing_role_in_declaration_order(policy: Policy) -> None:
    both = policy.decide(person(Role.release_manager, Role.operations), "deploy", "dev")
    assert (both.allowed, both.rule) == (True, "matrix:deploy/dev:operations")
    dev = policy.decide(person(Role.operations, Role.developer), "deploy", "dev")
    assert (dev.allowed, dev.rule, dev.action) == (True, "matrix:deploy/dev:developer", "deploy")


def test_a_denial_names_the_cell_and_who_would_be_allowed(policy: Policy) -> None:
    decision = policy.decide(person(Role.developer, Role.qa), "deploy", "prod")
    assert (decision.allowed, decision.rule) == (False, "matrix:deploy/prod")
    assert decision.allowed_roles == ("release_manager", "admin")
    assert decision.action == "deploy"


def test_no_role_and_unverified_groups_are_denied_with_their_own_rules(policy: Policy) -> None:
    nobody = policy.decide(person(), "status", "dev")
    assert (nobody.allowed, nobody.rule) == (False, "default-deny:no-role")
    assert nobody.allowed_roles == EVERY_ROLE
    unverified = policy.decide(person(unverified=("S0DEVS",)), "status", "dev")
    assert (unverified.allowed, unverified.rule) == (False, "default-deny:groups-unverified")


def test_roles_allowed_expands_any_role_and_always_adds_admin_once() -> None:
    config = load_config(overrides={"permissions": {"deploy": {"dev": ["admin", "developer"]}}})
    policy = Policy(config)
    assert policy.roles_allowed("status", "prod") == EVERY_ROLE  # "*" in the matrix
    assert policy.roles_allowed("deploy", "dev") == ("developer", "admin")  # admin named: not twice
    assert policy.roles_allowed("rollback", "prod") == ("oncall", "operations", "release_manager", "admin")
    # `all` is no environment of the matrix: only the superuser.
    assert policy.roles_allowed("acknowledge", "all") == ("admin",)


def test_an_empty_cell_leaves_only_admin() -> None:
    policy = Policy(load_config(overrides={"permissions": {"scale": {"prod": []}}}))
    oncall = policy.decide(person(Role.oncall), "scale", "prod")
    assert (oncall.allowed, oncall.allowed_roles) == (False, ("admin",))
    assert policy.decide(person(Role.admin), "scale", "prod").allowed


# -- actions used without an environment (e.g. `history` across environments) --------------------


def test_without_an_environment_it_is_allowed_where_the_user_may_act_somewhere(policy: Policy) -> None:
    history = policy.decide(person(Role.viewer), "history", None)
    assert (history.allowed, history.rule) == (True, "matrix:history/any-of:dev,staging,prod")
    deploy = policy.decide(person(Role.developer), "deploy", None)
    assert (deploy.allowed, deploy.rule, deploy.action) == (True, "matrix:deploy/any-of:dev", "deploy")


def test_without_an_environment_it_is_denied_if_the_user_may_act_nowhere(policy: Policy) -> None:
    decision = policy.decide(person(Role.developer), "jobs_run", None)
    assert (decision.allowed, decision.rule) == (False, "matrix:jobs_run/no-environment")
    assert decision.allowed_roles == ("admin", "operations")
    assert decision.action == "jobs_run"


def test_without_an_environment_no_role_or_unverified_groups_are_denied(policy: Policy) -> None:
    nobody = policy.decide(person(), "deploy", None)
    assert (nobody.allowed, nobody.rule) == (False, "default-deny:no-role")
    assert nobody.allowed_roles == ("admin", "developer", "operations", "release_manager")
    unverified = policy.decide(person(unverified=("S0DEVS",)), "deploy", None)
    assert (unverified.allowed, unverified.rule) == (False, "default-deny:groups-unverified")
    assert unverified.allowed_roles == nobody.allowed_roles


def test_permitted_envs_are_the_environments_the_user_may_act_on(policy: Policy) -> None:
    assert policy.permitted_envs(person(Role.developer), "deploy") == ("dev",)
    assert policy.permitted_envs(person(Role.oncall), "rollback") == ("dev", "staging", "prod")
    assert policy.permitted_envs(person(), "status") == ()


def test_role_names_are_sorted() -> None:
    assert person(Role.qa, Role.admin, Role.developer).role_names == ("admin", "developer", "qa")


# -- the refusal sentences ----------------------------------------------------------------------------


def refusal(policy: Policy, identity: Identity, action: str, env: str | None, verb: str) -> str:
    decision = policy.decide(identity, action, env)
    assert not decision.allowed
    return decision.explain(verb=verb, env=env, identity=identity)


def test_refusal_names_the_roles_that_may_and_the_roles_the_user_has(policy: Policy) -> None:
    assert refusal(policy, person(Role.developer), "scale", "prod", "scale") == (
        "`scale` on prod needs the role oncall, operations or admin; you have developer. "
        "Ask someone with that role, or an admin to add you."
    )
    assert refusal(policy, person(Role.viewer, Role.qa), "deploy", "prod", "deploy") == (
        "`deploy` on prod needs the role release_manager or admin; you have qa and viewer. "
        "Ask someone with that role, or an admin to add you."
    )


def test_refusal_without_an_environment_names_none(policy: Policy) -> None:
    assert refusal(policy, person(Role.developer), "jobs_run", None, "jobs run") == (
        "`jobs run` needs the role admin or operations; you have developer. "
        "Ask someone with that role, or an admin to add you."
    )


def test_refusal_of_all_environments_says_every_environment(policy: Policy) -> None:
    # `all` is decided environment by environment; the first refusal is explained for `all`.
    identity = person(Role.developer)
    decision = policy.decide(identity, "acknowledge", "staging")
    assert decision.explain(verb="alarms ack", env="all", identity=identity) == (
        "`alarms ack` on every environment needs the role oncall, operations, release_manager or admin; "
        "you have developer. Ask someone with that role, or an admin to add you."
    )


def test_refusal_of_someone_without_a_role_says_what_they_may_use(policy: Policy) -> None:
    assert refusal(policy, person(), "status", "prod", "status") == (
        "You have no MenoTime Ops role, so you may only use `help` and `whoami`. "
        "`status` on prod needs any MenoTime Ops role (viewer is enough); ask an admin to add you."
    )
    assert refusal(policy, person(), "deploy", "dev", "deploy") == (
        "You have no MenoTime Ops role, so you may only use `help` and `whoami`. "
        "`deploy` on dev needs the role developer, operations, release_manager or admin; "
        "ask an admin to add you."
    )


def test_refusal_when_slack_could_not_tell_the_groups_asks_to_retry(policy: Policy) -> None:
    assert refusal(policy, person(unverified=("S0DEVS",)), "deploy", "dev", "deploy") == (
        "I could not check your Slack user groups just now (Slack did not answer), so `deploy` on dev "
        "is refused for the moment; try again in a minute."
    )
    assert refusal(policy, person(unverified=("S0DEVS",)), "emergency", "prod", "deploy") == (
        "I could not check your Slack user groups just now (Slack did not answer), so `--emergency` on prod "
        "is refused for the moment; try again in a minute."
    )


def test_refusal_of_break_glass_is_about_the_flag(policy: Policy) -> None:
    assert refusal(policy, person(Role.release_manager, Role.qa), "emergency", "prod", "deploy") == (
        "`--emergency` on prod is break-glass for on-call: it needs the role oncall or admin; you have "
        "qa and release_manager. Deploy without it, inside the change window and after the soak, or ask "
        "on-call."
    )
    assert refusal(policy, person(), "emergency", "prod", "deploy") == (
        "You have no MenoTime Ops role, so you may only use `help` and `whoami`. "
        "`--emergency` on prod needs the role oncall or admin; ask an admin to add you."
    )
