"""Issue 12's attacks, run again as an outsider against a real `menotime-bot serve` (its Done-when).

    .venv/bin/python -m bench.attack

`serve` runs as its own process, as the tests start it (bot/fakes/served.py: moto's server for AWS,
SQLite in a temporary folder, a fake Slack Web API, a signing secret), with LOG_LEVEL=DEBUG and
SNS_TOPIC_ARNS unset. While a background client sends a signed ``/menotime status dev`` every
200 ms and times each ack, the attacks run in turn, each printing one line: what was expected,
what happened, PASS or FAIL.

1. An unsigned 400 MB POST /slack/events streamed in chunks (once; once with the length
   declared; then from 4 connections at once for 3 s): 413 each, serve's peak RSS under 300 MB.
2. Malformed requests (``{not json``, non-UTF-8, a timestamp ``abc``, a signed block_actions with
   ``actions: []``; unsigned, and signed as a captured or insider request would be): a 4xx each,
   never a 500 or a traceback.
3. A genuinely AWS-signed notification (the real fixture, its certificate pinned in
   SNS_CERT_CACHE_DIR) from a topic nobody allowed: 403, nothing posted.
4. A captured signed ``scale dev 2`` sent 3 more times: the scale runs once.
5. ``<@U…>`` in an alarm's description. This needs an allow-listed topic, so a second `serve`
   starts with one in prod's ``alarm_topics`` (SNS_TOPIC_ARNS still unset) and a notification
   signed by a key made for the run, its certificate pinned: the post names the user inertly.
   The foreign topic of 3 is refused there too.
6. Both processes' DEBUG logs hold no response_url, token, signing secret or message text
   (a failed answer makes slack_sdk log the URL it retries).

Then the acks of the signed commands sent during the attacks: count, median, p95, max; PASS if
every one was 200 within Slack's 3 s and was answered. The exit status is 0 only if all passed.
The `serve` launcher, the streaming client, the malformed cases, the hostile markup and the SNS
signing key are bot/fakes', shared with the hardening tests, so the bench attacks what they test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench._common import ALARM_FIXTURE, FIXTURES, ms, percentile
from bot.fakes.hostile import HOSTILE, alarm_message, malformed_requests
from bot.fakes.served import MB, peak_rss_mb, serve_process, stream_junk
from bot.fakes.slack_api import RESPONSE, FakeSlack
from bot.fakes.slack_signing import sign, slash_command_body
from bot.fakes.sns_signer import OWN_URL, Own, pin_certificate

SECRET = "attack-signing-secret"  # serve's SLACK_SIGNING_SECRET, which signed commands are signed with
PEOPLE = {"developer": "U0DEV", "oncall": "U0ONCALL1"}
ROLES = "roles:\n" + "".join(f"  {role}: {{users: [{user}]}}\n" for role, user in PEOPLE.items())
CLOUDWATCH = FIXTURES / "cloudwatch"

SLACK_DEADLINE = 3.0  # Slack drops a slash command not acked within 3 s
PROBE_INTERVAL = 0.2
PROBE_TEXT = "status dev"
PROBE_TIMEOUT = 10.0  # past Slack's 3 s: a slow ack is measured, not dropped
RSS_LIMIT_MB = 300
ATTACK_BYTES = 400 * MB
FLOOD_SECONDS = 3.0
FLOOD_CONNECTIONS = 4
SETTLE = 1.5  # seconds for anything a refused request might still have set off to show
ALARM = "menotime-prod-api-5xx"
OWN_TOPIC = "arn:aws:sns:us-west-1:123456789012:menotime-prod-alarms"
SNS_HEADERS = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
MARKER = "zebra4711"  # message text that must not reach the log
MALFORMED = malformed_requests(SECRET, user_id=PEOPLE["oncall"])  # signed ones signed with serve's secret
MALFORMED_CASES = (
    "unsigned {not json",
    "signed {not json",
    "unsigned non-UTF-8",
    "signed non-UTF-8",
    "timestamp abc",
    "signed block_actions with actions: []",
)


# --------------------------------------------------------------------------------------------
# The signed commands sent meanwhile


@dataclass(frozen=True)
class Ack:
    key: str  # the response_url key its answer arrives under
    sent: float  # perf_counter
    seconds: float
    status: int  # 0: no HTTP answer within PROBE_TIMEOUT


class Probe:
    """A signed ``/menotime status dev`` every PROBE_INTERVAL s from a thread, one at a time."""

    def __init__(self, base: str, slack: FakeSlack, name: str) -> None:
        self._base, self._slack, self._name = base, slack, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{name}", daemon=True)
        self.acks: list[Ack] = []

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=PROBE_TIMEOUT + 5)

    def _run(self) -> None:
        started = time.perf_counter()
        with httpx.Client(timeout=PROBE_TIMEOUT) as http:
            for index in itertools.count():
                key = f"probe-{self._name}-{index}"
                body = slash_command_body(
                    text=PROBE_TEXT, user_id=PEOPLE["developer"], response_url=self._slack.response_url(key)
                )
                headers = sign(body, SECRET)
                sent = time.perf_counter()
                try:
                    status = http.post(
                        f"{self._base}/slack/events", content=body, headers=headers
                    ).status_code
                except httpx.HTTPError:
                    status = 0
                self.acks.append(Ack(key, sent, time.perf_counter() - sent, status))
                if self._stop.wait(max(0.0, started + (index + 1) * PROBE_INTERVAL - time.perf_counter())):
                    return

    def during(self, start: float, end: float) -> list[Ack]:
        return [a for a in self.acks if a.sent < end and a.sent + a.seconds > start]

    def unanswered(self, timeout: float) -> list[str]:
        """Keys of the acked probes whose answer has not reached Slack after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            arrived = {call.key for call in self._slack.calls_to(RESPONSE)}
            missing = [a.key for a in self.acks if a.status == 200 and a.key not in arrived]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# Attacks


