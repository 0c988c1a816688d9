"""What `/menotime alarms` lists: every alarm in ALARM, as CloudWatch and the bot's threads tell it.

CloudWatch is read as `status` reads it (DescribeAlarms, StateValue=ALARM, metric and composite
alarms, by each environment's alarm-name prefix), plus once per topic an environment claims in
``alarm_topics`` (ActionPrefix), so a policy that scopes DescribeAlarms to the bot's alarms still
works. Each alarm is given the environment the alarm path would route it to: a claimed topic among
its AlarmActions, else the longest matching alarm-name prefix. The bot's own threads in ALARM
(:func:`bot.alarms.lookup.open_alarms`) are merged in by AlarmArn, else by alarm name:

- an alarm in ALARM without a thread is listed, with no thread (its notification never arrived);
- a thread in ALARM that CloudWatch no longer shows in ALARM is still listed, with the state
  CloudWatch gives now (the OK notification may not have arrived yet);
- when CloudWatch cannot be read, the threads are listed alone and ``cloudwatch_problem`` says so.

`status` counts an environment's alarms by its name prefix alone (bot/status/aws_reads.py). Both count the
same CloudWatch alarms unless an environment claims topics: then an alarm notifying such a topic is
that environment's here whatever its name (as its thread is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bot.alarms.lookup import open_alarms, thread_for
from bot.aws import AwsGateway, error_code
from bot.config import Config
from bot.errors import AwsUnavailable
from bot.render import as_written
from bot.status import describe_alarms
from bot.store.alarm_threads import AlarmThreadView

if TYPE_CHECKING:
    from bot.core import Core

_NAMES_PER_CALL = 100  # DescribeAlarms takes at most 100 AlarmNames
_MAX_NAME = 255
# The stricter the deploy gate, the more production-like the environment (see env_order).
_GATE_RANK = {"two_person": 0, "roles": 1, "none": 2}
MISSING = "no such alarm"  # a thread's alarm CloudWatch does not know (deleted, renamed, other region)
UNKNOWN = "not in ALARM, state unreadable"  # not among those in ALARM; reading it by name was refused


@dataclass(frozen=True)
class CloudWatchAlarm:
    arn: str
    name: str
    env: str | None  # None: no environment claims it (by topic or by name prefix)
    state: str  # StateValue
    since: datetime  # when it entered its state, UTC


@dataclass(frozen=True)
class ListedAlarm:
    env: str | None  # None: an unrouted thread
    name: str
    arn: str | None  # None when only the thread is known and its key is no AlarmArn
    since: datetime | None
    thread: AlarmThreadView | None  # None: no thread yet
    cloudwatch_state: str | None  # ALARM, OK, INSUFFICIENT_DATA, MISSING, UNKNOWN; None: CloudWatch not read
    thread_state: str | None = None  # of a thread that is not in ALARM while CloudWatch is (a missed ALARM)


@dataclass(frozen=True)
class AlarmList:
    alarms: tuple[ListedAlarm, ...]  # in env_order, oldest first within an environment; unrouted last
    cloudwatch_problem: str | None = None  # CloudWatch could not be read: ``alarms`` are the threads alone


def list_alarms(*, core: Core, envs: Sequence[str], include_unrouted: bool) -> AlarmList:
    """The alarms in ALARM in ``envs`` (and, with ``include_unrouted``, the threads without an
    environment), from CloudWatch and the bot's threads together."""
    wanted = set(envs)
    threads = [t for t in open_alarms(core) if t.env in wanted or (t.env is None and include_unrouted)]
    try:
        in_alarm = cloudwatch_in_alarm(aws=core.aws, config=core.config, envs=envs)
    except (AwsUnavailable, ClientError) as exc:
        return AlarmList(
            alarms=_sorted(_thread_only(threads), config=core.config), cloudwatch_problem=_problem(exc)
        )
    stale = [t for t in threads if _find(t, in_alarm) is None]
    current: tuple[CloudWatchAlarm, ...] | None = ()
    if stale:
        try:
            current = cloudwatch_alarms(
                aws=core.aws, config=core.config, names=[as_written(t.title) for t in stale]
            )
        except (AwsUnavailable, ClientError):
            current = (
                None  # e.g. a policy that allows reading only the bot's own alarms: those threads say so
            )
    listed = merge(threads=threads, in_alarm=in_alarm, current=current, envs=wanted)
    # An alarm in ALARM whose thread is not (its ALARM notification went missing) still has a thread.
    listed = [
        _with_known_thread(a, thread_for(core, a.arn) if a.thread is None and a.arn else None) for a in listed
    ]
    return AlarmList(alarms=_sorted(listed, config=core.config))


