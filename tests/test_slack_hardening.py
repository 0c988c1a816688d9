"""Issue 12, items 1, 3, 8 and 11, through the real entry points: the body cap and the signature
check come before any parsing, malformed requests get a 4xx in one log line, a replayed signed
request runs once, DEBUG logs carry no response_url, token or message, and METRICS_PORT moves
/metrics off the public port."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import structlog
from slack_bolt import App
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

import handlers.app
from bot.fakes.hostile import click, malformed_requests
from bot.fakes.served import MB, free_port, peak_rss_mb, stream_junk
from bot.fakes.slack_signing import sign, slash_command_body
from bot.logs import configure_logging
from bot.store.db import Database
from bot.store.replays import SlackReplays
from tests.conftest import PEOPLE
from tests.test_serve_process import SECRET as SERVE_SECRET
from tests.test_serve_process import _serve
from tests.test_slack_http import SECRET, Bot, _text, run_bot, simulator  # noqa: F401 - fixtures

# -------------------------------------------------------------------------------------------
# Item 1: the body cap, against `serve` as its own process


def _serve_pid() -> int:
    """The pid of the `serve` child this test started."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if ppid == me and b"serve" in cmdline:
            return int(entry.name)
    raise AssertionError("no serve child process found")


def test_a_50_mb_unsigned_body_is_refused_at_the_cap_and_signed_commands_still_ack(tmp_path: Path) -> None:
    for base, slack, log_path in _serve(tmp_path, ""):
        pid = _serve_pid()
        before = peak_rss_mb(pid)
        started = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            upload = pool.submit(
                stream_junk,
                base,
                total=50 * MB,
                headers={"Content-Type": "application/json"},
                started=started,
            )
            assert started.wait(10)
            body = slash_command_body(
                text="whoami", user_id=PEOPLE["oncall"], response_url=slack.response_url("w")
            )
            sent_at = time.monotonic()
            response = httpx.post(
                f"{base}/slack/events", content=body, headers=sign(body, SERVE_SECRET), timeout=10
            )
            ack = time.monotonic() - sent_at
            status, sent = upload.result(timeout=60)
        assert status == 413
        # (what the client sent includes what the kernels' socket buffers took: a few MB on loopback)
        assert sent < 20 * MB, f"answered only after {sent} bytes"
        assert response.status_code == 200 and ack < 3.0, f"signed command acked in {ack:.2f} s"
        # A Content-Length beyond the cap is refused before any of the body is read.
        status, sent = stream_junk(base, total=50 * MB, headers={"Content-Length": str(50 * MB)})
        assert status == 413 and sent < 20 * MB
        peak = peak_rss_mb(pid)
        print(
            f"ack during the upload {ack:.3f} s; body bytes sent before the 413: {sent}; "
            f"peak RSS {before:.0f} -> {peak:.0f} MB"
        )
        assert peak < 300 and peak - before < 40, f"serve peaked at {peak:.0f} MB (from {before:.0f} MB)"
        assert slack.wait_for("response", timeout=5)[0].key == "w"  # the command was answered
        refusals = [
            json.loads(line) for line in log_path.read_text().splitlines() if '"request_refused"' in line
        ]
        assert [r["status"] for r in refusals] == [413, 413]
        assert "Traceback" not in log_path.read_text()


# -------------------------------------------------------------------------------------------
# Item 1: malformed requests, through the real app under uvicorn


@pytest.fixture
def bot(run_bot) -> Iterator[Bot]:
    yield from run_bot()


