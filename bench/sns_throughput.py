"""Verified SNS notifications into the inbox, and SNS POST -> Slack post latency (issue 4).

    .venv/bin/python -m bench.sns_throughput [--messages N] [--concurrency C] [--database-url URL]

Every message is a CloudWatch ALARM for its own alarm, genuinely signed (SignatureVersion 1) with a
key made for the run, whose self-signed certificate is pinned in SNS_CERT_CACHE_DIR under the
sha256 of its SigningCertURL, so the bot verifies it exactly as in production without fetching.
All messages are signed before any clock starts. Each part gets its own throw-away PostgreSQL
database, created on the server of ``--database-url`` and dropped at the end.

1. Throughput. The bot's real ``POST /sns`` (handlers.web.create_web_app over a core built by
   bot.core.build_core) and a bare Starlette endpoint that reads the body and answers 200, both
   served by uvicorn on 127.0.0.1 with the same settings, get the same signed messages from C
   keep-alive connections in a closed loop. The bot answers 200 only once a message is committed
   to the inbox; no worker runs, so this is the rate at which the endpoint verifies and stores.
2. Latency. The pipeline as `menotime-bot serve` runs it (handlers.workers.start_workers: the
   inbox worker poked by /sns, the outbox worker sending through slack_sdk to a fake Slack Web
   API) gets messages at a fixed rate; each one's latency runs from the client's send to the
   moment the fake Slack received the chat.postMessage naming its alarm. The storm threshold is
   raised so that every alarm gets its own root post. From the inbox rows the report also splits
   each message's time into its stages (stored, processed by the inbox worker, sent by the outbox).

The client runs in a child process (as in bench/ack_latency.py). The figures are printed, not
asserted: the exit status is 1 only when a request failed or a message never reached the inbox
or Slack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

import bench._common as common
from bench._common import (
    ALARM_FIXTURE,
    BackgroundServer,
    Prepared,
    Run,
    ms,
    percentile,
    send_all,
    verdict,
)
from bot.fakes.slack_api import FakeSlack

# The server side is imported where it is used: the load-generating child process imports this
# module too and must stay small.
if TYPE_CHECKING:
    from starlette.applications import Starlette

    from bot.config import Config
    from bot.core import Core
    from bot.fakes.sns_signer import Own
    from bot.settings import Settings

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PATH = "/sns"
TOKEN = "xoxb-bench"
ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-west-1:{ACCOUNT}:menotime-prod-alarms"
CERT_URL = "https://sns.us-west-1.amazonaws.com/SimpleNotificationService-bench.pem"
MAX_AGE_SECONDS = 3600  # the shipped SNS_MAX_AGE_SECONDS; a run stays well inside it
HEADERS = {
    "Content-Type": "text/plain; charset=UTF-8",
    "x-amz-sns-message-type": "Notification",
    "x-amz-sns-topic-arn": TOPIC,
    "x-amz-sns-subscription-arn": f"{TOPIC}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
    "User-Agent": "Amazon Simple Notification Service Agent",
}
ALARM_NAME = re.compile(r"menotime-prod-bench-[a-z]+-\d{5}")

# The targets of issue 4.
RATIO_TARGET = 0.5
RATE_TARGET = 300.0
P95_TARGET_MS = 200.0

REQUEST_TIMEOUT = 10.0
POST_TIMEOUT = 30.0  # how long the latency part waits for the last posts


# --------------------------------------------------------------------------------------------
# Messages


def alarm_name(part: str, index: int) -> str:
    return f"menotime-prod-bench-{part}-{index:05d}"


def sign_messages(part: str, count: int) -> list[Prepared]:
    """``count`` signed SNS envelopes, each an ALARM for its own alarm; the key is the alarm name."""
    from bot.fakes.hostile import alarm_message

    now = datetime.now(UTC)
    prepared = []
    for index in range(count):
        name = alarm_name(part, index)
        alarm = json.loads(
            alarm_message(
                ALARM_FIXTURE,
                name=name,
                state="ALARM",
                old="OK",
                at=now,
                arn=f"arn:aws:cloudwatch:us-west-1:{ACCOUNT}:alarm:{name}",
            )
        )
        alarm["Trigger"].update(
            MetricName="HTTPCode_Target_5XX_Count",
            Namespace="AWS/ApplicationELB",
            Dimensions=[{"name": "LoadBalancer", "value": "app/menotime-prod-alb/1"}],
        )
        envelope = _signer().message(
            version="1",
            at=now,
            MessageId=f"{secrets.token_hex(4)}-{name}",
            TopicArn=TOPIC,
            Message=json.dumps(alarm),
            Subject=f'ALARM: "{name}" in US West (N. California)',
            SigningCertURL=CERT_URL,
        )
        prepared.append(
            Prepared(
                key=name,
                body=json.dumps(envelope).encode(),
                headers={**HEADERS, "x-amz-sns-message-id": envelope["MessageId"]},
            )
        )
    return prepared


_SIGNER: list[Own] = []


def _signer() -> Own:
    """One RSA key and self-signed certificate for the run, valid from an hour ago for two hours
    (imported here: the load-generating child process has no use for cryptography)."""
    if not _SIGNER:
        from bot.fakes.sns_signer import Own

        now = datetime.now(UTC).replace(microsecond=0)
        _SIGNER.append(Own(not_before=now - timedelta(hours=1), not_after=now + timedelta(hours=2)))
    return _SIGNER[0]


def pin_run_certificate(cache_dir: Path) -> None:
    """Put the run's certificate where CertificateStore looks before fetching."""
    from bot.fakes.sns_signer import pin_certificate

    cache_dir.mkdir(parents=True, exist_ok=True)
    pin_certificate(cache_dir, CERT_URL, _signer().pem)


