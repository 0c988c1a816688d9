"""Interactivity over HTTP: signed block_actions clicks on Confirm / Approve / Deny, forged and
unauthorised clicks, against moto's server, with the fake Slack recording every answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import Config
from bot.fakes.slack_api import FakeSlack
from bot.fakes.slack_signing import block_actions_body, sign, slash_command_body
from bot.simulator import REPOSITORY, Simulator, advance_rollouts, image_manifest
from handlers.process import compose
from tests.conftest import PEOPLE
from tests.fakes.server import serve_in_thread
from tests.harness import wait_until
from tests.test_slack_http import LazyWork

SECRET = "buttons-signing-secret"


class Bot:
    def __init__(
        self, url: str, slack: FakeSlack, http: httpx.Client, sim: Simulator, core, work: LazyWork
    ) -> None:
        self.url, self.slack, self.http, self.sim, self.core, self.n = url, slack, http, sim, core, 0
        self.work = work

    def _post(self, body: str, secret: str = SECRET) -> httpx.Response:
        return self.http.post(f"{self.url}/slack/events", content=body, headers=sign(body, secret))

    def command(self, text: str, user: str) -> dict:
        self.n += 1
        key = f"c{self.n}"
        assert (
            self._post(
                slash_command_body(text=text, user_id=user, response_url=self.slack.response_url(key))
            ).status_code
            == 200
        )
        return self.answer(key)

    def click(self, action_id: str, value: str, user: str, secret: str = SECRET) -> tuple[int, str]:
        self.n += 1
        key = f"b{self.n}"
        body = block_actions_body(
            user_id=user, action_id=action_id, value=value, response_url=self.slack.response_url(key)
        )
        return self._post(body, secret).status_code, key

    def answer(self, key: str, timeout: float = 10.0) -> dict:
        answers = wait_until(lambda: self.slack.responses(key), timeout=timeout, what=f"an answer at {key}")
        return dict(answers[0])

    def settle(self) -> None:
        """Click a sentinel, a signed *Roll back* to prod:2 by on-call, wait for its question and
        then for all the Slack work in flight to finish: whatever was handed to Bolt before it has
        had its effect by then, and the sentinel shows that a click let in does have one."""
        status, key = self.click("menotime_rollback", "prod:2", user=PEOPLE["oncall"])
        assert status == 200
        assert "Confirm: roll prod back" in self.answer(key)["text"]
        self.work.wait_idle()

    def sent(self, method: str, needle: str, timeout: float = 15.0) -> Any:
        """The first ``method`` call whose text holds ``needle``, waiting for the outbox worker."""
        found = wait_until(
            lambda: [c for c in self.slack.calls_to(method) if needle in str(c.params.get("text", ""))],
            timeout=timeout,
            what=f"a {method} with {needle!r}",
        )
        return found[0]

    def post_in(
        self,
        channel: str,
        *,
        with_button: str | None = None,
        text: str | None = None,
        thread_ts: str | None = None,
        timeout: float = 15.0,
    ) -> Any:
        """The latest post to ``channel`` that carries the ``with_button`` action, holds ``text`` and
        sits in ``thread_ts`` (each when given), waiting for the outbox worker to send it. Other posts
        share the channels (the deploy watcher announces what runs in staging and prod, whoever
        deployed it, at any moment), so what a post says, not its order, says which one is meant."""

        def wanted(params: dict[str, Any]) -> bool:
            return (
                params["channel"] == channel
                and (with_button is None or _has_button(params, with_button))
                and (text is None or text in str(params.get("text", "")))
                and (thread_ts is None or params.get("thread_ts") == thread_ts)
            )

        posts = wait_until(
            lambda: [c for c in self.slack.calls_to("chat.postMessage") if wanted(c.params)],
            timeout=timeout,
            what=f"a post in {channel} with {with_button or text or thread_ts}",
        )
        return posts[-1]

    def desired(self, env: str) -> int:
        return self.sim.gateway().call(
            "ecs",
            "describe_services",
            cluster=f"menotime-{env}-cluster",
            services=[f"menotime-{env}-service"],
        )["services"][0]["desiredCount"]


def _has_button(message: dict, action_id: str) -> bool:
    return any(
        element.get("action_id") == action_id
        for block in message.get("blocks") or []
        for element in block.get("elements", [])
    )


def _button(message: dict, action_id: str) -> str:
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return element["value"]
    raise AssertionError(f"no {action_id} button in {message}")


@pytest.fixture
def bot(config: Config, tmp_path: Path, clock) -> Iterator[Bot]:
    with Simulator(region="us-west-1") as sim, FakeSlack() as slack:
        sim.seed(config)
        from bot.settings import Settings

        settings = Settings(
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        )
        process = compose(
            settings,
            mode="serve",
            config=config,
            aws=sim.gateway(),
            migrate_schema=True,
            clock=clock,
            sleep=lambda _s: advance_rollouts(region="us-west-1", envs=tuple(config.environments.values())),
        )
        assert process.slack is not None and process.web is not None
        work = LazyWork(process.slack)
        process.recover()
        process.start()  # as serve runs it: channel posts go out through the outbox
        with serve_in_thread(process.web) as url, httpx.Client(timeout=10) as http:
            yield Bot(url, slack, http, sim, process.core, work)
        process.stop()


def test_confirm_button_runs_the_change_and_replaces_the_question(bot: Bot) -> None:
    question = bot.command("scale prod 3", user=PEOPLE["oncall"])
    assert question["response_type"] == "ephemeral" and bot.desired("prod") == 2
    request_id = _button(question, "menotime_confirm")
    status, key = bot.click("menotime_confirm", request_id, user=PEOPLE["oncall"])
    assert status == 200
    answer = bot.answer(key)
    assert answer["replace_original"] is True and "Scaled prod to 3 tasks" in answer["text"]
    assert bot.desired("prod") == 3
    bot.post_in("#menotime-prod-alerts", text="Scaled prod to 3 tasks")


def test_a_replayed_click_is_acked_and_not_run_again(bot: Bot) -> None:
    question = bot.command("scale prod 3", user=PEOPLE["oncall"])
    body = block_actions_body(
        user_id=PEOPLE["oncall"],
        action_id="menotime_confirm",
        value=_button(question, "menotime_confirm"),
        response_url=bot.slack.response_url("r"),
    )
    headers = sign(body, SECRET)  # captured once, sent twice
    assert [
        bot.http.post(f"{bot.url}/slack/events", content=body, headers=headers).status_code for _ in range(2)
    ] == [200, 200]
    assert "Scaled prod to 3 tasks" in bot.answer("r")["text"]
    bot.settle()
    assert len(bot.slack.responses("r")) == 1  # the copy got no answer: it never ran
    assert [e.outcome for e in bot.core.audit.recent() if e.verb == "replay"] == ["replay"]


def test_a_forged_click_is_refused_and_changes_nothing(bot: Bot) -> None:
    request_id = _button(bot.command("scale prod 3", user=PEOPLE["oncall"]), "menotime_confirm")
    status, key = bot.click("menotime_confirm", request_id, user=PEOPLE["oncall"], secret="forged")
    assert status == 401
    bot.settle()
    assert bot.slack.responses(key) == [] and bot.desired("prod") == 2


def test_a_click_by_someone_without_the_role_is_refused_and_audited(bot: Bot) -> None:
    request_id = _button(bot.command("scale prod 3", user=PEOPLE["oncall"]), "menotime_confirm")
    _, key = bot.click("menotime_confirm", request_id, user=PEOPLE["qa"])
    assert "needs the role" in bot.answer(key)["text"]
    assert bot.desired("prod") == 2
    event = bot.core.audit.recent()[0]
    assert (event.actor, event.verb, event.env, event.outcome) == (PEOPLE["qa"], "confirm", "prod", "denied")


def test_approve_and_deny_buttons_on_a_prod_deploy(bot: Bot) -> None:
    gateway = bot.sim.gateway()
    gateway.call(
        "ecr",
        "put_image",
        repositoryName=REPOSITORY,
        imageTag="v1.6.0",
        imageManifest=image_manifest("v1.5.0"),
    )
    # The soak: v1.6.0's digest (the same image as v1.5.0) ran in staging long enough, per the records.

    from bot.store.deploys import COMPLETED, DeployLog

    digest = gateway.call(
        "ecr", "describe_images", repositoryName=REPOSITORY, imageIds=[{"imageTag": "v1.6.0"}]
    )["imageDetails"][0]["imageDigest"]
    log = DeployLog(bot.core.db)
    started = bot.core.clock.now() - timedelta(days=2)
    record = log.start(
        env="staging",
        kind="deploy",
        requested_by=PEOPLE["developer"],
        image_tag="main",
        image_digest=digest,
        from_revision=2,
        to_revision=3,
        at=started,
    )
    log.finish(id=record.id, outcome=COMPLETED, at=started)

    asked = bot.command("deploy prod v1.6.0", user=PEOPLE["release_manager"])  # Tuesday 10:00 PT
    assert "Approval requested" in asked["text"]
    # Sent by the outbox worker, a moment after the answer.
    approval = bot.post_in("#menotime-prod-alerts", with_button="menotime_approve")
    request_id = _button(approval.params, "menotime_approve")
    _, own = bot.click("menotime_approve", request_id, user=PEOPLE["release_manager"])
    assert "another person must approve" in bot.answer(own)["text"]
    _, key = bot.click("menotime_approve", request_id, user=PEOPLE["operations"])
    assert "Deploying `v1.6.0` to prod" in bot.answer(key)["text"]
    assert bot.sent("chat.update", "Approved by")  # the approval message, edited (among the rollout's edits)

    taskdef = gateway.call(
        "ecs", "describe_services", cluster="menotime-prod-cluster", services=["menotime-prod-service"]
    )["services"][0]["taskDefinition"]
    assert taskdef.endswith(":4")
    _, again = bot.click("menotime_approve", request_id, user=PEOPLE["admin"])
    assert "was already executed by <@" in bot.answer(again)["text"]


def test_deny_and_cancel_buttons_change_nothing(bot: Bot) -> None:
    question = bot.command("rollback prod", user=PEOPLE["oncall"])
    _, key = bot.click("menotime_cancel", _button(question, "menotime_confirm"), user=PEOPLE["oncall"])
    answer = bot.answer(key)
    assert answer["replace_original"] is True and "Cancelled" in answer["text"]
    gateway = bot.sim.gateway()
    assert gateway.call(
        "ecs", "describe_services", cluster="menotime-prod-cluster", services=["menotime-prod-service"]
    )["services"][0]["taskDefinition"].endswith(":3")

    from bot.store.changes import Requests

    request = Requests(bot.core.db).create(
        kind="approval",
        env="prod",
        action="deploy",
        params={"env": "prod", "tag": "v1.5.0"},
        requested_by=PEOPLE["release_manager"],
        reason=None,
        now=bot.core.clock.now(),
        ttl=timedelta(hours=1),
    )
    _, key = bot.click("menotime_deny", request.id, user=PEOPLE["operations"])
    assert "Denied by <@" in bot.answer(key)["text"]
    assert Requests(bot.core.db).get(request.id).status == "denied"


def test_the_roll_back_button_asks_for_a_rollback_to_its_revision(bot: Bot) -> None:
    _, key = bot.click("menotime_rollback", "prod:2", user=PEOPLE["oncall"])
    answer = bot.answer(key)
    assert "Confirm: roll prod back to `menotime-backend-prod:2`" in answer["text"]
    _, refused = bot.click("menotime_rollback", "prod:2", user=PEOPLE["developer"])
    assert "needs the role oncall, operations, release_manager" in bot.answer(refused)["text"]
    _, junk = bot.click("menotime_rollback", "prod; scale prod 4", user=PEOPLE["oncall"])
    assert "is not an environment" in bot.answer(junk)["text"]


def _alarm_thread(bot: Bot) -> str:
    """An ALARM for prod's API 5xx, as the inbox worker would post it; its thread id."""
    from bot.alarms import process_inbox, short_id
    from tests.test_alarm_threads import PROD_ARN, alarm_message, store

    store(bot.core, alarm_message(state="ALARM", old="OK", at=bot.core.clock.now()))
    process_inbox(core=bot.core)
    bot.post_in("#menotime-prod-alerts", with_button="menotime_ack")  # the root, through the outbox
    return short_id(PROD_ARN)