FORM, JSON = "application/x-www-form-urlencoded", "application/json"
CLICK = click(PEOPLE["oncall"])
MALFORMED = malformed_requests(SECRET, user_id=PEOPLE["oncall"])


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_request_gets_a_4xx_in_one_log_line_and_changes_nothing(
    bot: Bot, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    body, content_type, secret, changes, expected = MALFORMED[name]
    headers = {
        **(sign(body, secret, content_type=content_type) if secret else {"Content-Type": content_type}),
        **changes,
    }
    if not content_type:
        del headers["Content-Type"]
    with capture_logs() as logs:
        response = bot.http.post(
            f"{bot.url}/slack/events",
            content=body,
            headers={k: v.encode("latin-1") for k, v in headers.items()},
        )
    assert response.status_code == expected, response.text
    assert response.text and "Traceback" not in response.text
    loud = [(e["event"], e.get("status")) for e in logs if e["log_level"] in ("warning", "error", "critical")]
    assert loud == [("slack_refused", expected)]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    bot.assert_nothing_happened()


def test_whatever_bolt_raises_is_a_400_in_one_line_without_a_traceback(
    bot: Bot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def dispatch(_app: App, _request: object) -> None:
        raise KeyError("https://hooks.slack.com/actions/T0/1/SECRET")  # as a library might word it

    monkeypatch.setattr(App, "dispatch", dispatch)
    body = urlencode({"payload": json.dumps(CLICK)})
    with capture_logs() as logs:
        response = bot.http.post(f"{bot.url}/slack/events", content=body, headers=sign(body, SECRET))
    assert response.status_code == 400 and "Traceback" not in response.text
    assert [(e["event"], e.get("error")) for e in logs if e["log_level"] != "debug"] == [
        ("slack_refused", "KeyError")
    ]
    assert "SECRET" not in repr(logs) and not [r for r in caplog.records if r.exc_info]


def test_a_listener_error_is_logged_as_its_type_and_request_id_only(
    bot: Bot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    marker = "zebra4711"

    def fail(*_args: object, **_fields: object) -> None:
        raise RuntimeError(f"could not handle {marker} at https://hooks.slack.com/actions/T0/1/SECRET")

    monkeypatch.setattr(handlers.app.log, "warning", fail)  # the app_uninstalled listener's first step
    event = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0TEST",
            "api_app_id": "A0TEST",
            "event": {"type": "app_uninstalled", "text": marker},
            "event_id": "EvFail",
            "event_time": 1,
        }
    )
    with capture_logs() as logs:
        bot.http.post(
            f"{bot.url}/slack/events", content=event, headers=sign(event, SECRET, content_type=JSON)
        )
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert error.keys() == {"event", "log_level", "error", "request_id"}  # no exc_info: no traceback
    assert (error["event"], error["error"]) == ("slack_handler_error", "RuntimeError") and error["request_id"]
    assert marker not in repr(logs) and not [r for r in caplog.records if r.exc_info]


# -------------------------------------------------------------------------------------------
# Item 1: Slack's unsigned certificate check


def test_slacks_unsigned_ssl_check_is_answered_and_nothing_else_unsigned_is(bot: Bot) -> None:
    def post(body):
        return bot.http.post(
            f"{bot.url}/slack/events",
            content=body,
            headers={"Content-Type": FORM},
        )

    assert [(r.status_code, r.text) for r in (post("ssl_check=1&token=legacy"), post("ssl_check=1"))] == [
        (200, "")
    ] * 2
    for not_only_a_check in (
        "ssl_check=1&command=%2Fmenotime&text=scale+dev+2",
        "ssl_check=0",
        "ssl_check=1&ssl_check=1",
        "ssl_check=1&token=" + "x" * 600,
    ):
        assert post(not_only_a_check).status_code == 401, not_only_a_check
    bot.assert_nothing_happened()


# -------------------------------------------------------------------------------------------
# Item 3: a replay runs once, across replicas


def test_a_replayed_signed_scale_runs_once_even_on_another_replica(run_bot) -> None:
    with ThreadPoolExecutor(1) as pool:
        first, second = run_bot(), run_bot()  # two replicas on one database
        a, b = next(first), next(second)
        try:
            body = slash_command_body(
                text="scale dev 2", user_id=PEOPLE["developer"], response_url=a.slack.response_url("scale")
            )
            headers = sign(body, SECRET)
            assert a.http.post(f"{a.url}/slack/events", content=body, headers=headers).status_code == 200
            assert "Scaled dev to 2 tasks" in _text(a.answer("scale"))
            replays = [
                pool.submit(replica.http.post, f"{replica.url}/slack/events", content=body, headers=extra)
                for replica, extra in ((a, headers), (b, headers), (b, {**headers, "X-Slack-Retry-Num": "1"}))
            ]
            assert [r.result().status_code for r in replays] == [200, 200, 200]
            assert all(r.result().text == "" for r in replays)  # nothing for an attacker's Slack to show
            for replica in (a, b):
                replica.work.wait_idle()  # every copy's work has finished, on either replica
            assert len(a.slack.responses("scale")) == 1
            audit = a.core.audit.recent()
            assert [e.verb for e in audit if e.outcome != "replay"] == ["scale"]
            replayed = [e for e in audit if e.outcome == "replay"]
            # The first copy is in the trail; the copies after it are not (a captured request resent
            # for five minutes must not flood the audit trail).
            assert [(e.actor, e.rule) for e in replayed] == [(PEOPLE["developer"], "slack-replay")]
        finally:
            for gen in (second, first):
                next(gen, None)


@pytest.fixture
def revoked(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Each `slack_app_access_revoked` line the event listener logs (its fields), recorded at the
    listener's own logger. Not structlog's capture_logs: it swaps the process-wide configuration, and
    under pytest-xdist these lines were seen printed past it while the capture was open."""
    lines: list[dict[str, object]] = []
    real_log = handlers.app.log

    class Recording:
        def __getattr__(self, name: str) -> object:
            return getattr(real_log, name)

        def warning(self, event: str, **fields: object) -> object:
            if event == "slack_app_access_revoked":
                lines.append(fields)
            return real_log.warning(event, **fields)

    monkeypatch.setattr(handlers.app, "log", Recording())
    return lines


def test_slacks_retry_of_an_event_is_answered_and_not_run(bot: Bot, revoked: list[dict[str, object]]) -> None:
    """Slack retries an event it thinks was slow, perhaps signed anew: answered, not run twice."""
    event = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0TEST",
            "api_app_id": "A0TEST",
            "event": {"type": "app_uninstalled"},
            "event_id": "Ev1",
            "event_time": 1,
        }
    )
    first = bot.http.post(
        f"{bot.url}/slack/events",
        content=event,
        headers=sign(event, SECRET, content_type="application/json"),
    )
    retried = bot.http.post(
        f"{bot.url}/slack/events",
        content=event,
        headers={
            **sign(event, SECRET, timestamp=int(time.time()) - 1, content_type="application/json"),
            "X-Slack-Retry-Num": "1",
        },
    )
    assert first.status_code == retried.status_code == 200
    assert revoked == [{"event_type": "app_uninstalled"}]  # the first delivery ran, the retry did not
    [audited] = bot.core.audit.recent()
    assert (audited.outcome, audited.rule) == ("replay", "slack-retry")


def test_an_event_meeting_a_database_blip_runs_once(
    bot: Bot, monkeypatch: pytest.MonkeyPatch, revoked: list[dict[str, object]]
) -> None:
    """The first delivery meets a database blip: the check waits for the database (the event is
    neither lost nor refused); Slack's retries of it, signed anew with X-Slack-Retry-Num, do not
    run again and only the first of them is audited."""
    event = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0TEST",
            "api_app_id": "A0TEST",
            "event": {"type": "app_uninstalled"},
            "event_id": "EvRetry",
            "event_time": 1,
        }
    )
    real_seen = SlackReplays._seen
    outage = iter([True])

    def seen(self: SlackReplays, *args: object, **kwargs: object) -> int:
        if next(outage, False):
            raise OperationalError("INSERT", {}, Exception("connection refused"))
        return real_seen(self, *args, **kwargs)

    monkeypatch.setattr(SlackReplays, "_seen", seen)
    now = int(time.time())
    deliveries = [
        sign(event, SECRET, timestamp=now - 2, content_type=JSON),
        {**sign(event, SECRET, timestamp=now - 1, content_type=JSON), "X-Slack-Retry-Num": "1"},
        {**sign(event, SECRET, timestamp=now, content_type=JSON), "X-Slack-Retry-Num": "2"},
    ]
    statuses = [
        bot.http.post(f"{bot.url}/slack/events", content=event, headers=h).status_code for h in deliveries
    ]
    assert statuses == [200, 200, 200]
    assert revoked == [{"event_type": "app_uninstalled"}]  # the first delivery ran, once
    assert [(e.outcome, e.rule) for e in bot.core.audit.recent()] == [("replay", "slack-retry")]


def test_the_replay_store_admits_a_request_once_under_concurrency_and_forgets_it_after_the_window(
    db: Database,
) -> None:
    replays = SlackReplays(db)
    now = datetime.now(UTC)
    stamp = int(now.timestamp())
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda _: replays.seen_before(timestamp=stamp, signature="v0=abc", at=now), range(8))
        )
    assert sorted(results) == list(range(8))  # one first sighting, and each copy counted once
    assert replays.seen_before(timestamp=stamp, signature="v0=other", at=now) == 0  # another request
    assert replays.prune(now=now + timedelta(minutes=5)) == 0  # still replayable: kept
    assert replays.prune(now=now + timedelta(minutes=7)) == 2
    assert (
        replays.seen_before(timestamp=stamp, signature="v0=abc", at=now) == 0
    )  # stale now: verification refuses it


# -------------------------------------------------------------------------------------------
# Item 8: nothing secret in logs, at DEBUG


def test_debug_logs_carry_no_response_url_token_or_message(tmp_path: Path) -> None:
    marker = "zebra4711"
    with closing(_serve(tmp_path, "", extra_env={"LOG_LEVEL": "DEBUG"})) as serve:
        base, slack, log_path = next(serve)
        slack.fail_next("response", status=500, times=1)  # slack_sdk logs the URL it retries
        body = slash_command_body(
            text=f"status prod {marker}",
            user_id=PEOPLE["oncall"],
            response_url=slack.response_url("leak-key"),
        )
        assert (
            httpx.post(
                f"{base}/slack/events", content=body, headers=sign(body, SERVE_SECRET), timeout=5
            ).status_code
            == 200
        )
        slack.wait_for("response", count=2, timeout=10)
    # serve has stopped (SIGTERM, waited for): the command's work finished on the way out, and
    # every line serve wrote is in the file.
    logs = log_path.read_text()
    assert '"event": "shutdown_complete"' in logs
    assert '"level": "debug"' in logs  # DEBUG was on
    for secret in ("leak-key", "/response/", marker, "xoxb-serve-test", SERVE_SECRET):
        assert secret not in logs, f"{secret!r} logged"


def test_a_library_line_with_a_response_url_or_token_is_redacted() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=stream)
    url = "https://hooks.slack.com/commands/T0TEST/1234/abcdefSECRET"
    logging.getLogger("some.library").warning("Going to retry the same request: POST %s", url)
    structlog.get_logger("menotime.test").error("oops", detail=f"token xoxb-123-456-abcSECRET at {url}")
    try:
        raise RuntimeError(f"failed {url}")
    except RuntimeError:
        logging.getLogger("another.library").exception("crashed")
    text = stream.getvalue()
    assert "SECRET" not in text and "hooks.slack.com/[redacted]" in text and "xoxb-[redacted]" in text


URL = "https://hooks.slack.com/commands/T0TEST/1234/abcdefSECRET"
HIDDEN = {
    "nested in a dict and a list": {"request": {"urls": [URL], "auth": {"bot": "xoxb-1-2-SECRET"}}},
    "JSON-escaped": json.dumps({"response_url": URL}).replace("/", "\\/"),
    "percent-encoded": urlencode({"response_url": URL, "text": "hi"}),
    "twice percent-encoded": urlencode({"u": urlencode({"response_url": URL})}),
    "app and user tokens": "xapp-1-A0-SECRET and xoxp-9-SECRET and xoxa-2-SECRET and xoxr-3-SECRET",
}


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("form", list(HIDDEN))
def test_a_response_url_or_token_is_redacted_however_it_is_written(fmt: str, form: str) -> None:
    stream = io.StringIO()
    configure_logging(fmt=fmt, level="DEBUG", stream=stream)
    structlog.get_logger("menotime.test").warning("oops", detail=HIDDEN[form])
    logging.getLogger("some.library").warning("Going to retry: %s", HIDDEN[form])
    assert "SECRET" not in stream.getvalue() and "[redacted]" in stream.getvalue()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_an_exception_message_in_a_traceback_is_redacted_in_either_format(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging(fmt=fmt, level="INFO", stream=stream)
    for logger in (logging.getLogger("a.library"), structlog.get_logger("menotime.test")):
        try:
            raise RuntimeError(f"failed {URL} with xoxb-123-456-abcSECRET")
        except RuntimeError:
            logger.exception("crashed")
    text = stream.getvalue()
    assert text.count("RuntimeError: failed") == 2  # the tracebacks are there, their secrets are not
    assert "SECRET" not in text and "hooks.slack.com/[redacted]" in text and "xoxb-[redacted]" in text


# -------------------------------------------------------------------------------------------
# Item 11: /metrics on METRICS_PORT only


def test_metrics_port_serves_metrics_and_the_main_port_does_not(tmp_path: Path) -> None:
    metrics_port = free_port()
    for base, slack, _log in _serve(tmp_path, "", extra_env={"METRICS_PORT": str(metrics_port)}):
        body = slash_command_body(
            text="whoami", user_id=PEOPLE["oncall"], response_url=slack.response_url("m")
        )
        assert (
            httpx.post(
                f"{base}/slack/events", content=body, headers=sign(body, SERVE_SECRET), timeout=5
            ).status_code
            == 200
        )
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 404
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert 'menotime_slack_requests_total{status="200"} 1.0' in metrics.text
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/slack/events", timeout=5).status_code == 404
