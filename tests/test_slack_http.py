"""Scenario tests: the real ASGI app under uvicorn, real signed Slack requests over HTTP, moto's
server for AWS, a fake Slack Web API and response_url receiver recording what the bot sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from slack_bolt import App

from bot.aws import AwsGateway
from bot.config import Config, load_config
from bot.core import Core
from bot.fakes.slack_api import FakeSlack
from bot.fakes.slack_signing import sign, slash_command_body
from bot.settings import Settings
from bot.simulator import Simulator
from handlers.process import compose
from tests.conftest import DEV_GROUP, GROUP_MEMBER, NOBODY, PEOPLE, TEST_ROLES
from tests.fakes.server import serve_in_thread

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


class LazyWork:
    """Counts the work a Bolt app hands its thread pool (each answer, each click's effect runs
    there, after the ack), so that a test can wait until all of it has finished: requests answered
    concurrently finish in any order, so a later request's answer alone does not say an earlier one
    is done."""

    def __init__(self, app: App) -> None:
        runner = app.listener_runner.lazy_listener_runner
        self._pool = runner.executor  # type: ignore[attr-defined]
        self._running = 0
        self._changed = threading.Condition()
        runner.executor = self  # type: ignore[attr-defined]

    def submit(self, fn: Callable[..., object], /, *args: object, **kwargs: object) -> Future:
        with self._changed:
            self._running += 1
        future = self._pool.submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._running == 0, timeout):
                raise AssertionError(f"Slack work still running after {timeout} s: {self._running}")


@dataclass
class Bot:
    url: str
    slack: FakeSlack
    core: Core
    http: httpx.Client
    work: LazyWork
    n: int = 0

    def command(
        self, text: str, *, user: str, secret: str = SECRET, timestamp: int | None = None
    ) -> tuple[httpx.Response, str]:
        """Send `/menotime text` as `user`; returns the HTTP response and the response_url key."""
        self.n += 1
        key = f"r{self.n}"
        body = slash_command_body(text=text, user_id=user, response_url=self.slack.response_url(key))
        response = self.http.post(
            f"{self.url}/slack/events", content=body, headers=sign(body, secret, timestamp=timestamp)
        )
        return response, key

    def answer(self, key: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answers = self.slack.responses(key)
            if answers:
                return answers[0]
            time.sleep(0.02)
        raise AssertionError(
            f"no answer at response_url {key}; calls: {[c.method for c in self.slack.calls]}"
        )

    def settle(self) -> str:
        """Send a sentinel, a signed `/menotime status dev` from on-call, wait for its answer and
        then for all the Slack work in flight to finish; the sentinel's response_url key. Whatever
        was handed to Bolt before the sentinel has then had its effect in Slack's calls and the
        audit trail, and the sentinel shows that a request let in does have one."""
        response, key = self.command("status dev", user=PEOPLE["oncall"])
        assert response.status_code == 200, response.text
        self.answer(key)
        self.work.wait_idle()
        return key

    def assert_nothing_happened(self) -> None:
        """Nothing reached Slack or the audit trail but the sentinel: its answer and the one Web API
        call it makes (on-call's Slack user groups, asked once and cached)."""
        sentinel = self.settle()
        assert [(c.method, c.key) for c in self.slack.calls] == [
            ("usergroups.users.list", None),
            ("response", sentinel),
        ]
        assert [(e.actor, e.verb, e.env) for e in self.core.audit.recent()] == [
            (PEOPLE["oncall"], "status", "dev")
        ]


def _text(message: dict) -> str:
    """Everything a user would read in the message: fallback text and every block's text."""
    parts = [message.get("text", "")]
    for block in message.get("blocks", []):
        if isinstance(block.get("text"), dict):
            parts.append(block["text"].get("text", ""))
        for element in block.get("elements", []) + block.get("fields", []):
            if isinstance(element, dict) and "text" in element:
                parts.append(
                    element["text"] if isinstance(element["text"], str) else element["text"].get("text", "")
                )
    return "\n".join(parts)


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    """moto's server, seeded once for the module (status only reads it)."""
    with Simulator(region="us-west-1") as sim:
        sim.seed(load_config(overrides=TEST_ROLES))
        yield sim


@pytest.fixture
def run_bot(simulator: Simulator, config: Config, tmp_path: Path):
    def start(*, aws: AwsGateway | None = None) -> Iterator[Bot]:
        with FakeSlack(usergroups={DEV_GROUP: [GROUP_MEMBER]}) as slack:
            settings = Settings(
                slack_bot_token="xoxb-test",
                slack_signing_secret=SECRET,
                slack_api_url=slack.api_url,
                database_url=f"sqlite:///{tmp_path / 'bot.db'}",
            )
            process = compose(
                settings, mode="serve", config=config, aws=aws or simulator.gateway(), migrate_schema=True
            )
            assert process.slack is not None and process.web is not None
            core, work = process.core, LazyWork(process.slack)
            process.recover()
            process.start()  # as serve runs it: channel posts go out through the outbox
            with serve_in_thread(process.web) as url, httpx.Client(timeout=10) as http:
                yield Bot(url=url, slack=slack, core=core, http=http, work=work)
            process.stop()

    return start


@pytest.fixture
def bot(run_bot) -> Iterator[Bot]:
    yield from run_bot()


def test_status_prod_is_acknowledged_at_once_and_answered_at_the_response_url(bot: Bot) -> None:
    started = time.monotonic()
    response, key = bot.command("status prod", user=PEOPLE["oncall"])
    assert response.status_code == 200
    answer = bot.answer(key, timeout=3.0)  # the Done-when: the answer arrives within 3 seconds
    assert time.monotonic() - started < 3.0
    text = _text(answer)
    assert answer["response_type"] == "in_channel"
    assert "prod" in text and "v1.5.0" in text
    assert "menotime-backend-prod:3" in text
    assert "2–4" in text or "2-4" in text
    assert "menotime-prod-api-5xx" in text  # the seeded alarm in ALARM
    assert "by CI/CD or console" in text  # the last deployment, seen in ECS whoever made it
    assert f"<@{PEOPLE['oncall']}>" in text


def test_a_forged_signature_is_refused_and_nothing_happens(bot: Bot) -> None:
    response, _ = bot.command("status prod", user=PEOPLE["oncall"], secret="not-the-secret")
    assert response.status_code == 401
    bot.assert_nothing_happened()


def test_a_replayed_request_outside_five_minutes_is_refused(bot: Bot) -> None:
    response, _ = bot.command("status prod", user=PEOPLE["oncall"], timestamp=int(time.time()) - 6 * 60)
    assert response.status_code == 401
    bot.assert_nothing_happened()


def test_a_user_without_a_role_is_told_which_role_would_allow_it(bot: Bot) -> None:
    response, key = bot.command("status prod", user=NOBODY)
    assert response.status_code == 200
    answer = bot.answer(key)
    assert answer["response_type"] == "ephemeral"
    assert "no MenoTime Ops role" in _text(answer) and "viewer is enough" in _text(answer)
    [event] = bot.core.audit.recent()
    assert (event.actor, event.outcome, event.rule) == (NOBODY, "denied", "default-deny:no-role")


def test_a_typo_gets_a_suggestion_ephemerally(bot: Bot) -> None:
    _, key = bot.command("stauts prod", user=PEOPLE["developer"])
    answer = bot.answer(key)
    assert answer["response_type"] == "ephemeral"
    assert "Did you mean `status`?" in _text(answer)


def test_roles_from_a_slack_user_group(bot: Bot) -> None:
    _, key = bot.command("whoami", user=GROUP_MEMBER)
    assert "developer" in _text(bot.answer(key))
    assert bot.slack.calls_to("usergroups.users.list"), "membership must be asked of Slack"


def test_help_shows_only_what_the_user_may_use(bot: Bot) -> None:
    _, key = bot.command("help", user=NOBODY)
    text = _text(bot.answer(key))
    assert "whoami" in text and "status" not in text


def test_unreachable_aws_gets_one_sentence_and_nothing_else(run_bot, simulator: Simulator) -> None:
    dead = AwsGateway(
        session=simulator.session(),
        region="us-west-1",
        endpoint_url="http://127.0.0.1:9",
        connect_timeout=0.5,
        read_timeout=0.5,
        max_attempts=1,
    )
    for bot in run_bot(aws=dead):
        _, key = bot.command("status prod", user=PEOPLE["oncall"])
        text = _text(bot.answer(key))
        assert text.startswith("AWS did not answer") or "AWS did not answer (" in text
        assert "nothing was changed" in text
        assert "Traceback" not in text and "botocore" not in text


def test_health_readiness_and_metrics(bot: Bot) -> None:
    assert bot.http.get(f"{bot.url}/healthz").json() == {"status": "ok"}
    ready = bot.http.get(f"{bot.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    _, key = bot.command("whoami", user=PEOPLE["oncall"])
    bot.answer(key)
    metrics = bot.http.get(f"{bot.url}/metrics").text
    assert 'menotime_commands_total{outcome="ok",verb="whoami"} 1.0' in metrics
    assert "menotime_slack_ack_seconds_bucket" in metrics


def test_a_failing_slack_web_api_does_not_block_commands(bot: Bot) -> None:
    """No auth.test on the request path: Slack's Web API being down cannot delay or break the ack."""
    bot.slack.fail_next("auth.test", status=500, times=50)
    response, key = bot.command("whoami", user=PEOPLE["oncall"])
    assert response.status_code == 200
    assert "oncall" in _text(bot.answer(key))
    assert bot.slack.calls_to("auth.test") == []


def test_slack_rate_limiting_group_lookups_is_retried_then_explained(bot: Bot) -> None:
    bot.slack.fail_next("usergroups.users.list", status=429, retry_after=0, times=1)
    _, key = bot.command("whoami", user=GROUP_MEMBER)
    assert "developer" in _text(bot.answer(key))  # the 429 was retried
    assert len(bot.slack.calls_to("usergroups.users.list")) == 2

    bot.core.roles._cache.clear()
    bot.slack.fail_next("usergroups.users.list", status=429, retry_after=0, times=10)
    _, key = bot.command("status dev", user=GROUP_MEMBER)
    text = _text(bot.answer(key))
    assert "could not check your Slack user groups" in text and "try again" in text
    assert bot.core.audit.recent()[0].rule == "default-deny:groups-unverified"


def test_a_rendering_failure_still_answers_with_a_reference(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    import handlers.respond as respond

    real = respond.render_slack

    def broken(result):
        if type(result).__name__ == "WhoamiResult":
            raise RuntimeError("template bug")
        return real(result)

    monkeypatch.setattr(respond, "render_slack", broken)
    _, key = bot.command("whoami", user=PEOPLE["oncall"])
    text = _text(bot.answer(key))
    assert "Something went wrong showing the answer" in text and "template bug" not in text
