"""Group grants while Slack cannot be asked (issue 12, item 6), through signed slash commands to the
running app: the members last seen serve through a brief Slack failure, but a grant older than
GROUP_CACHE_MAX_STALE_SECONDS is dropped (fail closed) with one warning naming the group."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from bot.aws import AwsGateway
from bot.config import Config
from bot.fakes.slack_api import FakeSlack
from bot.settings import Settings
from handlers.process import compose
from tests.conftest import DEV_GROUP, GROUP_MEMBER
from tests.fakes.server import serve_in_thread
from tests.test_slack_http import SECRET, Bot, LazyWork, _text

MAX_STALE_SECONDS = 2  # the bound, at test speed (default 900)


@pytest.fixture
def bot(config: Config, seeded_aws: AwsGateway, tmp_path: Path) -> Iterator[Bot]:
    with FakeSlack(usergroups={DEV_GROUP: [GROUP_MEMBER]}) as slack:
        # No TTL: every command asks Slack, so a failing Slack is met at once.
        settings = Settings(
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
            group_cache_ttl_seconds=0,
            group_cache_max_stale_seconds=MAX_STALE_SECONDS,
        )
        process = compose(settings, mode="serve", config=config, aws=seeded_aws, migrate_schema=True)
        assert process.slack is not None and process.web is not None
        with serve_in_thread(process.web) as url, httpx.Client(timeout=10) as http:
            yield Bot(url=url, slack=slack, core=process.core, http=http, work=LazyWork(process.slack))
        process.core.close()


def _status_dev(bot: Bot) -> str:
    _, key = bot.command("status dev", user=GROUP_MEMBER)
    return _text(bot.answer(key))


def test_a_group_grant_outlives_a_slack_hiccup_but_not_the_staleness_bound(bot: Bot) -> None:
    assert "menotime-backend-dev" in _status_dev(bot)  # a developer through the group; its members cached
    filled = time.monotonic()
    bot.slack.fail_next("usergroups.users.list", error="internal_error", times=1000)
    with structlog.testing.capture_logs() as logs:
        within = _status_dev(bot)  # Slack fails; the members it gave a moment ago still stand
        assert time.monotonic() - filled < MAX_STALE_SECONDS, (
            "the test machine was too slow to check the bound"
        )
        assert "menotime-backend-dev" in within and "could not check" not in within
        time.sleep(MAX_STALE_SECONDS - (time.monotonic() - filled) + 0.2)
        beyond = _status_dev(bot)  # Slack still fails, and what it last said is too old to trust
        again = _status_dev(bot)
    for refused in (beyond, again):
        assert "could not check your Slack user groups" in refused and "menotime-backend-dev" not in refused
    assert bot.core.audit.recent()[0].rule == "default-deny:groups-unverified"
    dropped = [entry for entry in logs if entry["event"] == "usergroup_cache_dropped"]
    assert len(dropped) == 1, logs  # one line when the grant goes, not one per refused command
    assert dropped[0]["log_level"] == "warning" and dropped[0]["group"] == DEV_GROUP
    assert GROUP_MEMBER not in str(dropped[0])  # the group is named, its members are not
