"""Slash-command ack latency: the real bot against a bare Bolt app on the same stack (DESIGN §9).

    .venv/bin/python -m bench.ack_latency [--requests N] [--concurrency C] [--warmup W]

This process serves both apps on 127.0.0.1, each with uvicorn in a background thread: the bot as
`menotime-bot serve` builds it (over the embedded AWS simulator, seeded, and SQLite in a temporary
directory), and a bare Bolt app built with the same flags whose listener only acks. A fake Slack
Web API stands in for Slack and receives the answers posted to ``response_url``.

The load is C signed ``/menotime status prod`` requests in flight (closed loop) from httpx, over
C keep-alive HTTP/1.1 connections. The client runs in a child process by default: in this one it
would compete for the GIL with the bot's background answers and charge that wait to the bot.
Latency is client-side, request sent to HTTP 200 (Slack's ack). The bare app is measured first,
so the bot's background answers cannot slow it down.

The figures are printed, not asserted: the exit status is 1 only when a request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

import bench._common as common
from bench._common import (
    BackgroundServer,
    Prepared,
    Run,
    make_missing_sniffio_cheap,
    ms,
    percentile,
    send_all,
    verdict,
)
from bot.fakes.slack_api import RESPONSE, FakeSlack
from bot.fakes.slack_signing import sign, slash_command_body

# The server side is imported where it is used: the load-generating child process imports this
# module too and must stay small (a big heap means long garbage-collection pauses in its figures).
if TYPE_CHECKING:
    from slack_bolt import App
    from starlette.applications import Starlette

    from bot.core import Core

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
USER = "U0BENCH"
TEXT = "status prod"
COMMAND = "/menotime"
PATH = "/slack/events"

# The targets of DESIGN §9 as agreed for this benchmark.
RATIO_TARGET = 1.2
P99_TARGET_MS = 50.0

REQUEST_TIMEOUT = 10.0  # well past Slack's 3 s: a slow ack is measured, not dropped
DRAIN_TIMEOUT = 15.0


# --------------------------------------------------------------------------------------------
# Servers


@dataclass(frozen=True)
class Experiment:
    """What-if switches, applied to both apps alike; all off measures the code as it is. (Both
    apps are built with ``process_before_response=True`` already, as handlers/app.py builds the bot.)"""

    lazy_workers: int | None = None  # Bolt's default listener executor has 5 threads

    def apply(self, app: App) -> None:
        """Make ``app`` behave as if built with these options. Bolt reads them in its listener
        runners only, so setting them there equals passing them to ``App(...)``. Private
        attributes: if Bolt renames them this fails, rather than silently measure the default."""
        from concurrent.futures import ThreadPoolExecutor

        runner = app._listener_runner
        if self.lazy_workers is not None:
            executor = ThreadPoolExecutor(max_workers=self.lazy_workers, thread_name_prefix="bench-listener")
            _set_existing(runner, "listener_executor", executor)
            _set_existing(runner.lazy_listener_runner, "executor", executor)

    def describe(self) -> str:
        parts = []
        if self.lazy_workers is not None:
            parts.append(f"listener_executor of {self.lazy_workers} thread(s)")
        return ", ".join(parts)


def _set_existing(target: object, name: str, value: object) -> None:
    if not hasattr(target, name):
        raise RuntimeError(
            f"this Bolt version has no {type(target).__name__}.{name}; update bench/ack_latency.py"
        )
    setattr(target, name, value)


def bare_web_app(fake: FakeSlack, experiment: Experiment) -> Starlette:
    """The baseline: a Bolt app built with the bot's flags whose listener only acks."""
    from slack_bolt import Ack, App
    from slack_bolt.adapter.starlette.handler import SlackRequestHandler
    from slack_sdk import WebClient
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    app = App(
        client=WebClient(token=TOKEN, base_url=fake.api_url),
        signing_secret=SECRET,
        token_verification_enabled=False,
        raise_error_for_unhandled_request=False,
        process_before_response=True,  # as handlers/app.py builds the bot
    )

    @app.command(COMMAND)
    def ack_only(ack: Ack) -> None:
        ack()

    experiment.apply(app)
    handler = SlackRequestHandler(app)

    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(routes=[Route(PATH, slack_events, methods=["POST"])])


@contextmanager
def bot_server(
    fake: FakeSlack, workdir: Path, experiment: Experiment
) -> Iterator[tuple[BackgroundServer, Core]]:
    """The real bot, built as `menotime-bot serve` builds it, against a seeded simulator."""
    from bot.config import load_config
    from bot.settings import Settings
    from bot.simulator import Simulator
    from handlers.process import compose

    config = load_config(overrides={"roles": {"viewer": {"users": [USER]}}})
    with Simulator(separate_process=True) as simulator:  # moto's CPU is not the bot's
        simulator.seed(config)
        settings = Settings(
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=fake.api_url,
            database_url=f"sqlite:///{workdir / 'bench.db'}",
        )
        process = compose(settings, mode="serve", config=config, aws=simulator.gateway(), migrate_schema=True)
        app, core, web = process.slack, process.core, process.web
        assert app is not None and web is not None
        experiment.apply(app)
        try:
            with BackgroundServer(web, "bot", path=PATH) as server:
                yield server, core
        finally:
            # Answers still queued would otherwise run against a closed simulator and database.
            _drain(app)
            core.close()


