"""Health and readiness: /readyz tells an orchestrator the truth about the database."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from starlette.testclient import TestClient

from bot.compose import build_core
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
    result = CliRunner().invoke(
        cli, ["socket"], env={"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s"}
    )
    assert result.exit_code == 2 and "SLACK_APP_TOKEN" in result.output


def test_socket_mode_serves_metrics_only_on_metrics_port(tmp_path: Path, monkeypatch) -> None:
    """Socket Mode has no public Slack URL but still a health port: METRICS_PORT moves /metrics off it."""
    import socket as sockets
    import time

    import httpx
    import slack_bolt.adapter.socket_mode as socket_mode

    def free_port() -> int:
        with sockets.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    port, metrics_port = free_port(), free_port()
    seen: dict[str, int] = {}

    class FakeSocketMode:  # stands in for the websocket to Slack; probes the HTTP ports meanwhile
        def __init__(self, *_args: object, **_kwargs: object) -> None:
            pass

        def start(self) -> None:
            deadline = time.monotonic() + 10
            while "health" not in seen and time.monotonic() < deadline:
                try:
                    seen["health"] = httpx.get(f"http://127.0.0.1:{port}/healthz").status_code
                except httpx.TransportError:
                    time.sleep(0.05)
            seen["main"] = httpx.get(f"http://127.0.0.1:{port}/metrics").status_code
            seen["metrics"] = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").status_code

        def close(self) -> None:
            pass

    monkeypatch.setattr(socket_mode, "SocketModeHandler", FakeSocketMode)
    result = CliRunner().invoke(
        cli,
        ["socket", "--host", "127.0.0.1"],
        env={
            "SLACK_BOT_TOKEN": "xoxb-x",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_APP_TOKEN": "xapp-x",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'socket.db'}",
            "PORT": str(port),
            "METRICS_PORT": str(metrics_port),
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
        },
    )
    assert result.exit_code == 0, result.output
    assert seen == {"health": 200, "main": 404, "metrics": 200}
