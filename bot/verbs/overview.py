"""The verbs that show where things stand: `help`, `whoami`, `status`, `history` and `cost`."""

from __future__ import annotations

from typing import Any

from bot import changes, watch
from bot.answers import (
    ChangeEntry,
    EnvPermissions,
    HelpResult,
    HistoryResult,
    VerbHelp,
    WhoamiResult,
)
from bot.commands import OPEN, Command, Verb
from bot.dispatch import CommandContext
from bot.errors import BadInput
from bot.status import DeploySummary, StatusResult, status

HISTORY_DEFAULT, HISTORY_MAX = 10, 50


def _verb_help(ctx: CommandContext, verb: Verb) -> VerbHelp | None:
    """How `verb` looks to this user, or None when they may not use it anywhere."""
    if verb.action == OPEN:
        envs: tuple[str, ...] = ()
    else:
        allowed = {
            e for action in verb.policy_actions for e in ctx.core.policy.permitted_envs(ctx.identity, action)
        }
        envs = tuple(e for e in ctx.core.config.env_names if e in allowed)
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
            raise BadInput(
                f"There is no command `{name[:40]}`. Type `/menotime help` to see the ones you can use."
            )
        detail = _verb_help(ctx, verb)
        if detail is None:
            roles = sorted(
                {
                    r
                    for e in ctx.core.config.env_names
                    for a in verb.policy_actions
                    for r in ctx.core.policy.roles_allowed(a, e)
                }
            )
            raise BadInput(f"`{verb.name}` needs the role {' or '.join(roles)}, which you do not have.")
    return HelpResult(verbs=visible, detail=detail, has_role=bool(ctx.identity.roles))


def run_whoami(ctx: CommandContext, cmd: Command) -> WhoamiResult:
    per_env = []
    for env in ctx.core.config.env_names:
        allowed = tuple(
            v.name
            for v in ctx.core.registry
            if v.action != OPEN
            and any(ctx.core.policy.decide(ctx.identity, a, env).allowed for a in v.policy_actions)
        )
        per_env.append(EnvPermissions(env=env, verbs=allowed))
    return WhoamiResult(user_id=ctx.user_id, roles=ctx.identity.role_names, per_env=tuple(per_env))


def _last_deploy(ctx: CommandContext, env: str) -> DeploySummary | None:
    last = ctx.core.stores.deploys.last(env)
    if last is None:
        return None
    return DeploySummary(
        who=None if last.external else last.requested_by,
        actor=watch.who(last) if last.external else None,
        image_tag=last.image_tag or "untagged",
        revision=last.to_revision,
        finished_at=last.finished_at or last.started_at,
        outcome=last.outcome,
        kind=last.kind,
    )


def _refresh(ctx: CommandContext, names: tuple[str, ...]) -> None:
    """The records follow what ECS shows, whoever changed it (best effort: AWS may not answer)."""
    for name in names:
        watch.refresh(ctx.core, ctx.core.config.env(name))


def run_status(ctx: CommandContext, cmd: Command) -> StatusResult:
    config = ctx.core.config
    names = ctx.envs
    _refresh(ctx, names)
    return status(
        envs=[config.env(n) for n in names],
        aws=ctx.core.aws,
        asked_by=ctx.user_id,
        at=ctx.core.clock.now(),
        last_deploys={n: _last_deploy(ctx, n) for n in names},
        notes={n: changes.env_notes(ctx, n) for n in names},
    )


def run_history(ctx: CommandContext, cmd: Command) -> HistoryResult:
    """What changed, newest first: deployments, rollbacks and scalings, the bot's and others'.
    Reads and refusals changed nothing, so they are not here; the audit export has every decision."""
    limit = cmd.args.get("n", HISTORY_DEFAULT)
    _refresh(ctx, ctx.envs)
    records = ctx.core.stores.deploys.changes(envs=ctx.envs, limit=limit)
    entries = tuple(
        ChangeEntry(
            at=r.started_at,
            env=r.env,
            kind=r.kind,
            what=watch.what(r),
            user=None if r.external else r.requested_by,
            actor=watch.who(r) if r.external else None,
            outcome=r.outcome,
            detail=r.detail,
        )
        for r in records
    )
    return HistoryResult(entries=entries, env=cmd.env, limit=limit)


COST_PERIODS = ("week", "month")


def run_cost(ctx: CommandContext, cmd: Command) -> Any:
    """The weekly digest's figures (default) or last month's report, for the environments asked about."""
    from bot.cost.reports import cost_digest, cost_report
    from bot.errors import BotError, ConfigError

    core = ctx.core
    period = (cmd.args.get("period") or "week").lower()
    if period not in COST_PERIODS:
        envs = ", ".join(f"`{e}`" for e in core.config.env_names)
        raise BadInput(
            f"`{period[:20]}` is neither a cost period nor an environment; choose `week` (the last 7 days "
            f"and the month so far) or `month` (last month), after an environment ({envs}) if you like."
        )
    build = cost_report if period == "month" else cost_digest
    try:
        return build(
            config=core.config, db=core.db, aws=core.aws, clock=core.clock, envs=ctx.envs, answer=True
        )
    except ConfigError as exc:
        raise BotError(
            f"The cost settings are wrong ({exc}); ask an operator to fix the configuration."
        ) from None
