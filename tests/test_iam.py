"""The bot's IAM policy is built from what each verb, job and worker declares, and covers every call.

Each verb runs against the simulator (moto's server) through the whole demo tour and the verbs the
tour does not reach; the actions the bot's gateway recorded for a command must be among those its
verb declares (a job run: the verb's and the job's). A declaration left out turns a test red.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from bot import iam
from bot.clock import FrozenClock
from bot.console import Console
from bot.core import Core
from bot.demo import (
    DEVELOPER,
    ONCALL,
    OPERATOR,
    RELEASE_MANAGER,
    TOUR,
    Alarm,
    Extension,
    Scene,
    Wait,
    _monday_morning,
    deliver_alarm,
    demo_core,
)
from bot.dispatch import Dispatcher
from bot.job import JobSpec
from bot.settings import Settings
from bot.simulator import Simulator
from handlers.cli import cli
from jobs import all_jobs

pytestmark = pytest.mark.xdist_group("iam")

# Lines for what the tour does not show; `{request}` and `{alarm}` are the latest the run has seen.
BEYOND_THE_TOUR: tuple[tuple[str, str], ...] = (
    (ONCALL, "ack {alarm}"),
    (ONCALL, "snooze {alarm} 30"),
    (ONCALL, "history prod"),
    (ONCALL, "alarms"),
    (DEVELOPER, "deploy dev develop --plan"),
    (DEVELOPER, "rollback dev --plan"),
    (DEVELOPER, "rollback dev"),
    (DEVELOPER, "scale dev 1"),
    (ONCALL, "rollback prod"),
    (ONCALL, "cancel {request}"),
    (RELEASE_MANAGER, "deploy staging main --reason iam"),
    (RELEASE_MANAGER, "deploy prod v1.6.0 --reason iam"),
    (OPERATOR, "deny {request} --reason not today"),
    (ONCALL, "lock prod database failover"),
    (ONCALL, "unlock prod"),
    (OPERATOR, "cost"),
    (OPERATOR, "cost prod month"),
    (OPERATOR, "jobs"),
    (OPERATOR, "jobs run dev-cleanup --dry-run"),
    (OPERATOR, "jobs run cost-digest"),
)


class Recorder:
    """Runs lines as their users and keeps, per verb, what the bot's gateway called."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.request = self.alarm = ""
        self.calls: list[tuple[str, frozenset[str], frozenset[str]]] = []  # line, recorded, declared

    def run(self, user: str, line: str) -> None:
        text = line.format(request=self.request, alarm=self.alarm)
        self.core.aws.iam_actions.clear()
        reply = Dispatcher(core=self.core).handle(user_id=user, text=text, source="test")
        self.request = getattr(reply.result, "request_id", None) or self.request
        self.calls.append((text, frozenset(self.core.aws.iam_actions), self._declared(text)))

    def _declared(self, text: str) -> frozenset[str]:
        words = text.split()
        verb = self.core.registry.get(words[0])
        if verb is None:
            return frozenset()  # a typo may call nothing
        actions = set(verb.iam_actions)
        if words[0] == "jobs" and len(words) > 2:
            actions |= set(_job(self.core.jobs, words[2]).iam_actions)
        return frozenset(actions)


def _job(jobs: tuple[JobSpec, ...], name: str) -> JobSpec:
    return next(job for job in jobs if job.name == name)


@pytest.fixture(scope="module")
def toured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Recorder, Core, Simulator]]:
    clock = FrozenClock(_monday_morning(datetime(2026, 11, 30, 18, 0, tzinfo=UTC)))
    with demo_core(tmp_path_factory.mktemp("iam"), clock=clock, extension=Extension(jobs=all_jobs())) as (
        core,
        sim,
    ):
        recorder = Recorder(core)
        for step in TOUR:
            if isinstance(step, Wait):
                clock.advance(hours=step.hours)
            elif isinstance(step, Alarm):
                recorder.alarm = deliver_alarm(
                    core, sim, name=step.name, state=step.state, reason=step.reason
                )
            elif isinstance(step, Scene):
                step.run(core, sim, Console(core, user_id=DEVELOPER, out=io.StringIO()), io.StringIO())
            else:
                recorder.run(step.user, step.line)
        for user, line in BEYOND_THE_TOUR:
            recorder.run(user, line)
        yield recorder, core, sim


def test_every_command_calls_only_what_its_verb_declares(toured: tuple[Recorder, Core, Simulator]) -> None:
    recorder, _core, _sim = toured
    undeclared = {line: sorted(recorded - declared) for line, recorded, declared in recorder.calls}
    assert {line: extra for line, extra in undeclared.items() if extra} == {}


def test_the_run_reached_every_verb_and_the_aws_it_declares(toured: tuple[Recorder, Core, Simulator]) -> None:
    """A verb no line ran proves nothing about its declaration; so does a run that called no AWS."""
    recorder, core, _sim = toured
    used = {line.split()[0] for line, _recorded, _declared in recorder.calls} & set(core.registry.names)
    assert used == set(core.registry.names)
    called = frozenset().union(*(recorded for _line, recorded, _declared in recorder.calls))
    # Every change action was really exercised, not only declared (iam:PassRole is implicit in AWS).
    assert set(iam.CHANGE) - {"iam:PassRole"} <= called, set(iam.CHANGE) - called
    assert set(iam.STATUS) <= called and {"ce:GetCostAndUsage"} <= called