@dataclass
class Target:
    base: str
    slack: FakeSlack
    log: Path
    pid: int
    aws: Any  # the simulator's gateway
    database: Path
    probe: Probe
    certificates: Path  # SNS_CERT_CACHE_DIR
    unanswered: list[str] = field(default_factory=list)  # probe keys acked but never answered
    attacked: tuple[float, float] = (0.0, 0.0)  # perf_counter span of the attacks on it


@dataclass
class Outcome:
    name: str
    expected: str
    got: str
    ok: bool | None  # None: skipped
    probes: list[Ack] = field(default_factory=list)

    def line(self) -> str:
        verdict = "SKIP" if self.ok is None else "PASS" if self.ok else "FAIL"
        slowest = max((a.seconds for a in self.probes), default=math.nan)
        meanwhile = (
            f"[{len(self.probes)} signed ack(s) meanwhile, max {ms(slowest)} ms]"
            if self.probes
            else "[no signed ack meanwhile]"
        )
        return f"{self.name:<44} | expected {self.expected:<36} | got {self.got} {meanwhile} | {verdict}"


Attack = Callable[[Target], Iterator[Outcome]]


def _timed(attack: Attack) -> Attack:
    """Charges each outcome with the signed acks that overlapped the attack that produced it."""

    def run(target: Target) -> Iterator[Outcome]:
        start = time.perf_counter()
        for outcome in attack(target):
            outcome.probes = target.probe.during(start, time.perf_counter())
            yield outcome
            start = time.perf_counter()

    return run


