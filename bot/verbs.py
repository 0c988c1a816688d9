"""Every `/menotime` verb, declared once: grammar, help, the policy action it needs, and what it runs.

`help`, `whoami`, the parser and the permission check all read these declarations.
"""

from __future__ import annotations

from typing import Any

from bot import changes, iam, watch
from bot.commands import OPEN, REQUEST, Arg, Command, Flag, Registry, Verb
from bot.errors import BadInput
from bot.notify import MessageRef
from bot.render import when
from bot.results import (
    ChangeEntry,
    ChangeResult,
    EnvPermissions,
    HelpResult,
    HistoryResult,
    VerbHelp,
    WhoamiResult,
)
from bot.service import CommandContext
from bot.status import DeploySummary, StatusResult, status
from bot.store.changes import Requests
from bot.store.deploys import DeployLog

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
    last = DeployLog(ctx.core.db).last(env)
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
    records = DeployLog(ctx.core.db).changes(envs=ctx.envs, limit=limit)
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


def run_alarms(ctx: CommandContext, cmd: Command) -> ChangeResult:
    """Every alarm in ALARM in the environments asked, as CloudWatch and the bot's threads tell it
    (bot/alarms/listing.py): production-like environments first, the longest-standing first in each."""
    from bot.alarms import posted_ref
    from bot.alarms.listing import list_alarms
    from bot.render import plural

    listed = list_alarms(core=ctx.core, envs=ctx.envs, include_unrouted=cmd.env is None)
    where = cmd.env or "the environments you may see"
    notice = (
        (
            f"CloudWatch could not be read ({listed.cloudwatch_problem}): only the bot's own threads are "
            "listed, as it last heard them.",
        )
        if listed.cloudwatch_problem
        else ()
    )
    if not listed.alarms:
        if notice:
            return ChangeResult(
                headline=f"No alarm threads in ALARM for {where}; CloudWatch could not be read.",
                emoji=":warning:",
                details=notice,
                public=False,
            )
        return ChangeResult(
            headline=f"No alarms in ALARM for {where}.", emoji=":large_green_circle:", public=False
        )
    now = ctx.core.clock.now()
    lines: list[str] = []
    budget = 2800 - sum(len(n) + 1 for n in notice)  # the change template cuts the details at 2,900
    for alarm in listed.alarms:
        link = _thread_link(posted_ref(ctx.core, alarm.thread.ref)) if alarm.thread else "no thread yet"
        parts = [f"{alarm.env or 'unrouted'} · `{alarm.name}` since {when(alarm.since)}", link]
        thread = alarm.thread
        if thread is not None and thread.acknowledged_by:
            parts.append(f"acknowledged by <@{thread.acknowledged_by}>")
        if thread is not None and thread.snoozed_by and thread.snoozed(now):
            parts.append(f"snoozed by <@{thread.snoozed_by}> until {when(thread.snoozed_until)}")
        if alarm.thread_state is not None:
            parts.append(f"(thread says {alarm.thread_state})")
        if alarm.cloudwatch_state not in (None, "ALARM"):
            parts.append(f"(CloudWatch: {alarm.cloudwatch_state})")
        line = " · ".join(parts)
        # Slack cuts a section's text at 3,000 characters: stop while the count of the rest still shows.
        if len(line) + 1 > budget - 40:
            break
        lines.append(line)
        budget -= len(line) + 1
    more = (f"…and {len(listed.alarms) - len(lines)} more",) if len(lines) < len(listed.alarms) else ()
    return ChangeResult(
        headline=f"{plural(len(listed.alarms), 'alarm')} in ALARM for {where}",
        emoji=":red_circle:",
        details=(*notice, *lines, *more),
        public=False,
    )