def _drain(app: App) -> None:
    """Drop the answers not yet started and wait (bounded) for those running."""
    executor = app._listener_runner.listener_executor
    executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    for thread in list(getattr(executor, "_threads", ())):
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


# --------------------------------------------------------------------------------------------
# Load


def prepare(response_base: str, prefix: str, count: int) -> list[Prepared]:
    """Signed bodies built before the clock starts, so signing is not in the figures. Slack
    timestamps are valid for five minutes, which a run stays well inside."""
    prepared = []
    for index in range(count):
        key = f"{prefix}-{index}"
        body = slash_command_body(
            text=TEXT, user_id=USER, response_url=response_base + key, trigger_id=f"{index}.{prefix}"
        )
        prepared.append(Prepared(key=key, body=body.encode(), headers=sign(body, SECRET)))
    return prepared


@dataclass(frozen=True)
class LoadSpec:
    url: str
    response_base: str  # response_url of the request with key K is response_base + K
    prefix: str
    warmup: int
    requests: int
    concurrency: int
    budget: float


async def _load(spec: LoadSpec, between: Callable[[Run], object]) -> Run:
    """Warm-up on the connections that the measured run then uses; ``between`` in the middle."""
    # One client per worker rather than one shared pool: httpcore's pool scans every connection
    # on each request, and client set-up (an SSL context each) must happen before the clock runs.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(http1=True, http2=False, limits=limits, timeout=REQUEST_TIMEOUT)
        for _ in range(spec.concurrency)
    ]
    try:
        warm = await send_all(
            clients, spec.url, prepare(spec.response_base, f"{spec.prefix}-warm", spec.warmup), spec.budget
        )
        measured = prepare(spec.response_base, spec.prefix, spec.requests)
        await asyncio.to_thread(between, warm)
        # Re-open any connection the server closed while idle (uvicorn keeps them 5 s): a GET is
        # refused by the route itself (405), before Bolt, so it has no side effect.
        await asyncio.gather(*(client.get(spec.url) for client in clients))
        return await send_all(clients, spec.url, measured, spec.budget)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def load_in_process(spec: LoadSpec, between: Callable[[Run], object]) -> tuple[Run, Run]:
    warm: list[Run] = []

    def record(run: Run) -> None:
        warm.append(run)
        between(run)

    measured = asyncio.run(_load(spec, record))
    return warm[0], measured


def load_in_child(spec: LoadSpec, between: Callable[[Run], object]) -> tuple[Run, Run]:
    return common.load_in_child("bench.ack_latency", asdict(spec), between)


def client_main(spec_json: str) -> int:
    spec = LoadSpec(**json.loads(spec_json))
    return common.client_child(lambda report: _load(spec, report))


def wait_for_answers(fake: FakeSlack, keys: set[str], timeout: float) -> dict[str, float]:
    """Arrival time of each answer posted to one of ``keys``' response URLs, waiting at most
    ``timeout`` seconds for all of them."""
    deadline = time.monotonic() + timeout
    while True:
        arrived = {str(call.key): call.received_at for call in fake.calls_to(RESPONSE) if call.key in keys}
        if len(arrived) >= len(keys) or time.monotonic() >= deadline:
            return arrived
        time.sleep(0.25)


# --------------------------------------------------------------------------------------------
# Figures


def command_outcomes(core: Core) -> dict[str, int]:
    counts: dict[str, int] = {}
    for metric in core.metrics.registry.collect():
        if metric.name != "menotime_commands":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                label = f"{sample.labels['verb']}/{sample.labels['outcome']}"
                counts[label] = counts.get(label, 0) + int(sample.value)
    return counts


