"""The alarm verbs: `alarms` lists what is in ALARM; `ack` and `snooze` answer one alarm's thread."""

from __future__ import annotations

from typing import Any

from bot.answers import ChangeResult
from bot.commands import Command
from bot.dispatch import CommandContext
from bot.notify import MessageRef
from bot.render import when
from bot.rich import Link, Mention, Rich, join


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
            parts.append(Rich("acknowledged by ", Mention(thread.acknowledged_by)))
        if thread is not None and thread.snoozed_by and thread.snoozed(now):
            parts.append(
                Rich("snoozed by ", Mention(thread.snoozed_by), f" until {when(thread.snoozed_until)}")
            )
        if alarm.thread_state is not None:
            parts.append(f"(thread says {alarm.thread_state})")
        if alarm.cloudwatch_state not in (None, "ALARM"):
            parts.append(f"(CloudWatch: {alarm.cloudwatch_state})")
        line = join(" · ", parts)
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
        return Rich(Link(f"https://slack.com/archives/{ref.channel}/p{ref.ts.replace('.', '')}", "thread"))
    return f"thread in {ref.channel}"
