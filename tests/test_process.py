"""The composition root: one function builds each process, wired at construction, recovering only
when asked."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.answers import ChangeResult
from bot.aws import AwsGateway
from bot.config import Config
from bot.errors import ConfigError
from bot.fakes.slack_api import FakeSlack
from bot.notify import NullNotifier
from bot.outbox import OutboxNotifier
from bot.settings import Settings
from bot.store.deploys import DeployLog
from handlers.process import compose
from tests.harness import wait_until

pytestmark = pytest.mark.xdist_group("process")


def _slack_settings(tmp_path: Path, slack: FakeSlack) -> Settings:
    return Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret="s3cr3t",
        slack_api_url=slack.api_url,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
    )


def test_a_queued_post_wakes_the_outbox_worker_it_was_built_with(
    tmp_path: Path, config: Config, seeded_aws: AwsGateway
) -> None:
    """The notifier and the outbox's sender share their wake-up from construction: a post reaches
    Slack at once, not at the sender's next idle round (5 s)."""
    with FakeSlack() as slack:
        process = compose(
            _slack_settings(tmp_path, slack), mode="serve", config=config, aws=seeded_aws, migrate_schema=True
        )
        assert isinstance(process.core.notifier, OutboxNotifier)
        process.start()
        try:
            time.sleep(0.2)  # the sender's first round has found nothing and gone idle
            sent = time.monotonic()
            process.core.notifier.post(channel="#menotime-ops", result=ChangeResult(headline="woken"))
            wait_until(lambda: slack.calls_to("chat.postMessage"), timeout=4.0, what="the post")
            assert time.monotonic() - sent < 2.0
        finally:
            process.stop()


def test_recovery_is_a_step_of_its_own(tmp_path: Path, config: Config, seeded_aws: AwsGateway) -> None:
    """A rollout a previous run left unfinished is ended by `recover`, not by building the process."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'bot.db'}")
    first = compose(settings, mode="core", config=config, aws=seeded_aws, migrate_schema=True)
    record = DeployLog(first.core.db).start(
        env="dev",
        kind="deploy",
        requested_by="U0DEV",
        image_tag="develop",
        image_digest=None,
        from_revision=1,
        to_revision=2,
        at=first.core.clock.now(),
    )
    first.core.close()

    again = compose(settings, mode="core", config=config, aws=seeded_aws)
    assert DeployLog(again.core.db).last("dev").outcome == "in_progress"
    again.recover()
    assert DeployLog(again.core.db).last("dev").id == record.id
    assert DeployLog(again.core.db).last("dev").outcome != "in_progress"
    again.core.close()


def test_a_slack_process_queues_its_posts_and_refuses_another_notifier(
    tmp_path: Path, config: Config, seeded_aws: AwsGateway
) -> None:
    with FakeSlack() as slack:
        settings = _slack_settings(tmp_path, slack)
        with pytest.raises(ValueError, match="posts through the outbox"):
            compose(settings, mode="serve", config=config, aws=seeded_aws, notifier=NullNotifier())
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN must be set"):
        compose(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"), mode="serve", config=config)
    core_only = compose(
        Settings(database_url=f"sqlite:///{tmp_path / 'y.db'}"),
        mode="core",
        config=config,
        notifier=NullNotifier(),
    )
    assert core_only.slack is None and core_only.workers is None and core_only.scheduler is None
    assert isinstance(core_only.core.notifier, NullNotifier)
    core_only.core.close()
