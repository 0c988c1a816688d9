"""Every `/menotime` verb, declared once: grammar, help, the policy action it needs, and what it runs.

`help`, `whoami`, the parser and the permission check all read these declarations.
"""

from __future__ import annotations

from bot.commands import OPEN, Arg, Command, Registry, Verb
from bot.errors import BadInput
from bot.results import (
    EnvPermissions,
    HelpResult,
    HistoryResult,
    VerbHelp,
    WhoamiResult,
)
from bot.service import CommandContext
from bot.status import DeploySummary, StatusResult, status
from bot.store.deploys import DeployLog

HISTORY_DEFAULT, HISTORY_MAX = 10, 50


def _verb_help(ctx: CommandContext, verb: Verb) -> VerbHelp | None:
    """How `verb` looks to this user, or None when they may not use it anywhere."""
    if verb.action == OPEN:
        envs: tuple[str, ...] = ()
    else:
        envs = ctx.core.policy.permitted_envs(ctx.identity, verb.action)
        if not envs:
            return None
    return VerbHelp(
        name=verb.name,
        usage=verb.usage,
        summary=verb.summary,
        envs=envs,
        args=tuple(("env|all" if a.kind == "env_or_all" else a.name, a.help) for a in verb.args),
        flags=tuple((f"--{f.name}", f.help) for f in verb.flags),
        examples=verb.examples,
    )


def run_help(ctx: CommandContext, cmd: Command) -> HelpResult:
    visible = tuple(h for v in ctx.core.registry if (h := _verb_help(ctx, v)) is not None)
    detail = None
    if name := cmd.args.get("verb"):
        verb = ctx.core.registry.get(name.lower())
        if verb is None:
            raise BadInput(f"There is no command `{name[:40]}`. Type `/menotime help` to see the ones you can use.")
        detail = _verb_help(ctx, verb)
        if detail is None:
            roles = sorted({r for e in ctx.core.config.env_names for r in ctx.core.policy.roles_allowed(verb.action, e)})
            raise BadInput(f"`{verb.name}` needs the role {' or '.join(roles)}, which you do not have.")
    return HelpResult(verbs=visible, detail=detail, has_role=bool(ctx.identity.roles))


def run_whoami(ctx: CommandContext, cmd: Command) -> WhoamiResult:
    per_env = []
    for env in ctx.core.config.env_names:
        allowed = tuple(
            v.name for v in ctx.core.registry
            if v.action != OPEN and ctx.core.policy.decide(ctx.identity, v.action, env).allowed
        )
        per_env.append(EnvPermissions(env=env, verbs=allowed))
    return WhoamiResult(user_id=ctx.user_id, roles=ctx.identity.role_names, per_env=tuple(per_env))


def _last_deploy(ctx: CommandContext, env: str) -> DeploySummary | None:
    last = DeployLog(ctx.core.db).last(env)
    if last is None:
        return None
    return DeploySummary(who=last.requested_by, image_tag=last.image_tag, revision=last.to_revision,
                         finished_at=last.finished_at or last.started_at, outcome=last.outcome)


def run_status(ctx: CommandContext, cmd: Command) -> StatusResult:
    config = ctx.core.config
    names = ctx.envs
    return status(
        envs=[config.env(n) for n in names],
        aws=ctx.core.aws,
        asked_by=ctx.user_id,
        at=ctx.core.clock.now(),
        last_deploys={n: _last_deploy(ctx, n) for n in names},
    )


def run_history(ctx: CommandContext, cmd: Command) -> HistoryResult:
    limit = cmd.args.get("n", HISTORY_DEFAULT)
    every = ctx.core.config.env_names
    may_see_all = ctx.core.policy.permitted_envs(ctx.identity, "history") == every
    # Commands on `all` touch every environment: only someone who may see every history sees them.
    # Commands with no environment (help, typos) are only shown to the person who typed them.
    envs = (*ctx.envs, "all") if may_see_all else ctx.envs
    entries = ctx.core.audit.recent(envs=envs, limit=limit,
                                    envless_actor=ctx.user_id if cmd.env is None else None)
    return HistoryResult(entries=tuple(entries), env=cmd.env, limit=limit)


def build_registry() -> Registry:
    return Registry([
        Verb(
            name="help",
            summary="what you can do here, or how to use one command",
            action=OPEN,
            args=(Arg("verb", "word", "a command name", required=False),),
            run=run_help,
            examples=("/menotime help", "/menotime help status"),
        ),
        Verb(
            name="whoami",
            summary="your roles and what you may do in each environment",
            action=OPEN,
            run=run_whoami,
            examples=("/menotime whoami",),
        ),
        Verb(
            name="status",
            summary="tasks, image, rollout, scaling, database, alarms and last deploy",
            args=(Arg("env", "env_or_all", "an environment, or all of them (default: those you may see)",
                      required=False),),
            action="status",
            run=run_status,
            examples=("/menotime status prod", "/menotime status all"),
        ),
        Verb(
            name="history",
            summary="the audit trail, newest first",
            args=(
                Arg("env", "env", "an environment (default: all you may see)", required=False),
                Arg("n", "int", f"how many entries (default {HISTORY_DEFAULT})", required=False,
                    minimum=1, maximum=HISTORY_MAX),
            ),
            action="history",
            run=run_history,
            examples=("/menotime history prod", "/menotime history prod 20"),
        ),
    ])