# --------------------------------------------------------------------------------------------
# Servers


@contextmanager
def throwaway_database(server_url: str, label: str, *, commit_wait: bool = True) -> Iterator[str]:
    """A new, empty database on the server of ``server_url``; dropped (connections and all) after.
    Without ``commit_wait`` its commits do not wait for the WAL flush (synchronous_commit off)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    url = make_url(server_url)
    name = f"menotime_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
                if not commit_wait:
                    connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
        except SQLAlchemyError as exc:
            raise SystemExit(
                f"cannot create a database on {url.render_as_string(hide_password=True)}: "
                f"{str(exc.orig or exc).splitlines()[0]}"
            ) from None
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _is_postgresql(url: str) -> bool:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).get_backend_name() == "postgresql"
    except ArgumentError:
        return False


def bare_web_app() -> Starlette:
    """The baseline: the same route on the same stack, reading the body and answering 200."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def sns(request: Request) -> Response:
        await request.body()
        return PlainTextResponse("stored")

    return Starlette(routes=[Route(PATH, sns, methods=["POST"])])


def bench_settings(database_url: str, cache_dir: Path, slack_api_url: str | None = None) -> Settings:
    from bot.settings import Settings

    return Settings(
        database_url=database_url,
        sns_cert_cache_dir=cache_dir,
        sns_max_age_seconds=MAX_AGE_SECONDS,
        sns_topic_arns=(TOPIC,),
        sns_queue_url=None,
        slack_bot_token=TOKEN,
        slack_signing_secret="bench-signing-secret",
        slack_api_url=slack_api_url,
    )


def bench_config() -> Config:
    from bot.config import load_config

    # One root post per alarm: the storm grouping would otherwise fold most of them into one.
    return load_config(overrides={"alarms": {"storm_threshold": 100_000}})


@contextmanager
def inbox_server(database_url: str, cache_dir: Path) -> Iterator[tuple[BackgroundServer, Core]]:
    """The bot's /sns alone: verify, store, answer (no worker drains the inbox)."""
    from bot.compose import build_core
    from handlers.web import create_web_app

    core = build_core(bench_settings(database_url, cache_dir), config=bench_config(), migrate_schema=True)
    try:
        with BackgroundServer(create_web_app(core, None), "bot", path=PATH) as server:
            yield server, core
    finally:
        core.close()


