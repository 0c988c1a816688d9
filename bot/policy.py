"""Who may do what, where: roles from configuration, the permission matrix, deny by default.

Every decision names the rule that made it; that rule is what the audit trail records.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.commands import OPEN
from bot.config import ANY_ROLE, Config, Role

SUPERUSER = Role.admin


@dataclass(frozen=True)
class Identity:
    user_id: str
    roles: frozenset[Role]
    # User groups whose members Slack could not tell us just now: roles from them are missing.
    unverified_groups: tuple[str, ...] = ()

    @property
    def role_names(self) -> tuple[str, ...]:
        return tuple(sorted(r.value for r in self.roles))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str
    # Roles that would have allowed it (for denials: what to ask for).
    allowed_roles: tuple[str, ...] = ()
    # The matrix action decided (set by Policy.decide).
    action: str = ""

    def explain(self, *, verb: str, env: str | None, identity: Identity) -> str:
        """One sentence for a denied user: what was refused, why, and who could."""
        where = " on every environment" if env == "all" else f" on {env}" if env else ""
        # `--emergency` is a permission of its own: its refusal is about the flag, not the verb.
        verb = "--emergency" if self.action == "emergency" else verb
        if identity.unverified_groups:
            return (
                f"I could not check your Slack user groups just now (Slack did not answer), so `{verb}`{where} "
                "is refused for the moment; try again in a minute."
            )
        if not self.allowed_roles:
            return f"Nobody may use `{verb}`{where} under the current configuration."
        every = {r.value for r in Role} <= set(self.allowed_roles)
        roles = (
            "any MenoTime Ops role (viewer is enough)"
            if every
            else f"the role {_or_list(self.allowed_roles)}"
        )
        if not identity.roles:
            return (
                f"You have no MenoTime Ops role, so you may only use `help` and `whoami`. "
                f"`{verb}`{where} needs {roles}; ask an admin to add you."
            )
        if self.action == "emergency":
            return (
                f"`--emergency`{where} is break-glass for on-call: it needs {roles}; you have "
                f"{_or_list(identity.role_names, 'and')}. Deploy without it, inside the change window and after "
                "the soak, or ask on-call."
            )
        return (
            f"`{verb}`{where} needs {roles}; you have {_or_list(identity.role_names, 'and')}. "
            "Ask someone with that role, or an admin to add you."
        )


def _or_list(items: tuple[str, ...], joiner: str = "or") -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {joiner} " + items[-1]


class Policy:
    def __init__(self, config: Config) -> None:
        self._config = config

    def roles_allowed(self, action: str, env: str) -> tuple[str, ...]:
        """The roles the matrix names for (action, env), with ``*`` expanded; admin always included."""
        named = self._config.permissions.get(action, {}).get(env, ())
        if ANY_ROLE in named:
            return tuple(r.value for r in Role)
        roles = [r.value for r in Role if r.value in named]
        return tuple(roles) if SUPERUSER.value in roles else (*roles, SUPERUSER.value)

    def decide(self, identity: Identity, action: str, env: str | None) -> Decision:
        return replace(self._decide(identity, action, env), action=action)

    def _decide(self, identity: Identity, action: str, env: str | None) -> Decision:
        if action == OPEN:
            return Decision(True, "open:help-and-whoami")
        if env is None:
            # An env-less use of an env-scoped action (e.g. `history` across envs): allowed where
            # the user may act on at least one environment; the operation filters by env.
            envs = [e for e in self._config.env_names if self.decide(identity, action, e).allowed]
            if envs:
                return Decision(True, f"matrix:{action}/any-of:{','.join(envs)}")
            roles = sorted({r for e in self._config.env_names for r in self.roles_allowed(action, e)})
            if not identity.roles:
                rule = (
                    "default-deny:groups-unverified" if identity.unverified_groups else "default-deny:no-role"
                )
                return Decision(False, rule, tuple(roles))
            return Decision(False, f"matrix:{action}/no-environment", tuple(roles))
        allowed_roles = self.roles_allowed(action, env)
        if not identity.roles:
            rule = "default-deny:groups-unverified" if identity.unverified_groups else "default-deny:no-role"
            return Decision(False, rule, allowed_roles)
        if SUPERUSER in identity.roles:
            return Decision(True, f"superuser:{SUPERUSER.value}", allowed_roles)
        for role in Role:  # declaration order, so the rule named is stable
            if role in identity.roles and role.value in allowed_roles:
                return Decision(True, f"matrix:{action}/{env}:{role.value}", allowed_roles)
        return Decision(False, f"matrix:{action}/{env}", allowed_roles)

    def permitted_envs(self, identity: Identity, action: str) -> tuple[str, ...]:
        return tuple(e for e in self._config.env_names if self.decide(identity, action, e).allowed)
