"""Health and readiness: /readyz tells an orchestrator the truth about the database."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from starlette.testclient import TestClient

from bot.core import build_core
from bot.settings import Settings
from handlers.cli import cli
from handlers.web import create_web_app


def test_readyz_is_503_until_migrations_are_applied(tmp_path: Path) -> None:
    core = build_core(Settings(database_url=f"sqlite:///{tmp_path / 'ready.db'}"))
    client = TestClient(create_web_app(core, None))
    assert client.get("/healthz").status_code == 200
    before = client.get("/readyz")
    assert before.status_code == 503 and "menotime-bot migrate" in before.json()["reason"]
    from bot.store import migrate

    migrate.upgrade(core.db)
    assert client.get("/readyz").status_code == 200
    assert client.post("/slack/events").status_code in (404, 405)  # no Slack app mounted here
    core.close()


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    core = build_core(Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:9/none"))
    response = TestClient(create_web_app(core, None)).get("/readyz")
    assert response.status_code == 503 and "database unreachable" in response.json()["reason"]


def test_socket_mode_needs_an_app_token() -> None:
    result = CliRunner().invoke(cli, ["socket"], env={"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s"})
    assert result.exit_code == 2 and "SLACK_APP_TOKEN" in result.output
