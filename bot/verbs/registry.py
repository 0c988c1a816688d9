"""Every `/menotime` verb, declared once: grammar, help, the policy action it needs, and what it runs.

`help`, `whoami`, the parser and the permission check all read these declarations.
"""

from __future__ import annotations

from bot import iam
from bot.commands import OPEN, REQUEST, Arg, Flag, Registry, Verb
from bot.verbs.alarms import _alarm_target, run_ack, run_alarms, run_snooze
from bot.verbs.changes import (
    _request_target,
    run_approve,
    run_cancel,
    run_confirm,
    run_deny,
    run_deploy,
    run_lock,
    run_rollback,
    run_scale,
    run_unlock,
)
from bot.verbs.jobs import _jobs_target, run_jobs
from bot.verbs.overview import (
    HISTORY_DEFAULT,
    HISTORY_MAX,
    run_cost,
    run_help,
    run_history,
    run_status,
    run_whoami,
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