def _alarm_target(core: Any, cmd: Command) -> tuple[str, str | None]:
    """ack and snooze (typed or as the thread's buttons) need `acknowledge` on the alarm's environment.

    An unrouted alarm (no environment could be told; it sits in the default channel) may be any
    environment's, prod's included, and snoozing it silences it: it needs `acknowledge` on every
    environment (decided as `all`), not on any one, so dev-only acknowledgers cannot quiet it."""
    from bot.alarms import thread_by_short_id

    return "acknowledge", thread_by_short_id(core, cmd.args["id"]).env or "all"


def run_ack(ctx: CommandContext, cmd: Command) -> ChangeResult:
    from bot.alarms import acknowledge

    view = acknowledge(ctx.core, short=cmd.args["id"], user=ctx.user_id)
    return ChangeResult(
        headline=f"You acknowledged `{view.title}`; it is noted in its thread.", emoji=":eyes:", public=False
    )


def run_snooze(ctx: CommandContext, cmd: Command) -> ChangeResult:
    from bot.alarms import snooze

    view = snooze(ctx.core, short=cmd.args["id"], user=ctx.user_id, minutes=cmd.args.get("minutes"))
    return ChangeResult(
        headline=f"You snoozed `{view.title}` until {when(view.snoozed_until)}; it is noted in its thread.",
        emoji=":zzz:",
        public=False,
    )


def _thread_link(ref: MessageRef | None) -> str:
    """A link to the thread where Slack gave the channel's ID; its name otherwise."""
    if ref is None:
        return "thread being posted"
    if ref.channel.startswith(("C", "G")) and ref.ts:
        return f"<https://slack.com/archives/{ref.channel}/p{ref.ts.replace('.', '')}|thread>"
    return f"thread in {ref.channel}"


def _request_target(core: Any, cmd: Command) -> tuple[str, str]:
    """confirm/cancel are decided as the change they run; approve/deny as `approve` on its env."""
    request = Requests(core.db).get(cmd.args["id"])
    if cmd.verb.name in ("approve", "deny"):
        return "approve", request.env
    # A break-glass request is confirmed under the same permission it was asked with.
    return ("emergency" if request.params.get("emergency") else request.action), request.env


def _env(cmd: Command) -> str:
    """The environment of a verb whose `env` argument is required: parsing refused a line without it."""
    assert cmd.env is not None
    return cmd.env