def cloudwatch_in_alarm(
    *, aws: AwsGateway, config: Config, envs: Sequence[str]
) -> tuple[CloudWatchAlarm, ...]:
    """The alarms CloudWatch has in ALARM, metric and composite, that may belong to ``envs`` (by
    name prefix or claimed topic), each with its environment; once each, in the order read."""
    queries: dict[tuple[str, str], None] = {}  # the same prefix or topic is read once
    for name in envs:
        env = config.env(name)
        queries[("AlarmNamePrefix", env.alarm_name_prefix)] = None
        queries.update(dict.fromkeys(("ActionPrefix", topic) for topic in env.alarm_topics))
    found: dict[str, CloudWatchAlarm] = {}
    for key, value in queries:
        for alarm in _describe(aws=aws, config=config, StateValue="ALARM", **{key: value}):
            # moto ignores StateValue beside a prefix; AWS applies both. Filtering again is cheap.
            if alarm.state == "ALARM":
                found.setdefault(alarm.arn or alarm.name, alarm)
    return tuple(found.values())


def cloudwatch_alarms(
    *, aws: AwsGateway, config: Config, names: Iterable[str]
) -> tuple[CloudWatchAlarm, ...]:
    """The alarms named ``names`` (in whatever state); names CloudWatch does not know are left out."""
    # A thread's title is the AlarmName of its notification; one longer than AWS allows is no alarm's.
    unique = [n for n in dict.fromkeys(names) if 0 < len(n) <= _MAX_NAME]
    found: list[CloudWatchAlarm] = []
    for start in range(0, len(unique), _NAMES_PER_CALL):
        found.extend(_describe(aws=aws, config=config, AlarmNames=unique[start : start + _NAMES_PER_CALL]))
    return tuple(found)


def alarm_env(*, alarm: Mapping[str, Any], config: Config) -> str | None:
    """The environment an alarm belongs to, as the alarm path routes its notifications: a topic
    the environment claims among its AlarmActions, else the longest alarm-name prefix."""
    actions = set(alarm.get("AlarmActions") or ())
    for env in config.environments.values():
        if actions & set(env.alarm_topics):
            return env.name
    name = str(alarm.get("AlarmName", ""))
    hits = [e for e in config.environments.values() if name.startswith(e.alarm_name_prefix)]
    return max(hits, key=lambda e: len(e.alarm_name_prefix)).name if hits else None


def env_order(*, config: Config) -> tuple[str, ...]:
    """Production-like environments first: by deploy gate, strictest first (prod's two-person
    approval, then staging's roles, then dev's none); environments with the same gate are taken in
    reverse of the configuration's order, which lists them from dev towards prod."""
    names = config.env_names
    return tuple(
        sorted(
            names, key=lambda n: (_GATE_RANK.get(config.env(n).deploy_gate, len(_GATE_RANK)), -names.index(n))
        )
    )


