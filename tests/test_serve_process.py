"""The Done-when, through the real entry point: `menotime-bot serve` as its own process, pointed
at moto's server and a fake Slack, answers a signed `/menotime status prod` at the response_url
within 3 seconds, and logs it as one JSON line with the request id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.config import load_config
from bot.simulator import Simulator
from tests.conftest import PEOPLE
from tests.fakes.server import free_port
from tests.fakes.signing import sign, slash_command_body
from tests.fakes.slack_api import FakeSlack

SECRET = "serve-process-signing-secret"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, FakeSlack, Path]]:
    config_path = tmp_path / "menotime.yaml"
    config_path.write_text(f"roles:\n  oncall: {{users: [{PEOPLE['oncall']}]}}\n")
    log_path = tmp_path / "serve.log"
    with Simulator(region="us-west-1") as sim, FakeSlack() as slack:
        sim.seed(load_config(config_path))
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AWS_", "MENOTIME_"))},
            "SLACK_BOT_TOKEN": "xoxb-serve-test",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
            "AWS_ENDPOINT_URL": sim.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-west-1",
            "MENOTIME_CONFIG": str(config_path),
            "LOG_FORMAT": "json",
            "PORT": str(port),
        }
        with log_path.open("w") as log:
            process = subprocess.Popen([sys.executable, "-m", "handlers", "serve", "--host", "127.0.0.1"],
                                       env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                base = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise AssertionError(f"serve did not become ready:\n{log_path.read_text()}")
                    time.sleep(0.1)
                yield base, slack, log_path
            finally:
                process.terminate()
                process.wait(timeout=10)


def test_signed_status_prod_is_answered_within_three_seconds(served: tuple[str, FakeSlack, Path]) -> None:
    base, slack, log_path = served
    body = slash_command_body(text="status prod", user_id=PEOPLE["oncall"], response_url=slack.response_url("e2e"))
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

    time.sleep(0.2)
    # Every line the process wrote is JSON, the libraries' (uvicorn, Bolt) included.
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    [command] = [line for line in lines if line.get("event") == "command"]
    assert command["verb"] == "status" and command["env"] == "prod" and command["outcome"] == "ok"
    assert command["user"] == PEOPLE["oncall"] and command["request_id"] and "latency_ms" in command
    assert "xoxb-serve-test" not in log_path.read_text() and SECRET not in log_path.read_text()
