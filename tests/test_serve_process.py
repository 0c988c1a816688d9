"""The Done-when, through the real entry point: `menotime-bot serve` as its own process, pointed
at moto's server and a fake Slack, answers a signed `/menotime status prod` at the response_url
within 3 seconds, and logs it as one JSON line with the request id."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.fakes.fixture_files import FIXTURES as SHARED_FIXTURES
from bot.fakes.served import serve_process
from bot.fakes.slack_api import FakeSlack
from bot.fakes.slack_signing import sign, slash_command_body
from bot.simulator import Simulator
from tests.conftest import PEOPLE
from tests.harness import wait_until

SECRET = "serve-process-signing-secret"


ROLES_YAML = "roles:\n" + "".join(f"  {role}: {{users: [{user}]}}\n" for role, user in PEOPLE.items())


def _serve(
    tmp_path: Path, extra_config: str, holder: list | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, FakeSlack, Path]]:
    """`serve` as its own process (bot/fakes/served.py) with these tests' roles and signing secret, as
    a generator a test can stop where it wants; ``holder`` receives the simulator."""
    with serve_process(tmp_path, ROLES_YAML + extra_config, secret=SECRET, env=extra_env) as served:
        if holder is not None:
            holder.append(served.simulator)
        yield served.base, served.slack, served.log


def test_signed_status_prod_is_answered_within_three_seconds(tmp_path: Path) -> None:
    with closing(_serve(tmp_path, "")) as serve:
        base, slack, log_path = next(serve)
        body = slash_command_body(
            text="status prod", user_id=PEOPLE["oncall"], response_url=slack.response_url("e2e")
        )
        sent = time.monotonic()
        response = httpx.post(f"{base}/slack/events", content=body, headers=sign(body, SECRET), timeout=5)
        assert response.status_code == 200
        [call] = slack.wait_for("response", timeout=3.0)
        assert time.monotonic() - sent < 3.0
        answer = call.params
        assert answer["response_type"] == "in_channel"
        assert "v1.5.0" in json.dumps(answer) and "menotime-backend-prod:3" in json.dumps(answer)

        forged = httpx.post(f"{base}/slack/events", content=body, headers=sign(body, "wrong"), timeout=5)
        assert forged.status_code == 401
    # serve has stopped (SIGTERM, waited for): the work of every request it let in has finished on
    # the way out, and every line it wrote is in the file.
    assert len(slack.calls_to("response")) == 1  # the forged copy was answered by no one
    # Every line the process wrote is JSON, the libraries' (uvicorn, Bolt) included.
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert "shutdown_complete" in [line.get("event") for line in lines]
    [command] = [line for line in lines if line.get("event") == "command"]
    assert command["verb"] == "status" and command["env"] == "prod" and command["outcome"] == "ok"
    assert command["user"] == PEOPLE["oncall"] and command["request_id"] and "latency_ms" in command
    assert "xoxb-serve-test" not in log_path.read_text() and SECRET not in log_path.read_text()
    # No SNS_TOPIC_ARNS and no environment's alarm_topics: start-up says the alarm path is closed.
    [closed] = [line for line in lines if line.get("event") == "sns_alarm_path_closed"]
    assert "SNS_TOPIC_ARNS" in closed["detail"]


# -------------------------------------------------------------------------------------------
# Issue 3's Done-when, through `serve` against moto's server

NOT_TODAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@pytest.fixture
def served_changes(tmp_path: Path) -> Iterator[tuple[str, FakeSlack, Simulator]]:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    today = NOT_TODAY[datetime.now(ZoneInfo("America/Los_Angeles")).weekday()]
    # prod's window excludes today, so "refused outside the window" holds whenever this runs;
    # rollouts are polled quickly so the test can move the simulated ECS on.
    extra = (
        f"changes: {{rollout_poll_seconds: 0.2}}\nenvironments:\n  prod:\n    change_window:\n"
        f"      days: {[d for d in NOT_TODAY if d != today]}\n"
    )
    holder: list[Simulator] = []
    for base, slack, _log in _serve(tmp_path, extra, holder):
        yield base, slack, holder[0]


def _send(base: str, body: str) -> None:
    assert (
        httpx.post(f"{base}/slack/events", content=body, headers=sign(body, SECRET), timeout=5).status_code
        == 200
    )


def _wait_key(slack: FakeSlack, key: str, timeout: float = 10.0) -> list:
    return wait_until(
        lambda: [c for c in slack.calls_to("response") if c.key == key],
        timeout=timeout,
        what=f"an answer for {key}",
    )


def test_done_when_deploy_scale_rollback_and_prod_approval_through_serve(
    served_changes: tuple[str, FakeSlack, Simulator], tmp_path: Path
) -> None:
    from sqlalchemy import create_engine, text

    from bot.config import load_config
    from bot.fakes.slack_signing import block_actions_body
    from bot.simulator import advance_rollouts

    base, slack, sim = served_changes
    aws = sim.gateway()
    envs = tuple(load_config().environments.values())
    n = iter(range(1000))

    def command(text: str, user: str) -> str:
        key = f"k{next(n)}"
        _send(base, slash_command_body(text=text, user_id=user, response_url=slack.response_url(key)))
        return json.dumps(_wait_key(slack, key)[0].params, ensure_ascii=False)

    def click(action_id: str, value: str, user: str) -> str:
        key = f"k{next(n)}"
        body = block_actions_body(
            user_id=user, action_id=action_id, value=value, response_url=slack.response_url(key)
        )
        _send(base, body)
        return json.dumps(_wait_key(slack, key)[0].params, ensure_ascii=False)

    def service(env: str) -> dict:
        return aws.call(
            "ecs",
            "describe_services",
            cluster=f"menotime-{env}-cluster",
            services=[f"menotime-{env}-service"],
        )["services"][0]

    database = create_engine(f"sqlite:///{tmp_path / 'serve.db'}")

    def settle(env: str) -> None:
        """ECS finishes the rollout; serve's follower (polling every 0.2 s) sees it COMPLETED and
        hands the environment's change lease back."""
        for _ in range(2):
            advance_rollouts(region="us-west-1", envs=envs)

        def released() -> bool:
            with database.connect() as conn:
                held = conn.execute(
                    text("SELECT count(*) FROM change_leases WHERE env = :env"), {"env": env}
                ).scalar()
            return not held

        wait_until(released, what=f"{env}'s change lease to be handed back")

    # deploy dev develop: a new revision, reported
    answer = command("deploy dev develop", PEOPLE["developer"])
    assert "Deploying `develop` to dev" in answer and service("dev")["taskDefinition"].endswith(":4")
    settle("dev")

    # scale dev 2 works; 3 is refused naming the bound
    assert "Scaled dev to 2 tasks" in command("scale dev 2", PEOPLE["developer"])
    assert service("dev")["desiredCount"] == 2
    assert "dev allows 1–2 tasks" in command("scale dev 3", PEOPLE["developer"])
    assert service("dev")["desiredCount"] == 2

    # rollback prod by on-call: a confirmation, then the click puts prod back on its previous revision
    question = json.loads(command("rollback prod", PEOPLE["oncall"]))
    assert service("prod")["taskDefinition"].endswith(":3")
    request_id = next(
        e["value"]
        for b in question["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == "menotime_confirm"
    )
    assert "Rolling prod back" in click("menotime_confirm", request_id, PEOPLE["oncall"])
    assert service("prod")["taskDefinition"].endswith(":2")
    settle("prod")

    # a prod deploy outside the window is refused...
    refused = command("deploy prod v1.5.0", PEOPLE["release_manager"])
    assert "prod deploys are allowed" in refused and service("prod")["taskDefinition"].endswith(":2")
    # ...and even on-call's emergency deploy waits for a second person's approval
    asked = command("deploy prod v1.5.0 --emergency 'hotfix for the outage'", PEOPLE["oncall"])
    assert "Approval requested" in asked and service("prod")["taskDefinition"].endswith(":2")
    approval = _wait_for_post(slack, "Approve")
    approval_id = next(
        e["value"]
        for b in approval.params["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == "menotime_approve"
    )
    assert "needs the role operations, release_manager" in click(
        "menotime_approve", approval_id, PEOPLE["oncall"]
    )
    assert "Deploying `v1.5.0` to prod" in click("menotime_approve", approval_id, PEOPLE["operations"])
    assert service("prod")["taskDefinition"].endswith(":4")


# -------------------------------------------------------------------------------------------
# A real signed CloudWatch alarm through `serve`'s /sns, to a Slack post

FIXTURES = SHARED_FIXTURES / "cloudwatch"


def test_a_real_signed_alarm_posted_to_sns_reaches_slack_once(tmp_path: Path) -> None:
    import hashlib

    fixture = FIXTURES / "real-signed-metric-alarm-sigv1.json"
    sentinel = FIXTURES / "real-signed-composite-alarm-sigv1.json"  # same topic, same certificate
    if not (fixture.exists() and sentinel.exists()):
        pytest.skip(f"SNS fixtures not found at {FIXTURES}")
    body = fixture.read_bytes()
    envelope = json.loads(body)
    cache = tmp_path / "certs"
    cache.mkdir()
    # Pinned as an air-gapped install pins it: the certificate under the sha256 of its URL.
    pem = (FIXTURES / envelope["SigningCertURL"].rsplit("/", 1)[1]).read_bytes()
    (cache / f"{hashlib.sha256(envelope['SigningCertURL'].encode()).hexdigest()}.pem").write_bytes(pem)
    env = {
        "SNS_CERT_CACHE_DIR": str(cache),
        "SNS_MAX_AGE_SECONDS": str(10 * 365 * 24 * 3600),
        "SNS_TOPIC_ARNS": envelope["TopicArn"],
    }  # closed by default: the topic must be allow-listed
    for base, slack, _log in _serve(tmp_path, "", extra_env=env):
        headers = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
        assert httpx.post(f"{base}/sns", content=body, headers=headers, timeout=5).status_code == 200
        [post] = slack.wait_for("chat.postMessage", timeout=10)
        assert post.params["channel"] == "#menotime-ops"  # not a MenoTime alarm: the default channel
        assert "if-sim-app_427809481713_us-east-1-metric_emitting_node_failure" in json.dumps(post.params)
        assert (
            httpx.post(f"{base}/sns", content=body, headers=headers, timeout=5).status_code == 200
        )  # redelivery
        tampered = body.replace(b"ALARM", b"OK", 1)
        assert httpx.post(f"{base}/sns", content=tampered, headers=headers, timeout=5).status_code == 403
        # The next real message must be posted. The inbox worker takes messages oldest first and the
        # outbox sends in order: had the redelivery or the tampered copy been let in, what it made
        # would have gone to Slack before the sentinel's post.
        assert (
            httpx.post(f"{base}/sns", content=sentinel.read_bytes(), headers=headers, timeout=5).status_code
            == 200
        )
        last = slack.wait_for("chat.postMessage", count=2, timeout=10)[-1]
        assert "if-sim-app_427809481713_us-east-1-test_node_monitor" in json.dumps(last.params)
        assert [c.method for c in slack.calls] == ["chat.postMessage"] * 2  # posted once; nothing else


def _wait_for_post(slack: FakeSlack, needle: str, *, count: int = 1, timeout: float = 10.0) -> Any:
    """The latest channel post containing ``needle``, once ``count`` such posts have arrived (the
    outbox worker sends them a moment after the command's answer)."""

    def found() -> list[Any]:
        return [c for c in slack.calls_to("chat.postMessage") if needle in json.dumps(c.params)]

    return wait_until(
        lambda: len(found()) >= count and found()[-1], timeout=timeout, what=f"{count} posts with {needle!r}"
    )


def test_done_when_a_prod_alarm_over_sns_opens_a_thread_with_buttons_and_its_ok_resolves_it(
    tmp_path: Path,
) -> None:
    import hashlib

    from bot.fakes.sns_signer import OWN_URL, Own
    from tests.test_alarm_threads import alarm_message

    now = datetime.now(UTC).replace(microsecond=0)
    own = Own(not_before=now - timedelta(hours=1), not_after=now + timedelta(hours=1))
    cache = tmp_path / "certs"
    cache.mkdir()
    (cache / f"{hashlib.sha256(OWN_URL.encode()).hexdigest()}.pem").write_bytes(own.pem)
    topic = "arn:aws:sns:us-west-1:123456789012:menotime-prod-alarms"

    def signed(state: str, old: str, at: datetime, message_id: str) -> bytes:
        alarm = json.loads(alarm_message(state=state, old=old, at=at))  # menotime-prod-api-5xx
        alarm["Trigger"].update(
            Namespace="AWS/ApplicationELB",
            Dimensions=[{"name": "LoadBalancer", "value": "app/menotime-prod-alb/1"}],
        )
        return json.dumps(
            own.message(
                MessageId=message_id,
                TopicArn=topic,
                Message=json.dumps(alarm),
                at=at,
                Subject=f'{state}: "menotime-prod-api-5xx"',
            )
        ).encode()

    headers = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
    env = {"SNS_CERT_CACHE_DIR": str(cache), "SNS_TOPIC_ARNS": topic}
    for base, slack, _log in _serve(tmp_path, "", extra_env=env):
        alarm = signed("ALARM", "OK", now, "6f0c1d2e-0000-4000-8000-00000000a1a1")
        assert httpx.post(f"{base}/sns", content=alarm, headers=headers, timeout=5).status_code == 200
        root = _wait_for_post(slack, "menotime-prod-api-5xx")
        assert root.params["channel"] == "#menotime-prod-alerts" and "thread_ts" not in root.params
        buttons = {
            e["text"]["text"]: e
            for b in root.params["blocks"]
            for e in b.get("elements", [])
            if e.get("type") == "button"
        }
        assert sorted(buttons) == ["Acknowledge", "Roll back", "Runbook", "Snooze 1 h"]
        assert buttons["Roll back"]["value"] == "prod" and buttons["Runbook"]["url"].startswith("https://")

        assert (
            httpx.post(f"{base}/sns", content=alarm, headers=headers, timeout=5).status_code == 200
        )  # again
        ok = signed("OK", "ALARM", now + timedelta(seconds=1), "6f0c1d2e-0000-4000-8000-00000000a1a2")
        assert httpx.post(f"{base}/sns", content=ok, headers=headers, timeout=5).status_code == 200
        reply = _wait_for_post(slack, "resolved after")
        assert reply.params["thread_ts"] == root.response["ts"]
        [edit] = slack.wait_for("chat.update", timeout=10)
        assert edit.params["ts"] == root.response["ts"] and "OK" in edit.params["text"]
        # The OK, stored after the redelivered ALARM, is the sentinel: the inbox worker takes messages
        # oldest first, so whatever the redelivery had made would have reached Slack before it.
        assert len(slack.calls_to("chat.postMessage")) == 2  # the redelivered ALARM produced nothing


def test_sigterm_stops_serve_cleanly_and_hands_the_scheduler_lease_back(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    gen = _serve(tmp_path, "")
    _base, _slack, log_path = next(gen)
    database = f"sqlite:///{tmp_path / 'serve.db'}"

    def leader() -> str | None:  # the scheduler takes the lease at start
        with create_engine(database).connect() as conn:
            return conn.execute(
                text("SELECT holder FROM change_leases WHERE env = 'scheduler:leader'")
            ).scalar()

    wait_until(leader, timeout=15, what="the scheduler's leader lease")
    with pytest.raises(StopIteration):
        next(gen)  # terminate (SIGTERM) and wait, as ECS does
    log = log_path.read_text()
    assert '"event": "shutdown_complete"' in log, log[-2000:]
    with create_engine(database).connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM change_leases WHERE env = 'scheduler:leader'")).scalar()
            == 0
        )