def test_housekeeping_and_the_alarm_inbox_call_only_what_they_declare(
    toured: tuple[Recorder, Core, Simulator],
) -> None:
    from bot import watch
    from bot.changes import expire_requests, finish_orphaned_rollouts
    from bot.demo import deliver_alarm

    _recorder, core, sim = toured
    works = {work.name: set(work.iam_actions) for work in iam.BACKGROUND}
    core.aws.iam_actions.clear()
    expire_requests(core)
    watch.housekeep(core)
    finish_orphaned_rollouts(core, why="test")
    assert core.aws.iam_actions and core.aws.iam_actions <= works["housekeeping"]
    core.aws.iam_actions.clear()
    deliver_alarm(core, sim, name="menotime-prod-api-5xx", state="ALARM", reason="iam test")
    assert core.aws.iam_actions <= works["alarm inbox"]


def _policy(*args: str, settings: dict[str, str] | None = None) -> dict[str, object]:
    runner = CliRunner()
    result = runner.invoke(cli, ["iam-policy", *args], env=settings or {})
    assert result.exit_code == 0, result.output
    document: dict[str, object] = json.loads(result.output)
    return document


def test_the_printed_policy_allows_every_call_the_tour_made(toured: tuple[Recorder, Core, Simulator]) -> None:
    recorder, _core, _sim = toured
    called = frozenset().union(*(recorded for _line, recorded, _declared in recorder.calls))
    policy = _policy()
    assert policy["Version"] == "2012-10-17"
    assert called <= iam.granted(policy), sorted(called - iam.granted(policy))
    sids = [statement["Sid"] for statement in policy["Statement"]]  # type: ignore[attr-defined]
    assert len(sids) == len(set(sids))
    # Under IAM's managed-policy size limit (6,144 characters without white space).
    assert len(json.dumps(policy, separators=(",", ":"))) < 6144


def test_resources_are_scoped_to_menotimes_names() -> None:
    statements = _policy()["Statement"]
    by_action = {action: s for s in statements for action in s["Action"]}  # type: ignore[union-attr]
    assert by_action["ecs:UpdateService"]["Resource"] == [
        f"arn:aws:ecs:us-west-1:*:service/menotime-{env}-cluster/menotime-{env}-service"
        for env in ("dev", "prod", "staging")
    ]
    assert (
        by_action["cloudwatch:DescribeAlarms"]["Resource"][0]
        == "arn:aws:cloudwatch:us-west-1:*:alarm:menotime-dev-*"
    )
    assert by_action["iam:PassRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    assert by_action["ec2:DeleteVolume"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/Environment": ["dev", "staging", "prod"]}
    }
    # The staging refresh's two secrets, by name; no other secret.
    assert by_action["secretsmanager:GetSecretValue"]["Resource"] == [
        "arn:aws:secretsmanager:us-west-1:*:secret:menotime/staging/anonymization-salt-??????",
        "arn:aws:secretsmanager:us-west-1:*:secret:menotime/staging/database-master-??????",
    ]
    # Nothing configured, nothing granted: no queue, no bucket.
    assert not [a for a in by_action if a.startswith(("sqs:", "s3:"))]


def test_one_environment_gets_only_its_resources_and_its_jobs() -> None:
    statements = _policy("--env", "prod")["Statement"]
    text = json.dumps(statements)
    assert "menotime-prod" in text and "menotime-dev" not in text and "menotime-staging" not in text
    actions = {action for s in statements for action in s["Action"]}  # type: ignore[union-attr]
    # dev-cleanup's deletions and the staging refresh's restores are not prod's.
    assert not {"ecr:BatchDeleteImage", "ec2:DeleteVolume", "rds:RestoreDBInstanceFromDBSnapshot"} & actions
    assert {"ecs:UpdateService", "ce:GetCostAndUsage"} <= actions


def test_configured_queue_bucket_and_settings_secret_are_granted_by_name() -> None:
    settings = Settings(
        sns_queue_url="https://sqs.us-west-1.amazonaws.com/123456789012/menotime-alarms",
        audit_anchor_bucket="menotime-audit",
        secrets_manager_secret_id="menotime/ops/bot",
    )
    works = iam.works_of((), ())
    policy = iam.policy_document(works, iam.Scope.of(settings, ()))
    by_action = {action: s for s in policy["Statement"] for action in s["Action"]}  # type: ignore[attr-defined,union-attr]
    assert by_action["sqs:ReceiveMessage"]["Resource"] == "arn:aws:sqs:us-west-1:123456789012:menotime-alarms"
    assert by_action["s3:ListBucket"]["Resource"] == "arn:aws:s3:::menotime-audit"
    assert by_action["s3:PutObject"] is by_action["s3:GetObject"]
    assert (
        by_action["s3:PutObject"]["Resource"]
        == f"arn:aws:s3:::menotime-audit/{settings.audit_anchor_prefix}*"
    )
    assert by_action["secretsmanager:GetSecretValue"]["Resource"] == (
        "arn:aws:secretsmanager:us-west-1:*:secret:menotime/ops/bot-??????"
    )


def test_an_unknown_environment_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(cli, ["iam-policy", "--env", "prd"])
    assert result.exit_code == 2
    assert "prd is not an environment; choose dev, staging, prod." in result.output
    assert "{" not in result.output


def test_s3_listing_is_recorded_as_the_iam_action_aws_checks() -> None:
    from bot.aws import iam_action

    assert iam_action("s3", "ListObjectsV2") == "s3:ListBucket"
    assert iam_action("ecs", "UpdateService") == "ecs:UpdateService"