def run_deploy(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.ask_deploy(
        ctx,
        env_name=_env(cmd),
        tag=cmd.args["tag"],
        reason=cmd.flags.get("reason"),
        plan=bool(cmd.flags.get("plan")),
        emergency=cmd.flags.get("emergency"),
    )


def run_rollback(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.ask_rollback(
        ctx,
        env_name=_env(cmd),
        spec=cmd.args.get("target"),
        reason=cmd.flags.get("reason"),
        plan=bool(cmd.flags.get("plan")),
    )


def run_scale(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.ask_scale(
        ctx, env_name=_env(cmd), count=cmd.args["count"], plan=bool(cmd.flags.get("plan"))
    )


def run_confirm(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.confirm(ctx, request_id=cmd.args["id"])


def run_cancel(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.cancel(ctx, request_id=cmd.args["id"])


def run_approve(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.approve(ctx, request_id=cmd.args["id"])


def run_deny(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.deny(ctx, request_id=cmd.args["id"], reason=cmd.flags.get("reason"))


def run_lock(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.lock(ctx, env_name=_env(cmd), reason=cmd.args["reason"])


def run_unlock(ctx: CommandContext, cmd: Command) -> ChangeResult:
    return changes.unlock(ctx, env_name=_env(cmd))


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


def _jobs_target(core: Any, cmd: Command) -> tuple[str, str | None]:
    """Listing jobs is for every role (decided as `status`); running one needs `jobs_run` on its env."""
    from bot.scheduler import find_job

    sub, name = cmd.args.get("run"), cmd.args.get("job")
    if sub is None:
        if cmd.flags:
            raise BadInput("`--dry-run` and `--override` go with `/menotime jobs run <name>`.")
        return "status", None
    if sub.lower() != "run":
        raise BadInput(
            f"`jobs {sub[:40]}` is not a jobs command: `/menotime jobs` lists the jobs, "
            f"`/menotime jobs run <name>` runs one."
        )
    if not name:
        raise BadInput(
            f"`jobs run` needs a job name: {', '.join(f'`{s.name}`' for s in core.jobs) or 'none'}."
        )
    return "jobs_run", find_job(core.jobs, name).env


def run_jobs(ctx: CommandContext, cmd: Command) -> Any:
    from bot.scheduler import list_jobs, start_job

    if cmd.args.get("run") is None:
        return list_jobs(ctx.core)
    return start_job(
        ctx.core,
        name=cmd.args["job"],
        requested_by=ctx.user_id,
        dry_run=bool(cmd.flags.get("dry-run")),
        override=bool(cmd.flags.get("override")),
    )


_REASON = Flag("reason", "why, for the record", takes_value=True)
_PLAN = Flag("plan", "show what would change, change nothing")
_CHANGES = ("deploy", "rollback", "scale")
_REQUEST_ID = Arg("id", "word", "the request id, like REQ-7K3M9Q")


def build_registry() -> Registry:
    return Registry(
        [
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
                args=(
                    Arg(
                        "env",
                        "env_or_all",
                        "an environment, or all of them (default: those you may see)",
                        required=False,
                    ),
                ),
                action="status",
                run=run_status,
                iam_actions=iam.STATUS,
                examples=("/menotime status prod", "/menotime status all"),
            ),
            Verb(
                name="history",
                summary="what changed: deployments, rollbacks and scalings, by the bot and by others",
                args=(
                    Arg("env", "env", "an environment (default: all you may see)", required=False),
                    Arg(
                        "n",
                        "int",
                        f"how many entries (default {HISTORY_DEFAULT})",
                        required=False,
                        minimum=1,
                        maximum=HISTORY_MAX,
                    ),
                ),
                action="history",
                run=run_history,
                iam_actions=iam.OBSERVE,
                examples=("/menotime history prod", "/menotime history prod 20"),
            ),
            Verb(
                name="alarms",
                summary="alarms now in ALARM, in CloudWatch or in the bot's threads, with links",
                action="alarms",
                args=(Arg("env", "env", "an environment (default: those you may see)", required=False),),
                run=run_alarms,
                iam_actions=iam.ALARMS_READ,
                examples=("/menotime alarms", "/menotime alarms prod"),
            ),
            Verb(
                name="ack",
                summary="acknowledge an alarm (same as its Acknowledge button)",
                action=REQUEST,
                args=(Arg("id", "word", "the alarm thread's id, shown on its message"),),
                resolve=_alarm_target,
                shown_for=("acknowledge",),
                run=run_ack,
            ),
            Verb(
                name="snooze",
                summary="hold an alarm's reminders and replies for a while (same as its Snooze button)",
                action=REQUEST,
                args=(
                    Arg("id", "word", "the alarm thread's id, shown on its message"),
                    Arg(
                        "minutes",
                        "int",
                        "how long, in minutes (default: alarms.snooze_minutes)",
                        required=False,
                        minimum=1,
                        maximum=24 * 60,
                    ),
                ),
                resolve=_alarm_target,
                shown_for=("acknowledge",),
                run=run_snooze,
                examples=("/menotime snooze 3f9a2b1c4d5e", "/menotime snooze 3f9a2b1c4d5e 30"),
            ),
            Verb(
                name="deploy",
                summary="deploy an image tag (checked against ECR, the change window, the soak and approvals)",
                action="deploy",
                args=(Arg("env", "env", "the environment"), Arg("tag", "word", "the image tag, e.g. v1.2.3")),
                flags=(
                    _REASON,
                    _PLAN,
                    Flag(
                        "emergency",
                        "on call, break-glass: outside the window or soak; say why",
                        takes_value=True,
                    ),
                ),
                break_glass="emergency",
                run=run_deploy,
                iam_actions=iam.CHANGE,
                examples=(
                    "/menotime deploy dev develop",
                    '/menotime deploy prod v1.5.1 --reason "fix login"',
                    "/menotime deploy staging main --plan",
                ),
            ),
            Verb(
                name="rollback",
                summary="go back to the previous revision (or a given revision or version)",
                action="rollback",
                args=(
                    Arg("env", "env", "the environment"),
                    Arg(
                        "target",
                        "word",
                        "a revision number or version (default: what ran before)",
                        required=False,
                    ),
                ),
                flags=(_REASON, _PLAN),
                run=run_rollback,
                iam_actions=iam.CHANGE,
                examples=(
                    "/menotime rollback prod",
                    "/menotime rollback prod v1.4.2",
                    "/menotime rollback staging --plan",
                ),
            ),
            Verb(
                name="scale",
                summary="set the number of tasks (within the environment's bounds)",
                action="scale",
                args=(
                    Arg("env", "env", "the environment"),
                    # No bounds here: the environment's own (config `tasks`) answer with its range.
                    Arg("count", "int", "how many tasks"),
                ),
                flags=(_PLAN,),
                run=run_scale,
                iam_actions=iam.CHANGE,
                examples=("/menotime scale dev 2", "/menotime scale prod 3 --plan"),
            ),
            Verb(
                name="confirm",
                summary="run a change you asked for (same as its Confirm button)",
                action=REQUEST,
                args=(_REQUEST_ID,),
                resolve=_request_target,
                shown_for=_CHANGES,
                run=run_confirm,
                iam_actions=iam.CHANGE,
            ),
            Verb(
                name="cancel",
                summary="drop a change you asked for",
                action=REQUEST,
                args=(_REQUEST_ID,),
                resolve=_request_target,
                shown_for=_CHANGES,
                run=run_cancel,
            ),
            Verb(
                name="approve",
                summary="approve someone else's prod deploy (same as its Approve button)",
                action=REQUEST,
                args=(_REQUEST_ID,),
                resolve=_request_target,
                shown_for=("approve",),
                run=run_approve,
                iam_actions=iam.CHANGE,
            ),
            Verb(
                name="deny",
                summary="refuse someone else's prod deploy",
                action=REQUEST,
                args=(_REQUEST_ID,),
                flags=(_REASON,),
                resolve=_request_target,
                shown_for=("approve",),
                run=run_deny,
            ),
            Verb(
                name="lock",
                summary="freeze deploys and scaling of an environment (incident); rollback still works",
                action="lock",
                args=(Arg("env", "env", "the environment"), Arg("reason", "text", "why")),
                run=run_lock,
                examples=("/menotime lock prod database failover in progress",),
            ),
            Verb(
                name="unlock",
                summary="lift an environment's freeze",
                action="unlock",
                args=(Arg("env", "env", "the environment"),),
                run=run_unlock,
                examples=("/menotime unlock prod",),
            ),
            Verb(
                name="cost",
                summary="AWS cost against budget: the last 7 days and month so far, or last month",
                action="status",
                args=(
                    Arg("env", "env", "an environment (default: all you may see)", required=False),
                    Arg("period", "word", "`week` (default) or `month`", required=False),
                ),
                run=run_cost,
                iam_actions=iam.COST,
                examples=("/menotime cost", "/menotime cost prod month", "/menotime cost week"),
            ),
            Verb(
                name="jobs",
                summary="scheduled jobs: schedule, next and last run; run one now",
                action=REQUEST,
                args=(
                    Arg("run", "word", "`run` to start a job now", required=False),
                    Arg("job", "word", "the job to run, e.g. dev-cleanup", required=False),
                ),
                flags=(
                    Flag("dry-run", "change nothing; report what would be done"),
                    Flag("override", "go past the job's safety caps (dev-cleanup)"),
                ),
                resolve=_jobs_target,
                shown_for=("status", "jobs_run"),
                run=run_jobs,
                examples=("/menotime jobs", "/menotime jobs run dev-cleanup --dry-run"),
            ),
        ]
    )
