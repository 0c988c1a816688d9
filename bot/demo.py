"""`menotime-bot demo`: the whole bot, offline — simulated AWS, SQLite in a temporary folder, and
the console standing in for Slack — with a guided tour of what on-call and developers do."""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from pydantic import SecretStr

from bot import iam
from bot.clock import Clock, FrozenClock, SystemClock
from bot.compose import build_core
from bot.config import Config, deep_merge, load_config
from bot.console import Console
from bot.core import Core
from bot.identity import StaticGroups
from bot.job import JobSpec
from bot.notify import ConsoleNotifier, Notifier
from bot.render import PACIFIC, when
from bot.settings import Settings
from bot.simulator import REPOSITORY, Simulator, autopilot, image_manifest

# Who is who in the demo: Slack user IDs as an operator would write them in MENOTIME_CONFIG.
DEVELOPER, ONCALL, RELEASE_MANAGER, OPERATOR, GUEST = (
    "U0DEMODEV",
    "U0DEMOONCALL",
    "U0DEMORM",
    "U0DEMOOPS",
    "U0DEMOGUEST",
)
OPS_GROUP = "S0DEMOOPS"

DEMO_ROLES = {
    "roles": {
        "developer": {"users": [DEVELOPER]},
        "oncall": {"users": [ONCALL]},
        "release_manager": {"users": [RELEASE_MANAGER]},
        "operations": {"groups": [OPS_GROUP]},
    }
}


def people() -> str:
    return (
        f"People: developer {DEVELOPER}, on-call {ONCALL}, release manager {RELEASE_MANAGER}, "
        f"operations (via user group {OPS_GROUP}) {OPERATOR}, no role {GUEST}."
    )


@dataclass(frozen=True)
class Step:
    """Say ``line`` as ``user``; ``{request}`` stands for the request id the previous answer offered."""

    title: str
    user: str
    line: str


@dataclass(frozen=True)
class Alarm:
    """CloudWatch moves alarm ``name`` to ``state`` and SNS delivers it to the bot; ``{alarm}`` in
    later steps stands for its thread id (what the Acknowledge button carries)."""

    title: str
    name: str
    state: str
    reason: str


@dataclass(frozen=True)
class Scene:
    """Something the demo does itself (seed data, run a job) before or instead of a typed line."""

    title: str
    run: Callable[[Core, Simulator, Console, TextIO], None]


@dataclass(frozen=True)
class Extension:
    """What the composition root adds to the tour: the scheduled jobs, configuration they need on
    the simulator, and the steps that show them (bot/ may not import jobs/)."""

    jobs: tuple[JobSpec, ...] = ()
    config_overrides: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[Core, Simulator], Callable[[], None] | None] | None = None  # may return a clean-up
    steps: tuple[Step | Wait | Alarm | Scene, ...] = ()


@dataclass(frozen=True)
class Wait:
    """Move the demo clock on (the change window and the 24 h soak are about time)."""

    title: str
    hours: float


def _ci_deploys_staging(core: Core, sim: Simulator, console: Console, out: TextIO) -> None:
    """MenoTime's CI/CD after a merge to main: straight through the AWS API, not through the bot."""
    from bot.simulator import deploy_as_ci

    arn = deploy_as_ci(sim.gateway(), core.config.env("staging"), tag="main", at=core.clock.now())
    out.write(
        f"  (CI/CD: registered {arn.rsplit('/', 1)[-1]} with the image `main` and updated "
        "menotime-staging-service; ECS rolled it out)\n"
    )