@dataclass(frozen=True)
class Report:
    runs: dict[str, Run]  # "bare", "bot"
    concurrency: int
    budget: float
    client: str
    experiment: Experiment
    answers: dict[str, float]
    answer_timeout: float
    outcomes: dict[str, int]

    def print(self) -> None:
        header = (
            f"{'target':<8}{'N':>7}{'C':>5}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}"
            f"{'req/s':>9}{'failed':>8}"
        )
        print()
        print(f"Slash-command ack latency (client-side: request sent -> HTTP 200; client {self.client})")
        if self.experiment.describe():
            print(f"EXPERIMENT, both apps: {self.experiment.describe()}")
        print(header)
        print("-" * len(header))
        for name, run in self.runs.items():
            acked = run.acked
            print(
                f"{name:<8}{run.sent:>7}{self.concurrency:>5}{ms(percentile(acked, 50)):>10}"
                f"{ms(percentile(acked, 95)):>10}{ms(percentile(acked, 99)):>10}"
                f"{ms(max(acked, default=math.nan)):>10}{run.sent / run.elapsed:>9.0f}{run.failed:>8}"
            )
        for name, run in self.runs.items():
            if run.sent < len(run.statuses):
                print(
                    f"  {name}: stopped by the {self.budget:.0f} s budget, {run.sent}/{len(run.statuses)} sent"
                )
            if run.errors:
                print(f"  {name} failures: {run.errors}")

        bare_p99, bot_p99 = percentile(self.runs["bare"].acked, 99), percentile(self.runs["bot"].acked, 99)
        ratio = bot_p99 / bare_p99 if bare_p99 > 0 else math.inf
        print()
        print(
            f"p99 ratio bot/bare {ratio:9.2f}    target <= {RATIO_TARGET}     {verdict(ratio <= RATIO_TARGET)}"
        )
        print(
            f"bot p99            {ms(bot_p99):>9} ms target < {P99_TARGET_MS:.0f} ms  "
            f"{verdict(bot_p99 * 1000 < P99_TARGET_MS)}"
        )
        print(f"(bare p99          {ms(bare_p99):>9} ms, for scale)")

        bot = self.runs["bot"]
        e2e = [arrived - bot.sent_at[key] for key, arrived in self.answers.items()]
        print()
        print(
            f"Bot answers at response_url (request sent -> answer posted; waited <= {self.answer_timeout:.0f} s "
            f"after the last ack):"
        )
        print(
            f"  arrived {len(self.answers)}/{len(bot.sent_at)}   p50 {ms(percentile(e2e, 50))} ms   "
            f"p95 {ms(percentile(e2e, 95))} ms   max {ms(max(e2e, default=math.nan))} ms"
        )
        if self.outcomes:
            print(
                "  command outcomes (bot metrics, warm-up included): "
                + ", ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items()))
            )


# --------------------------------------------------------------------------------------------
# Main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.ack_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per app (default 2000)")
    parser.add_argument("--concurrency", type=int, default=20, help="requests in flight (default 20)")
    parser.add_argument(
        "--warmup", type=int, default=100, help="unmeasured requests first, per app (default 100)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=40.0,
        help="seconds after which an app's measured run stops sending (default 40, max 600)",
    )
    parser.add_argument(
        "--answer-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the bot's answers at response_url (default 60, max 300)",
    )
    parser.add_argument(
        "--client-in-process",
        action="store_true",
        help="run the load generator in this process (its GIL waits then count against the bot)",
    )
    parser.add_argument(
        "--lazy-workers",
        type=int,
        default=None,
        metavar="K",
        help="experiment: both apps with a K-thread listener executor (Bolt's default: 5)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_client"] and len(argv) == 2:
        return client_main(argv[1])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--requests and --concurrency must be >= 1, --warmup >= 0")
    if args.lazy_workers is not None and args.lazy_workers < 1:
        parser.error("--lazy-workers must be >= 1")
    budget = min(max(args.budget, 1.0), 600.0)
    answer_timeout = min(max(args.answer_timeout, 0.0), 300.0)
    experiment = Experiment(lazy_workers=args.lazy_workers)
    load: Callable[[LoadSpec, Callable[[Run], object]], tuple[Run, Run]]
    if args.client_in_process:
        make_missing_sniffio_cheap()
        load = load_in_process
    else:
        load = load_in_child

    from bot.logs import configure_logging

    with tempfile.TemporaryDirectory(prefix="menotime-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        # Production logging (JSON at INFO, one line per command) into a file: its cost belongs
        # to the bot, its output does not belong in the report.
        log_file = stack.enter_context((workdir / "bot.log").open("w", encoding="utf-8"))
        configure_logging(fmt="json", level="INFO", stream=log_file)

        fake = stack.enter_context(FakeSlack())
        bare = stack.enter_context(BackgroundServer(bare_web_app(fake, experiment), "bare", path=PATH))
        bot, core = stack.enter_context(bot_server(fake, workdir, experiment))
        print(
            f"bare app at {bare.url}, bot at {bot.url}, fake Slack at {fake.url}", file=sys.stderr, flush=True
        )

        def spec(name: str, url: str) -> LoadSpec:
            return LoadSpec(
                url=url,
                response_base=fake.response_url(""),
                prefix=name,
                warmup=args.warmup,
                requests=args.requests,
                concurrency=args.concurrency,
                budget=budget,
            )

        # Bare first: the bot leaves answers running in the background that would slow it down.
        bare_warm, bare_run = load(spec("bare", bare.url), lambda _warm: None)
        # The bot's measured run starts once its warm-up answers are in, from a quiet bot.
        bot_warm, bot_run = load(
            spec("bot", bot.url), lambda warm: wait_for_answers(fake, set(warm.sent_at), answer_timeout)
        )
        answers = wait_for_answers(fake, set(bot_run.sent_at), answer_timeout)

        Report(
            runs={"bare": bare_run, "bot": bot_run},
            concurrency=args.concurrency,
            budget=budget,
            client="in this process" if args.client_in_process else "in a child process",
            experiment=experiment,
            answers=answers,
            answer_timeout=answer_timeout,
            outcomes=command_outcomes(core),
        ).print()
        warm_failed = bare_warm.failed + bot_warm.failed
        if warm_failed:
            print(f"warm-up: {warm_failed} request(s) failed")
    return 1 if bare_run.failed or bot_run.failed or warm_failed else 0


if __name__ == "__main__":
    sys.exit(main())
