"""Tests of the Slack stand-ins themselves (bot/fakes: FakeSlack and the request signing).

Other tests trust FakeSlack's records and the signing helpers; if these were
wrong, those tests would pass or fail for the wrong reasons. Every check here
goes through real slack_sdk clients so the fake is judged by what the bot uses.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.fakes.fixture_files import FIXTURES
from bot.fakes.slack_api import FakeSlack
from bot.fakes.slack_signing import sign, signature, slash_command_body

VECTOR_PATH = FIXTURES / "slack" / "slack_signing_test_vector.json"
SECRET = "test-signing-secret"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


def client_for(fake: FakeSlack, token: str = "xoxb-test") -> WebClient:
    """A WebClient without retry handlers, so injected failures surface immediately."""
    return WebClient(token=token, base_url=fake.api_url, retry_handlers=[], timeout=5)


# ---------------------------------------------------------------------- FakeSlack


def test_post_message_is_recorded_with_channel_text_and_blocks(fake: FakeSlack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    first = client_for(fake).chat_postMessage(channel="C123", text="hello", blocks=blocks)
    second = client_for(fake).chat_postMessage(channel="C123", text="again")

    assert first["ok"] and first["channel"] == "C123"
    assert float(second["ts"]) > float(first["ts"])
    call = fake.calls_to("chat.postMessage")[0]
    assert (call.params["channel"], call.params["text"]) == ("C123", "hello")
    assert call.params["blocks"] == blocks
    assert call.header("authorization") == "Bearer xoxb-test"


def test_auth_test_identifies_the_bot(fake: FakeSlack) -> None:
    answer = client_for(fake).auth_test()
    assert (answer["user_id"], answer["team_id"], answer["bot_id"]) == ("UBOT", "T0TEST", "B0BOT")


def test_tokens_are_checked(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as invalid:
        client_for(fake, token="xoxp-user-token").auth_test()
    assert invalid.value.response["error"] == "invalid_auth"

    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=fake.api_url, retry_handlers=[]).auth_test()
    assert missing.value.response["error"] == "not_authed"

    fake.accepted_tokens.add("xoxp-user-token")
    assert client_for(fake, token="xoxp-user-token").auth_test()["ok"]


def test_usergroups_users_list_returns_configured_members(fake: FakeSlack) -> None:
    fake.usergroups["S0ONCALL"] = ["U1", "U2"]
    client = client_for(fake)

    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as unknown:
        client.usergroups_users_list(usergroup="S0NOPE")
    assert unknown.value.response["error"] == "no_such_subteam"


def test_rate_limit_surfaces_as_429_with_retry_after(fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    client = client_for(fake)

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C1", text="x")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert raised.value.response["error"] == "ratelimited"

    assert client.chat_postMessage(channel="C1", text="x")["ok"]  # fault consumed
    assert [c.answered_status for c in fake.calls_to("chat.postMessage")] == [429, 200]


def test_error_fault_answers_200_with_ok_false_and_wildcard_matches_anything(fake: FakeSlack) -> None:
    fake.fail_next("*", error="channel_not_found", times=2)
    client = client_for(fake)

    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            client.conversations_info(channel="C1")
        assert raised.value.response.status_code == 200
        assert raised.value.response["error"] == "channel_not_found"
    assert client.conversations_info(channel="C1")["channel"]["id"] == "C1"


def test_response_url_posts_are_recorded_by_key(fake: FakeSlack) -> None:
    sent = WebhookClient(fake.response_url("cmd-1")).send(text="working on it", response_type="ephemeral")
    WebhookClient(fake.response_url("cmd-2")).send(text="other")

    assert (sent.status_code, sent.body) == (200, "ok")
    assert fake.responses("cmd-1") == [{"text": "working on it", "response_type": "ephemeral"}]
    assert len(fake.responses()) == 2


def test_response_url_fault_is_seen_by_the_sender_and_still_recorded(fake: FakeSlack) -> None:
    fake.fail_next("response", status=500)
    sent = WebhookClient(fake.response_url("cmd-1")).send(text="boom")

    assert sent.status_code == 500
    (call,) = fake.calls_to("response")
    assert (call.key, call.ok) == ("cmd-1", False)


def test_files_upload_v2_round_trip(fake: FakeSlack) -> None:
    answer = client_for(fake).files_upload_v2(
        channel="C1", content="report body", filename="r.txt", title="Report"
    )

    assert answer["file"]["title"] == "Report"
    (upload,) = fake.calls_to("upload")
    assert upload.body == b"report body"
    assert [c.method for c in fake.calls] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]


def test_wait_for_sees_calls_from_other_threads(fake: FakeSlack) -> None:
    client = client_for(fake)
    worker = threading.Timer(0.05, lambda: client.chat_postMessage(channel="C1", text="later"))
    worker.start()
    try:
        (call,) = fake.wait_for("chat.postMessage", timeout=5)
    finally:
        worker.join()
    assert call.params["text"] == "later"


def test_wait_for_timeout_explains_what_arrived(fake: FakeSlack) -> None:
    client_for(fake).chat_postMessage(channel="C9", text="not what you waited for")

    started = time.monotonic()
    with pytest.raises(AssertionError) as raised:
        fake.wait_for("views.open", timeout=0.2)
    assert time.monotonic() - started < 2
    message = str(raised.value)
    assert "expected 1 call(s) to 'views.open' within 0.2s, got 0" in message
    assert "chat.postMessage" in message and "C9" in message


def test_reset_forgets_calls_and_faults(fake: FakeSlack) -> None:
    fake.fail_next("auth.test")
    client_for(fake).chat_postMessage(channel="C1", text="x")
    fake.reset()

    assert fake.calls == []
    assert client_for(fake).auth_test()["ok"]


# ---------------------------------------------------------------------- signing


def test_signed_slash_command_verifies_with_slack_sdk() -> None:
    body = slash_command_body(
        text="deploy staging", user_id="U1", response_url="http://127.0.0.1:1/response/x"
    )
    headers = sign(body, SECRET)

    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert SignatureVerifier(SECRET).is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    assert not SignatureVerifier(SECRET).is_valid_request(body + "&x=1", headers)


def test_stale_timestamp_is_rejected_by_the_verifier() -> None:
    body = slash_command_body(text="", user_id="U1", response_url="http://x/")
    headers = sign(body, SECRET, timestamp=int(time.time()) - 600)
    assert not SignatureVerifier(SECRET).is_valid_request(body, headers)


def test_slash_command_body_has_slack_fields() -> None:
    body = slash_command_body(text="status prod", user_id="U42", response_url="http://h/response/k")
    fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    assert fields["command"] == "/menotime" and fields["text"] == "status prod"
    assert fields["response_url"] == "http://h/response/k"
    assert fields["is_enterprise_install"] == "false"
    assert {"token", "team_domain", "channel_name", "api_app_id", "trigger_id"} <= fields.keys()


def test_documented_slack_vector_is_reproduced() -> None:
    vector = json.loads(VECTOR_PATH.read_text())
    ts = int(vector["x_slack_request_timestamp"])

    headers = sign(vector["raw_body"], vector["signing_secret"], timestamp=ts)
    assert headers["X-Slack-Signature"] == vector["x_slack_signature"]
    assert signature(vector["raw_body"].encode(), vector["signing_secret"], ts) == vector["x_slack_signature"]

    class FrozenClock(Clock):
        def now(self) -> float:
            return float(ts)

    verifier = SignatureVerifier(vector["signing_secret"], clock=FrozenClock())
    assert verifier.is_valid(vector["raw_body"], str(ts), vector["x_slack_signature"])