def merge(
    *,
    threads: Sequence[AlarmThreadView],
    in_alarm: Sequence[CloudWatchAlarm],
    current: Sequence[CloudWatchAlarm] | None,
    envs: set[str],
) -> list[ListedAlarm]:
    """CloudWatch's alarms in ALARM in ``envs`` and ``threads``, one entry per alarm: a thread is
    matched by AlarmArn, else by name; ``current`` is CloudWatch's state of the threads' alarms
    that it does not have in ALARM (None: that could not be read)."""
    listed: list[ListedAlarm] = []
    matched: set[str] = set()  # CloudWatch alarms (by ARN, else name) that found their thread
    for thread in threads:
        alarm = _find(thread, in_alarm)
        if alarm is not None:
            matched.add(alarm.arn or alarm.name)
            listed.append(
                ListedAlarm(
                    env=thread.env or alarm.env,
                    name=thread.title,
                    arn=alarm.arn,
                    since=alarm.since,
                    thread=thread,
                    cloudwatch_state="ALARM",
                )
            )
        else:
            now = _find(thread, current) if current is not None else None
            state = now.state if now else MISSING if current is not None else UNKNOWN
            listed.append(
                ListedAlarm(
                    env=thread.env or (now.env if now else None),
                    name=thread.title,
                    arn=now.arn if now else None,
                    since=thread.alarm_since or thread.since,
                    thread=thread,
                    cloudwatch_state=state,
                )
            )
    for alarm in in_alarm:
        if (alarm.arn or alarm.name) not in matched and alarm.env in envs:
            listed.append(
                ListedAlarm(
                    env=alarm.env,
                    name=alarm.name,
                    arn=alarm.arn,
                    since=alarm.since,
                    thread=None,
                    cloudwatch_state="ALARM",
                )
            )
    # A thread moved to an environment by CloudWatch's routing must still be one the user may see.
    return [a for a in listed if a.env in envs or (a.env is None and a.thread is not None)]


# ---------------------------------------------------------------------------------------- helpers


def _describe(*, aws: AwsGateway, config: Config, **filters: Any) -> list[CloudWatchAlarm]:
    found = describe_alarms(aws=aws, **filters)
    return [
        CloudWatchAlarm(
            arn=str(a.get("AlarmArn") or ""),
            name=str(a["AlarmName"]),
            env=alarm_env(alarm=a, config=config),
            state=str(a.get("StateValue", "")),
            # A composite alarm's StateUpdatedTimestamp moves with every update, its state or not.
            since=_utc(a.get("StateTransitionedTimestamp") or a.get("StateUpdatedTimestamp")),
        )
        for a in found
    ]


def _find(thread: AlarmThreadView, alarms: Sequence[CloudWatchAlarm]) -> CloudWatchAlarm | None:
    """The CloudWatch alarm of ``thread``: its key is the AlarmArn (unless the notification had
    none, or the ARN was too long to be a key), and its title the alarm name."""
    return next((a for a in alarms if a.arn and a.arn == thread.key), None) or next(
        (a for a in alarms if a.name == thread.title), None
    )


def _problem(exc: AwsUnavailable | ClientError) -> str:
    if isinstance(exc, AwsUnavailable):
        return "AWS did not answer"
    # Only the error code: AWS's own message text may carry ARNs and account details.
    return f"AWS answered {error_code(exc) or 'an error'}"


def _thread_only(threads: Sequence[AlarmThreadView]) -> list[ListedAlarm]:
    return [
        ListedAlarm(
            env=t.env, name=t.title, arn=None, since=t.alarm_since or t.since, thread=t, cloudwatch_state=None
        )
        for t in threads
    ]


def _with_known_thread(alarm: ListedAlarm, thread: AlarmThreadView | None) -> ListedAlarm:
    # Not a thread in an environment other than the alarm's: the user may not be allowed to see it.
    if alarm.thread is not None or thread is None or thread.env not in (alarm.env, None):
        return alarm
    return replace(
        alarm, thread=thread, thread_state=None if thread.state == "ALARM" else thread.state or "unknown"
    )


def _sorted(alarms: Iterable[ListedAlarm], *, config: Config) -> tuple[ListedAlarm, ...]:
    rank = {name: i for i, name in enumerate(env_order(config=config))}
    oldest = datetime.min.replace(tzinfo=UTC)
    return tuple(
        sorted(
            alarms, key=lambda a: (a.env is None, rank.get(a.env or "", len(rank)), a.since or oldest, a.name)
        )
    )


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.fromtimestamp(0, UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