TOUR: tuple[Step | Wait | Alarm | Scene, ...] = (
    Step("Someone with no role asks for help: only help and whoami are open to them", GUEST, "help"),
    Step("…and is refused anything else, with the role that would allow it", GUEST, "status prod"),
    Step("A developer sees their roles and what they may do per environment", DEVELOPER, "whoami"),
    Step("On-call checks theirs", ONCALL, "whoami"),
    Step("Help shows each person only what they may use", DEVELOPER, "help"),
    Step("Details of one command", DEVELOPER, "help deploy"),
    Step("Status of dev", DEVELOPER, "status dev"),
    Step(
        "Status of prod: tasks, image, autoscaling bounds, database, the alarm in ALARM",
        ONCALL,
        "status prod",
    ),
    Step("All three environments in one answer", OPERATOR, "status all"),
    Step("A typo gets a suggestion", DEVELOPER, "stauts prod"),
    Step("An unknown environment gets the valid choices", DEVELOPER, "status prd"),
    Step(
        "A dev deploy runs at once; its rollout is followed in one message, edited in place",
        DEVELOPER,
        "deploy dev feature-login --reason 'try the login fix'",
    ),
    Step("A tag the environment does not take is refused, nothing changed", DEVELOPER, "deploy dev v1.5.0"),
    Step("Scaling dev within its bounds", DEVELOPER, "scale dev 2"),
    Step("…and beyond them", DEVELOPER, "scale dev 3"),
    Step(
        "Developers deploy staging through CI/CD, not the bot (the seed's access rules)",
        DEVELOPER,
        "deploy staging main",
    ),
    Scene(
        "A merge to main: CI/CD deploys `main` to staging itself, through the AWS API", _ci_deploys_staging
    ),
    Step(
        "The bot saw it: history shows CI/CD's deployment beside the bot's own changes",
        DEVELOPER,
        "history staging 3",
    ),
    Step(
        "`v1.6.0` is the same image as `main`: prod needs it to have soaked in staging for 24 h",
        RELEASE_MANAGER,
        "deploy prod v1.6.0",
    ),
    Wait("A day passes", 25),
    Step(
        "Soaked: the release manager asks, with this week's release count; prod needs a second person",
        RELEASE_MANAGER,
        "deploy prod v1.6.0 --reason 'release 1.6'",
    ),
    Step("Approving one's own request is refused, whoever you are", RELEASE_MANAGER, "approve {request}"),
    Step(
        "Operations approves; the deploy runs and is followed, then prod's alarms are watched for 30 min",
        OPERATOR,
        "approve {request}",
    ),
    Wait("Five minutes later", 5 / 60),
    Alarm(
        "Prod's 5xx alarm fires: its thread names the deployment before it and offers the rollback to the "
        "revision before that",
        "menotime-prod-api-5xx",
        "ALARM",
        "Threshold Crossed: 2 datapoints [58.0, 41.0] were greater than the threshold (10.0).",
    ),
    Step(
        "On-call takes it (the Acknowledge button stands for this line): noted in the thread",
        ONCALL,
        "ack {alarm}",
    ),
    Step("What is in ALARM now, with links to the threads", ONCALL, "alarms prod"),
    Step(
        "On-call rolls back (allowed any time): to the revision before v1.6.0, from → to shown first",
        ONCALL,
        "rollback prod --reason 'errors after v1.6.0'",
    ),
    Step("Confirmed: prod goes back to the revision that ran before", ONCALL, "confirm {request}"),
    Wait("Twenty minutes later", 1 / 3),
    Alarm(
        "The errors stop: OK is a reply in the thread, and the first message now says how long it lasted",
        "menotime-prod-api-5xx",
        "OK",
        "Threshold Crossed: 2 datapoints [0.0, 0.0] were not greater than the threshold (10.0).",
    ),
    Wait("It is Saturday now", 24 * 4),
    Step("Outside the change window prod deploys are refused", RELEASE_MANAGER, "deploy prod v1.5.0"),
    Step("On-call scales prod: the autoscaler's bounds move, after a confirmation", ONCALL, "scale prod 3"),
    Step("Confirmed", ONCALL, "confirm {request}"),
    Step("Status shows the last deployment, whoever made it", ONCALL, "status prod"),
    Step("History: every deployment and scaling of prod, by the bot and by others", ONCALL, "history prod 8"),
)


def _monday_morning(now: datetime) -> datetime:
    """The demo's clock starts on the latest Monday, 10:00 Pacific: inside prod's change window."""
    local = now.astimezone(PACIFIC)
    monday = (local - timedelta(days=local.weekday())).replace(hour=10, minute=0, second=0, microsecond=0)
    return monday.astimezone(UTC)


@contextmanager
def demo_core(
    workdir: Path,
    *,
    clock: Clock | None = None,
    notifier: Notifier | None = None,
    config_path: Path | None = None,
    extension: Extension | None = None,
) -> Iterator[tuple[Core, Simulator]]:
    """A core over a freshly seeded simulator and a new SQLite file in ``workdir``; the demo's
    people hold roles on top of whatever configuration is given."""
    extension = extension or Extension()
    config: Config = load_config(config_path, overrides=deep_merge(extension.config_overrides, DEMO_ROLES))
    # A key made for this demo only (its database is thrown away with it): the trail is keyed as in production.
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'menotime-ops.db'}",
        aws_region="us-west-1",
        audit_key=SecretStr(f"demo-only-{secrets.token_hex(24)}"),
    )
    clock = clock or SystemClock()
    with Simulator(region=settings.aws_region) as sim:
        sim.seed(config, at=clock.now() - timedelta(days=3))  # the platform at rest since last week
        # The release candidate: the image staging runs as `main`, tagged for prod.
        sim.gateway().call(
            "ecr",
            "put_image",
            repositoryName=REPOSITORY,
            imageTag="v1.6.0",
            imageManifest=image_manifest("main"),
        )
        core = build_core(
            settings,
            config=config,
            aws=sim.gateway(),
            groups=StaticGroups({OPS_GROUP: {OPERATOR}}),
            migrate_schema=True,
            clock=clock,
            notifier=notifier,
            run_background=lambda work: work(),  # rollouts followed in line, so the tour reads in order
            sleep=autopilot(
                region=settings.aws_region, envs=tuple(config.environments.values()), pause=0.0, clock=clock
            ),
            jobs=extension.jobs,
        )
        cleanup = None
        try:
            cleanup = extension.prepare(core, sim) if extension.prepare is not None else None
            yield core, sim
        finally:
            if cleanup is not None:
                cleanup()
            core.close()