@contextmanager
def pipeline_server(
    database_url: str, cache_dir: Path, fake: FakeSlack
) -> Iterator[tuple[BackgroundServer, Core]]:
    """/sns with the inbox and outbox workers: the process `serve` composes (no SQS consumer)."""
    from handlers.process import compose

    process = compose(
        bench_settings(database_url, cache_dir, slack_api_url=fake.api_url),
        mode="serve",
        config=bench_config(),
        migrate_schema=True,
    )
    assert process.web is not None
    try:
        process.recover()
        process.start()
        with BackgroundServer(process.web, "pipeline", path=PATH) as server:
            yield server, process.core
    finally:
        process.stop()


def inbox_count(core: Core) -> int:
    from sqlalchemy import func, select

    from bot.store.models import SnsInboxMessage

    with core.db.session(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(SnsInboxMessage)) or 0)


def inbox_times(core: Core) -> dict[str, tuple[float, float | None]]:
    """Alarm name -> (stored, processed by the inbox worker), as epoch seconds, from the inbox."""
    from sqlalchemy import select

    from bot.store.models import SnsInboxMessage

    with core.db.session(write=False) as session:
        rows = session.execute(
            select(SnsInboxMessage.subject, SnsInboxMessage.received_at, SnsInboxMessage.processed_at)
        ).all()
    times: dict[str, tuple[float, float | None]] = {}
    for subject, received_at, processed_at in rows:
        found = ALARM_NAME.search(subject or "")
        if found:
            times[found.group()] = (_epoch(received_at), _epoch(processed_at) if processed_at else None)
    return times


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def root_posts(fake: FakeSlack) -> dict[str, float]:
    """When the fake Slack first received a channel post naming each bench alarm."""
    arrived: dict[str, float] = {}
    for call in fake.calls_to("chat.postMessage"):
        if "thread_ts" in call.params:
            continue
        found = ALARM_NAME.search(str(call.params.get("text", ""))) or ALARM_NAME.search(
            json.dumps(call.params)
        )
        if found and found.group() not in arrived:
            arrived[found.group()] = call.received_at
    return arrived