def _statuses(statuses: Sequence[int]) -> str:
    counts: dict[int, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{status} x{n}" if n > 1 else str(status) for status, n in sorted(counts.items()))


def _oversized(base: str, headers: dict[str, str]) -> tuple[int, int]:
    """The status (0: no HTTP answer) and the body bytes sent before it."""
    try:
        return stream_junk(base, total=ATTACK_BYTES, headers=headers)
    except (OSError, IndexError, ValueError):
        return 0, 0


@_timed
def oversized_bodies(target: Target) -> Iterator[Outcome]:
    expected = f"413, serve VmHWM < {RSS_LIMIT_MB} MB"

    def outcome(name: str, results: list[tuple[int, int]]) -> Outcome:
        statuses, sent = [s for s, _ in results], [n for _, n in results]
        peak = peak_rss_mb(target.pid)
        return Outcome(
            name,
            expected,
            f"{_statuses(statuses)} after <= {max(sent) / MB:.1f} MB sent; VmHWM {peak:.0f} MB",
            all(s == 413 for s in statuses) and peak < RSS_LIMIT_MB,
        )

    yield outcome(
        "1a 400 MB unsigned POST, chunked", [_oversized(target.base, {"Content-Type": "application/json"})]
    )
    yield outcome(
        "1b 400 MB unsigned POST, Content-Length",
        [_oversized(target.base, {"Content-Type": "application/json", "Content-Length": str(ATTACK_BYTES)})],
    )

    def flood() -> list[tuple[int, int]]:
        results, deadline = [], time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            results.append(_oversized(target.base, {"Content-Type": "application/json"}))
        return results

    with ThreadPoolExecutor(FLOOD_CONNECTIONS) as pool:
        floods = [pool.submit(flood) for _ in range(FLOOD_CONNECTIONS)]
        results = [r for f in floods for r in f.result()]
    yield outcome(f"1c the same, {FLOOD_CONNECTIONS} connections for {FLOOD_SECONDS:.0f} s", results)


@_timed
def malformed(target: Target) -> Iterator[Outcome]:
    with httpx.Client(timeout=10) as http:
        for name in MALFORMED_CASES:
            case = MALFORMED[name]
            if case.secret is None:
                headers = {"Content-Type": case.content_type}
            else:
                headers = sign(case.body, case.secret, content_type=case.content_type)
            status = http.post(
                f"{target.base}/slack/events",
                content=case.body,
                headers={k: v.encode("latin-1") for k, v in {**headers, **case.changes}.items()},
            ).status_code
            yield Outcome(f"2  {name}", "4xx, never 500", str(status), 400 <= status < 500)
    time.sleep(0.2)
    tracebacks = target.log.read_text(errors="replace").count("Traceback")
    yield Outcome("2  ...and in serve's log", "no traceback", f"{tracebacks} traceback(s)", tracebacks == 0)


def real_signed_fixture() -> tuple[bytes, str] | None:
    """The real AWS-signed notification and its SigningCertURL, or None without the fixtures."""
    fixture = CLOUDWATCH / "real-signed-metric-alarm-sigv1.json"
    if not fixture.exists():
        return None
    body = fixture.read_bytes()
    return body, json.loads(body)["SigningCertURL"]


def _foreign_topic(name: str, expected: str) -> Attack:
    @_timed
    def attack(target: Target) -> Iterator[Outcome]:
        fixture = real_signed_fixture()
        if fixture is None:
            yield Outcome(name, expected, f"no fixture at {CLOUDWATCH}", None)
            return
        before = len(target.slack.calls_to("chat.postMessage"))
        response = httpx.post(f"{target.base}/sns", content=fixture[0], headers=SNS_HEADERS, timeout=10)
        time.sleep(SETTLE)
        posts = len(target.slack.calls_to("chat.postMessage")) - before
        yield Outcome(
            name,
            expected,
            f"{response.status_code} ({response.text[:60]}...), {posts} post(s)",
            response.status_code == 403 and posts == 0,
        )

    return attack


foreign_topic_closed = _foreign_topic("3  AWS-signed alarm, no allow-list", "403, nothing posted")
foreign_topic_listed = _foreign_topic("3b AWS-signed alarm, topic not allow-listed", "403, nothing posted")


@_timed
def replay(target: Target) -> Iterator[Outcome]:
    body = slash_command_body(
        text="scale dev 2",
        user_id=PEOPLE["developer"],
        response_url=target.slack.response_url("replayed-scale"),
    )
    captured = sign(body, SECRET)

    def send(_: int = 0) -> int:
        return httpx.post(
            f"{target.base}/slack/events", content=body, headers=captured, timeout=10
        ).status_code

    first = send()
    deadline = time.monotonic() + 10
    while not target.slack.responses("replayed-scale") and time.monotonic() < deadline:
        time.sleep(0.05)
    with ThreadPoolExecutor(3) as pool:
        copies = list(pool.map(send, range(3)))
    time.sleep(SETTLE)
    answers = target.slack.responses("replayed-scale")
    scaled = "Scaled dev to 2 tasks" in json.dumps(answers[:1])
    desired = target.aws.call(
        "ecs", "describe_services", cluster="menotime-dev-cluster", services=["menotime-dev-service"]
    )["services"][0]["desiredCount"]
    with closing(sqlite3.connect(f"file:{target.database}?mode=ro", uri=True)) as db:
        runs = db.execute("select count(*) from audit_events where verb = 'scale'").fetchone()[0]
        replays = db.execute("select count(*) from audit_events where outcome = 'replay'").fetchone()[0]
    got = (
        f"{first} then {_statuses(copies)}; {len(answers)} answer(s), scaled={scaled}, desiredCount {desired}, "
        f"audit: {runs} scale, {replays} replay"
    )
    yield Outcome(
        "4  captured signed `scale dev 2`, resent 3x",
        "runs once, replay audited",
        got,
        first == 200
        and copies == [200] * 3
        and len(answers) == 1
        and scaled
        and desired == 2
        and runs == 1
        and replays >= 1,
    )


@_timed
def mention_in_alarm(target: Target) -> Iterator[Outcome]:
    name, expected = "5  <@U…> and other markup in an alarm", "posted, every mention inert"
    if not ALARM_FIXTURE.exists():
        yield Outcome(name, expected, f"no fixture at {ALARM_FIXTURE}", None)
        return
    own = Own(
        not_before=datetime.now(UTC) - timedelta(hours=1), not_after=datetime.now(UTC) + timedelta(hours=1)
    )
    pin_certificate(target.certificates, OWN_URL, own.pem)  # as an install pins AWS's: read when named
    now = datetime.now(UTC).replace(microsecond=0)
    alarm = json.loads(alarm_message(ALARM_FIXTURE, name=ALARM, state="ALARM", old="OK", at=now))
    alarm["AlarmDescription"] = "Page " + " ".join(HOSTILE) + " now"
    alarm["NewStateReason"] = "Threshold Crossed <@U123ABC>"
    message = own.message(
        MessageId="attack-mention-1",
        TopicArn=OWN_TOPIC,
        Message=json.dumps(alarm),
        at=now,
        Subject=f'ALARM: "{ALARM}" <@U123ABC>',
    )
    status = httpx.post(
        f"{target.base}/sns", content=json.dumps(message).encode(), headers=SNS_HEADERS, timeout=10
    ).status_code
    deadline = time.monotonic() + 10
    posts: list[str] = []
    while not posts and time.monotonic() < deadline:
        time.sleep(0.1)
        posts = [
            text
            for call in target.slack.calls_to("chat.postMessage")
            if ALARM in (text := json.dumps(call.params, ensure_ascii=False))
        ]
    live = sorted({markup for text in posts for markup in HOSTILE if markup in text})
    readable = bool(posts) and all("U123ABC" in text for text in posts)
    got = f"{status}, {len(posts)} post(s), live markup: {live or 'none'}, U123ABC still readable: {readable}"
    yield Outcome(
        name,
        expected,
        got,
        status == 200 and bool(posts) and not live and readable,
    )


def secrets_in_logs(logs: Sequence[Path]) -> Attack:
    @_timed
    def attack(target: Target) -> Iterator[Outcome]:
        # A failed answer makes slack_sdk retry, logging the URL at DEBUG; a marker stands for a message.
        target.slack.fail_next(RESPONSE, status=500)
        body = slash_command_body(
            text=f"{PROBE_TEXT} {MARKER}",
            user_id=PEOPLE["oncall"],
            response_url=target.slack.response_url("debug-leak"),
        )
        httpx.post(f"{target.base}/slack/events", content=body, headers=sign(body, SECRET), timeout=10)
        deadline = time.monotonic() + 10
        while len(target.slack.responses("debug-leak")) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        text = "\n".join(log.read_text(errors="replace") for log in logs)
        leaks = {
            "response_url": "/response/" in text,
            "token": re.search(r"xox[bp]-(?!\[redacted\])", text) is not None,
            "signing secret": SECRET in text,
            "message text": MARKER in text,
        }
        found = [name for name, leaked in leaks.items() if leaked]
        debug = text.count('"level": "debug"')
        got = f"{debug} DEBUG lines, {len(text.splitlines())} in all; leaked: {found or 'nothing'}"
        yield Outcome(
            "6  serve's DEBUG logs (both processes)",
            "no response_url/token/secret/text",
            got,
            debug > 0 and not found,
        )

    return attack


# --------------------------------------------------------------------------------------------
# Running


@contextmanager
def served(workdir: Path, config: str, env: dict[str, str], name: str) -> Iterator[Target]:
    workdir.mkdir()
    with serve_process(workdir, ROLES + config, secret=SECRET, env=env) as running:
        with Probe(running.base, running.slack, name) as probe:
            target = Target(
                base=running.base,
                slack=running.slack,
                log=running.log,
                pid=running.pid,
                aws=running.simulator.gateway(),
                database=running.database,
                probe=probe,
                certificates=Path(env["SNS_CERT_CACHE_DIR"]),
            )
            yield target
        target.unanswered = probe.unanswered(timeout=15)  # while the fake Slack still listens


def pin_certificates(cache: Path) -> None:
    cache.mkdir()
    fixture = real_signed_fixture()
    if fixture is not None:
        pin_certificate(cache, fixture[1], (CLOUDWATCH / fixture[1].rsplit("/", 1)[1]).read_bytes())


def run(attacks: Sequence[Attack], target: Target) -> list[Outcome]:
    outcomes = []
    time.sleep(1.0)  # the probe under way first
    start = time.perf_counter()
    for attack in attacks:
        for outcome in attack(target):
            print(outcome.line(), flush=True)
            outcomes.append(outcome)
    target.attacked = (start, time.perf_counter())
    return outcomes


def ack_summary(acks: list[Ack], unanswered: int) -> tuple[str, bool]:
    seconds = [a.seconds for a in acks]
    failed = sum(1 for a in acks if a.status != 200)
    worst = max(seconds, default=math.nan)
    ok = bool(acks) and failed == 0 and unanswered == 0 and worst < SLACK_DEADLINE
    return (
        f"signed `/menotime {PROBE_TEXT}` acks during the attacks: count {len(acks)}, "
        f"median {ms(percentile(seconds, 50))} ms, p95 {ms(percentile(seconds, 95))} ms, max {ms(worst)} ms; "
        f"not 200: {failed}; acked but unanswered: {unanswered} | target max < {SLACK_DEADLINE:.0f} s | "
        f"{'PASS' if ok else 'FAIL'}"
    ), ok


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m bench.attack", description=__doc__.split("\n")[0]).parse_args(
        argv
    )
    os.environ.pop("SNS_TOPIC_ARNS", None)  # closed by default is what is attacked
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="menotime-attack-") as tmp:
        root = Path(tmp)
        pin_certificates(root / "certs")
        env = {
            "LOG_LEVEL": "DEBUG",
            "SNS_CERT_CACHE_DIR": str(root / "certs"),
            "SNS_MAX_AGE_SECONDS": str(10 * 365 * 24 * 3600),
        }  # the real fixture was sent long ago
        print(
            f"`serve` with LOG_LEVEL=DEBUG, SNS_TOPIC_ARNS unset; signed `/menotime {PROBE_TEXT}` "
            f"every {PROBE_INTERVAL * 1000:.0f} ms meanwhile",
            flush=True,
        )
        with served(root / "closed", "", env, "closed") as closed:
            outcomes = run([oversized_bodies, malformed, foreign_topic_closed, replay], closed)
        print(f"second `serve`: prod alarm_topics [{OWN_TOPIC}], SNS_TOPIC_ARNS still unset", flush=True)
        listed_config = f"environments:\n  prod:\n    alarm_topics: [{OWN_TOPIC}]\n"
        with served(root / "listed", listed_config, env, "listed") as listed:
            outcomes += run(
                [mention_in_alarm, foreign_topic_listed, secrets_in_logs([closed.log, listed.log])], listed
            )
    targets = (closed, listed)
    summary, acks_ok = ack_summary(
        [a for t in targets for a in t.probe.during(*t.attacked)], sum(len(t.unanswered) for t in targets)
    )
    print(summary)
    failed = [o.name.split()[0] for o in outcomes if o.ok is False]
    skipped = [o.name.split()[0] for o in outcomes if o.ok is None]
    print(
        f"{len(outcomes)} checks, failed: {', '.join(failed) or 'none'}, skipped: {', '.join(skipped) or 'none'}; "
        f"{time.monotonic() - began:.0f} s in all"
    )
    return 0 if acks_ok and not failed and not skipped else 1  # a skip is not a pass


if __name__ == "__main__":
    sys.exit(main())