def test_the_acknowledge_button_records_who_once_and_says_so_in_the_thread(bot: Bot) -> None:
    from bot.alarms import open_alarms

    thread = _alarm_thread(bot)
    root = bot.post_in("#menotime-prod-alerts", with_button="menotime_ack")
    assert _button(root.params, "menotime_ack") == thread
    status, key = bot.click("menotime_ack", thread, user=PEOPLE["oncall"])
    assert status == 200 and "You acknowledged" in bot.answer(key)["text"]
    [alarm] = open_alarms(bot.core)
    assert alarm.acknowledged_by == PEOPLE["oncall"]
    bot.post_in("#menotime-prod-alerts", text="Acknowledged by", thread_ts=root.response["ts"])
    _status, again = bot.click("menotime_ack", thread, user=PEOPLE["operations"])
    assert "already acknowledged" in bot.answer(again)["text"]
    # A developer may not acknowledge prod's alarms (DESIGN §5): the click is refused, with who may.
    _status, refused = bot.click("menotime_ack", thread, user=PEOPLE["developer"])
    assert (
        "`ack` on prod needs the role oncall, operations, release_manager or admin"
        in bot.answer(refused)["text"]
    )


def test_the_alarm_roll_back_and_snooze_buttons_run_their_commands(bot: Bot) -> None:
    thread = _alarm_thread(bot)
    _status, key = bot.click("menotime_snooze", thread, user=PEOPLE["oncall"])
    assert "You snoozed" in bot.answer(key)["text"]
    _status, key = bot.click("menotime_alarm_rollback", "prod", user=PEOPLE["oncall"])
    question = bot.answer(key)
    assert question["text"].startswith("Confirm: roll prod back") and _button(question, "menotime_confirm")
    _status, key = bot.click("menotime_alarm_rollback", "prod; drop", user=PEOPLE["oncall"])
    assert "is not an environment" in bot.answer(key)["text"] and bot.desired("prod") == 2  # a forged value