def wait_for_posts(fake: FakeSlack, keys: set[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        arrived = {key: at for key, at in root_posts(fake).items() if key in keys}
        if len(arrived) >= len(keys) or time.monotonic() >= deadline:
            return arrived
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Load (in a child process)


@dataclass(frozen=True)
class LoadSpec:
    url: str
    requests_file: str  # JSON list of [key, body, headers]; the first ``warmup`` are the warm-up
    warmup: int
    concurrency: int
    budget: float
    interval: float  # seconds between sends (a fixed rate); 0: closed loop


def write_requests(path: Path, requests: Sequence[Prepared]) -> str:
    path.write_text(json.dumps([[r.key, r.body.decode(), r.headers] for r in requests]), encoding="utf-8")
    return str(path)


async def _load(spec: LoadSpec, between: Callable[[Run], object]) -> Run:
    """Warm-up on the connections that the measured run then uses; ``between`` in the middle."""
    loaded = json.loads(Path(spec.requests_file).read_text(encoding="utf-8"))
    requests = [Prepared(key=key, body=body.encode(), headers=headers) for key, body, headers in loaded]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)  # one per worker, as ack_latency
    clients = [
        httpx.AsyncClient(http1=True, http2=False, limits=limits, timeout=REQUEST_TIMEOUT)
        for _ in range(spec.concurrency)
    ]
    try:
        warm = await send_all(clients, spec.url, requests[: spec.warmup], spec.budget, interval=spec.interval)
        await asyncio.to_thread(between, warm)
        # Re-open any connection the server closed while idle: a GET is refused by the route (405).
        await asyncio.gather(*(client.get(spec.url) for client in clients))
        return await send_all(clients, spec.url, requests[spec.warmup :], spec.budget, interval=spec.interval)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def load_in_child(spec: LoadSpec, between: Callable[[Run], object]) -> tuple[Run, Run]:
    return common.load_in_child("bench.sns_throughput", asdict(spec), between)


def client_main(spec_json: str) -> int:
    spec = LoadSpec(**json.loads(spec_json))
    return common.client_child(lambda report: _load(spec, report))


# --------------------------------------------------------------------------------------------
# Figures


def accepted(run: Run) -> int:
    return sum(1 for status in run.statuses if status == 200)


def rate(run: Run) -> float:
    return accepted(run) / run.elapsed if run.elapsed > 0 else 0.0


@dataclass(frozen=True)
class Report:
    runs: dict[str, Run]  # "bare", "bot": the throughput part
    concurrency: int
    stored: int  # inbox rows after the bot's runs, warm-up included
    accepted_by_bot: int  # 200s from the bot, warm-up included
    latency_run: Run
    posts: dict[str, float]  # alarm name -> when the fake Slack received its root post
    stages: dict[str, tuple[float, float | None]]  # alarm name -> stored, processed (inbox_times)
    rate: float
    budget: float

    @property
    def latencies(self) -> list[float]:
        return [
            at - self.latency_run.sent_at[key]
            for key, at in self.posts.items()
            if key in self.latency_run.sent_at
        ]

    @property
    def missing(self) -> int:
        return accepted(self.latency_run) - len(self.posts)

    def print(self) -> None:
        header = (
            f"{'target':<8}{'N':>7}{'C':>5}{'msgs/s':>9}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
            f"{'max ms':>10}{'failed':>8}"
        )
        print()
        print(
            "Verified SNS notifications into the inbox (closed loop, client in a child process; "
            "latency: request sent -> HTTP 200)"
        )
        print(header)
        print("-" * len(header))
        for name, run in self.runs.items():
            acked = run.acked
            print(
                f"{name:<8}{run.sent:>7}{self.concurrency:>5}{rate(run):>9.0f}{ms(percentile(acked, 50)):>10}"
                f"{ms(percentile(acked, 95)):>10}{ms(percentile(acked, 99)):>10}"
                f"{ms(max(acked, default=float('nan'))):>10}{run.failed:>8}"
            )
        self._notes(self.runs)
        bare, bot = rate(self.runs["bare"]), rate(self.runs["bot"])
        ratio = bot / bare if bare > 0 else 0.0
        print()
        print(
            f"msgs/s bot/bare    {ratio:9.3f}      target >= {RATIO_TARGET}      {verdict(ratio >= RATIO_TARGET)}"
        )
        print(
            f"bot msgs/s         {bot:9.0f}      target >= {RATE_TARGET:.0f}      {verdict(bot >= RATE_TARGET)}"
        )
        print(
            f"(stored in the inbox: {self.stored} rows for {self.accepted_by_bot} answered 200, warm-up included)"
        )

        run = self.latency_run
        lat = self.latencies
        print()
        print(
            f"SNS POST -> fake-Slack root post, the pipeline as `serve` runs it ({self.rate:g}/s fixed rate; "
            f"request sent -> chat.postMessage received)"
        )
        header = (
            f"{'N':>7}{'arrived':>9}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}{'failed':>8}"
        )
        print(header)
        print("-" * len(header))
        print(
            f"{run.sent:>7}{len(self.posts):>9}{ms(percentile(lat, 50)):>10}{ms(percentile(lat, 95)):>10}"
            f"{ms(percentile(lat, 99)):>10}{ms(max(lat, default=float('nan'))):>10}{run.failed:>8}"
        )
        self._notes({"latency": run})
        p95 = percentile(lat, 95)
        print()
        print(
            f"post p95           {ms(p95):>9} ms   target < {P95_TARGET_MS:.0f} ms   "
            f"{verdict(p95 * 1000 < P95_TARGET_MS)}"
        )
        print(f"(sent at {run.sent / run.elapsed:.1f}/s; posted at {self.posted_rate:.1f}/s)")
        print("where the time goes, p50 / p95 ms:")
        for label, values in self.breakdown().items():
            print(f"  {label:<44}{ms(percentile(values, 50)):>9} /{ms(percentile(values, 95)):>9}")
        if self.missing > 0:
            print(
                f"  {self.missing} accepted message(s) never reached the fake Slack within {POST_TIMEOUT:.0f} s"
            )

    @property
    def posted_rate(self) -> float:
        """Root posts per second from the first send to the last post: below the send rate, the
        pipeline did not keep up and a queue grew."""
        sent = [self.latency_run.sent_at[key] for key in self.posts if key in self.latency_run.sent_at]
        span = max(self.posts.values(), default=0.0) - min(sent, default=0.0)
        return len(self.posts) / span if span > 0 else 0.0

    def breakdown(self) -> dict[str, list[float]]:
        """Per-message stages: the client's send, the inbox row (stored, then processed by the inbox
        worker into a queued Slack message), the fake Slack's receipt."""
        sent_at = self.latency_run.sent_at
        stored, processed, posted = [], [], []
        for key, at in self.posts.items():
            times = self.stages.get(key)
            if key not in sent_at or times is None or times[1] is None:
                continue
            stored.append(times[0] - sent_at[key])
            processed.append(times[1] - times[0])
            posted.append(at - times[1])
        return {
            "POST answered (verified, stored, committed)": self.latency_run.acked,
            "sent -> inbox row stored": stored,
            "stored -> processed by the inbox worker": processed,
            "processed -> received by Slack (outbox)": posted,
        }

    def _notes(self, runs: dict[str, Run]) -> None:
        for name, run in runs.items():
            if run.sent < len(run.statuses):
                print(
                    f"  {name}: stopped by the {self.budget:.0f} s budget, {run.sent}/{len(run.statuses)} sent"
                )
            if run.errors:
                print(f"  {name} failures: {run.errors}")


# --------------------------------------------------------------------------------------------
# Main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sns_throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--messages", type=int, default=2000, help="measured messages per app, throughput (default 2000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=20, help="requests in flight, throughput (default 20)"
    )
    parser.add_argument(
        "--warmup", type=int, default=100, help="unmeasured messages first, per app (default 100)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL server to create the throw-away databases on "
        "(default: TEST_DATABASE_URL, else " + DEFAULT_DATABASE_URL + ")",
    )
    parser.add_argument(
        "--latency-messages", type=int, default=500, help="measured messages, latency (default 500)"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second, latency (default 50)")
    parser.add_argument(
        "--budget",
        type=float,
        default=40.0,
        help="seconds after which a measured run stops sending (default 40, max 600)",
    )
    parser.add_argument(
        "--no-commit-wait",
        action="store_true",
        help="experiment: the bench databases with synchronous_commit=off (commits do not wait "
        "for the WAL flush), to see what the durable commits cost",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_client"] and len(argv) == 2:
        return client_main(argv[1])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.messages < 1 or args.concurrency < 1 or args.warmup < 0 or args.latency_messages < 1:
        parser.error("--messages, --concurrency and --latency-messages must be >= 1, --warmup >= 0")
    if not 0 < args.rate <= 1000:
        parser.error("--rate must be above 0 and at most 1000")
    budget = min(max(args.budget, 1.0), 600.0)
    database_url = args.database_url or os.environ.get("TEST_DATABASE_URL") or DEFAULT_DATABASE_URL
    if not _is_postgresql(database_url):
        parser.error(
            f"--database-url (or TEST_DATABASE_URL) must be a PostgreSQL URL, e.g. {DEFAULT_DATABASE_URL}"
        )
    if not ALARM_FIXTURE.exists():
        parser.error(f"the alarm template {ALARM_FIXTURE} is missing (set MENOTIME_FIXTURES to the fixtures)")

    from bot.logs import configure_logging

    with tempfile.TemporaryDirectory(prefix="menotime-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        # Production logging (JSON at INFO, a line per message) into a file: its cost belongs to
        # the bot, its output does not belong in the report.
        log_file = stack.enter_context((workdir / "bot.log").open("w", encoding="utf-8"))
        configure_logging(fmt="json", level="INFO", stream=log_file)
        cache_dir = workdir / "sns-certs"
        pin_run_certificate(cache_dir)

        # 1. Throughput: the same signed messages to the bare endpoint, then to the bot.
        print(f"signing {args.warmup + args.messages} messages ...", file=sys.stderr, flush=True)
        messages = write_requests(
            workdir / "throughput.json", sign_messages("t", args.warmup + args.messages)
        )
        with (
            throwaway_database(database_url, "inbox", commit_wait=not args.no_commit_wait) as url,
            BackgroundServer(bare_web_app(), "bare", path=PATH) as bare,
            inbox_server(url, cache_dir) as (bot, core),
        ):
            print(f"bare endpoint at {bare.url}, bot at {bot.url}", file=sys.stderr, flush=True)

            def spec(target: str) -> LoadSpec:
                return LoadSpec(
                    url=target,
                    requests_file=messages,
                    warmup=args.warmup,
                    concurrency=args.concurrency,
                    budget=budget,
                    interval=0.0,
                )

            bare_warm, bare_run = load_in_child(spec(bare.url), lambda _warm: None)
            bot_warm, bot_run = load_in_child(spec(bot.url), lambda _warm: None)
            stored = inbox_count(core)

        # 2. Latency: a fixed rate through the whole pipeline to the fake Slack.
        warmup = min(args.warmup, 20)
        print(f"signing {warmup + args.latency_messages} messages ...", file=sys.stderr, flush=True)
        paced = sign_messages("l", warmup + args.latency_messages)
        paced_file = write_requests(workdir / "latency.json", paced)
        fake = stack.enter_context(FakeSlack())
        with (
            throwaway_database(database_url, "pipeline", commit_wait=not args.no_commit_wait) as url,
            pipeline_server(url, cache_dir, fake) as (server, pipeline_core),
        ):
            print(f"pipeline at {server.url}, fake Slack at {fake.url}", file=sys.stderr, flush=True)
            latency_spec = LoadSpec(
                url=server.url,
                requests_file=paced_file,
                warmup=warmup,
                concurrency=args.concurrency,
                budget=budget,
                interval=1.0 / args.rate,
            )
            # The measured run starts once the warm-up's posts are in, from a quiet pipeline.
            paced_warm, paced_run = load_in_child(
                latency_spec, lambda warm: wait_for_posts(fake, set(warm.sent_at), POST_TIMEOUT)
            )
            keys = {
                request.key
                for request, status in zip(paced[warmup:], paced_run.statuses, strict=True)
                if status == 200
            }
            posts = wait_for_posts(fake, keys, POST_TIMEOUT)
            stages = inbox_times(pipeline_core)

        report = Report(
            runs={"bare": bare_run, "bot": bot_run},
            concurrency=args.concurrency,
            stored=stored,
            accepted_by_bot=accepted(bot_warm) + accepted(bot_run),
            latency_run=paced_run,
            posts=posts,
            stages=stages,
            rate=args.rate,
            budget=budget,
        )
        if args.no_commit_wait:
            print("EXPERIMENT: synchronous_commit=off in the bench databases (not how the bot runs)")
        report.print()
        warm_failed = bare_warm.failed + bot_warm.failed + paced_warm.failed
        if warm_failed:
            print(f"warm-up: {warm_failed} request(s) failed")
    failed = bare_run.failed + bot_run.failed + paced_run.failed + warm_failed
    lost = max(0, report.accepted_by_bot - stored) + max(0, report.missing)
    return 1 if failed or lost else 0


if __name__ == "__main__":
    sys.exit(main())