def deliver_alarm(core: Core, sim: Simulator, *, name: str, state: str, reason: str) -> str:
    """What SNS does for a CloudWatch alarm: the notification lands in the inbox, and the inbox
    worker turns it into its thread. Returns the thread's id. CloudWatch's part is played through
    the simulator's gateway, so the bot's own records only the calls the bot makes."""
    from bot.alarms import process_inbox, short_id
    from bot.simulator import alarm_notification
    from bot.sns import SnsMessage
    from bot.store.inbox import Inbox

    now = core.clock.now()
    message = alarm_notification(sim.gateway(), name=name, state=state, reason=reason, at=now)
    arn = json.loads(message)["AlarmArn"]
    topic = f"arn:aws:sns:{arn.split(':')[3]}:{arn.split(':')[4]}:menotime-prod-alarms"
    envelope = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": message,
        "Subject": f'{state}: "{name}"',
        "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    Inbox(core.db).store(
        msg=SnsMessage(
            type="Notification",
            message_id=envelope["MessageId"],
            topic_arn=topic,
            subject=envelope["Subject"],
            message=message,
            timestamp=now,
            signature_version="2",
            signature="",
            signing_cert_url="",
            subscribe_url=None,
            token=None,
            raw=envelope,
        ),
        source="http",
        received_at=now,
    )
    process_inbox(core=core)
    return short_id(arn)


def run_demo(
    *,
    interactive: bool = False,
    out: TextIO | None = None,
    stdin: TextIO | None = None,
    extension: Extension | None = None,
) -> int:
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="menotime-demo-") as tmp:
        out.write(
            "MenoTime Ops demo — simulated AWS (moto), SQLite in a temporary folder, this console as Slack.\n"
        )
        out.write(f"{people()}\n\n")
        clock = FrozenClock(_monday_morning(datetime.now(UTC)))
        tour = TOUR + (extension.steps if extension else ())
        with demo_core(Path(tmp), clock=clock, notifier=ConsoleNotifier(out), extension=extension) as (
            core,
            sim,
        ):
            console = Console(core, user_id=DEVELOPER, out=out)
            request = alarm = ""
            for number, step in enumerate(tour, 1):
                out.write(f"── {number}. {step.title}\n")
                if isinstance(step, Wait):
                    moved = clock.advance(hours=step.hours)
                    out.write(f"  (demo clock: {when(moved)})\n")
                    continue
                if isinstance(step, Alarm):
                    alarm = deliver_alarm(core, sim, name=step.name, state=step.state, reason=step.reason)
                    continue
                if isinstance(step, Scene):
                    step.run(core, sim, console, out)
                    continue
                reply = console.handle(step.line.format(request=request, alarm=alarm), user_id=step.user)
                request = getattr(reply.result, "request_id", None) or request
            report = core.audit.verify()
            out.write(
                f"── {len(tour) + 1}. The audit chain verifies: {report.checked} events, "
                f"{'intact' if report.ok else 'BROKEN: ' + '; '.join(report.problems)}\n"
            )
            missing = _outside_policy(core)
            out.write(
                f"── {len(tour) + 2}. The bot's IAM policy (`menotime-bot iam-policy`) allows every AWS "
                f"action the tour used: {len(core.aws.iam_actions)} actions, "
                f"{'all allowed' if not missing else 'NOT ALLOWED: ' + ', '.join(missing)}\n\n"
            )
            if interactive:
                console.interact(stdin)
            out.write("Demo finished.\n")
            return 0 if report.ok and not missing else 1


def _outside_policy(core: Core) -> list[str]:
    """The actions the bot called that its policy, built from the declarations, does not allow."""
    policy = iam.policy_for(settings=core.settings, config=core.config, verbs=core.registry, jobs=core.jobs)
    return sorted(core.aws.iam_actions - iam.granted(policy))
