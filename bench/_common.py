"""What the benchmarks share: uvicorn in a thread, the closed-loop httpx load, and the figures.

Kept free of server-side imports: the load-generating child processes import this module too and
must stay small (a big heap means long garbage-collection pauses in their figures).
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

import httpx

if TYPE_CHECKING:
    from starlette.applications import Starlette

SERVER_START_TIMEOUT = 15.0

# The recorded payloads, where the tests find them too; the alarm is the template of the benches' alarms.
from bot.fakes.fixture_files import ALARM_FIXTURE as ALARM_FIXTURE  # noqa: E402
from bot.fakes.fixture_files import FIXTURES as FIXTURES  # noqa: E402

# --------------------------------------------------------------------------------------------
# Servers


class BackgroundServer:
    """uvicorn serving ``app`` on a free loopback port from a daemon thread; ``url`` is ``path`` on it.

    The settings are those of `menotime-bot serve` (uvicorn's defaults, no access log) for every
    app, so the stack under the apps compared is the same.
    """

    def __init__(self, app: Starlette, name: str, *, path: str) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{name}", daemon=True)
        self._path = path
        self.url = ""

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self._thread.name} did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}{self._path}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


# --------------------------------------------------------------------------------------------
# Load


@dataclass(frozen=True)
class Prepared:
    key: str  # matches what the server does later (an answer, a post) to its request
    body: bytes
    headers: dict[str, str]


NOT_SENT = 0  # the time budget ran out first
TRANSPORT_ERROR = -1


@dataclass
class Run:
    statuses: list[int]  # HTTP status, TRANSPORT_ERROR or NOT_SENT
    latencies: list[float]  # seconds, client-side; NaN where not sent
    sent_at: dict[str, float]  # request key -> wall-clock send time (FakeSlack records time.time())
    elapsed: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return sum(1 for status in self.statuses if status != NOT_SENT)

    @property
    def failed(self) -> int:
        return sum(1 for status in self.statuses if status not in (NOT_SENT, 200))

    @property
    def acked(self) -> list[float]:
        return [lat for lat, status in zip(self.latencies, self.statuses, strict=True) if status != NOT_SENT]

    def to_json(self) -> str:
        data = asdict(self)
        data["latencies"] = [None if math.isnan(v) else v for v in self.latencies]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Run:
        data = json.loads(text)
        data["latencies"] = [math.nan if v is None else v for v in data["latencies"]]
        return cls(**data)


async def send_all(
    clients: Sequence[httpx.AsyncClient],
    url: str,
    requests: Sequence[Prepared],
    budget: float,
    *,
    interval: float = 0.0,
) -> Run:
    """One worker per client (one keep-alive connection each), taking requests in turn until
    all are sent or ``budget`` seconds have passed. With ``interval`` request i is not sent
    before i * interval seconds from the start (a fixed rate, as long as a client is free)."""
    latencies = [math.nan] * len(requests)
    statuses = [NOT_SENT] * len(requests)
    sent_at: dict[str, float] = {}
    errors: Counter[str] = Counter()
    pending = iter(range(len(requests)))  # shared by the workers: each request is sent once
    started = time.perf_counter()
    deadline = started + budget

    async def worker(client: httpx.AsyncClient) -> None:
        for index in pending:
            if interval:
                await asyncio.sleep(max(0.0, started + index * interval - time.perf_counter()))
            if time.perf_counter() > deadline:
                return
            request = requests[index]
            sent_at[request.key] = time.time()
            begun = time.perf_counter()
            try:
                response = await client.post(url, content=request.body, headers=request.headers)
                statuses[index] = response.status_code
                if response.status_code != 200:
                    errors[f"HTTP {response.status_code}"] += 1
            except httpx.HTTPError as exc:
                statuses[index] = TRANSPORT_ERROR
                errors[type(exc).__name__] += 1
            latencies[index] = time.perf_counter() - begun

    await asyncio.gather(*(worker(client) for client in clients))
    return Run(
        statuses=statuses,
        latencies=latencies,
        sent_at=sent_at,
        elapsed=time.perf_counter() - started,
        errors=dict(errors),
    )


def make_missing_sniffio_cheap() -> None:
    """httpcore tries ``import sniffio`` for every lock it creates, several per request. Without
    sniffio installed each try searches sys.path again (about 0.3 ms), which made the client,
    not the servers, the bottleneck. A ``None`` entry makes the failing import instant."""
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def read_line(child: subprocess.Popen[str]) -> str:
    """The next line the load-generating child prints; RuntimeError if it exited instead."""
    assert child.stdout is not None
    line = child.stdout.readline()  # bounded by the child's budget and request timeouts
    if not line:
        raise RuntimeError(f"the load-generating process exited early (status {child.wait()})")
    return line


# --------------------------------------------------------------------------------------------
# Figures


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a latency that happened)."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# --------------------------------------------------------------------------------------------
# The load in a child process (so the client does not compete with the server for the GIL)

CLIENT_EXIT_TIMEOUT = 30.0


def load_in_child(module: str, spec: dict[str, object], between: Callable[[Run], object]) -> tuple[Run, Run]:
    """The load from ``python -m MODULE _client SPEC``: the child reports each run as a JSON line
    and waits for a line on stdin between the warm-up and the measured run."""
    command = [sys.executable, "-m", module, "_client", json.dumps(spec)]
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        try:
            warm = Run.from_json(read_line(child))
            between(warm)
            child.stdin.write("go\n")
            child.stdin.flush()
            measured = Run.from_json(read_line(child))
            child.wait(timeout=CLIENT_EXIT_TIMEOUT)
        finally:
            if child.poll() is None:
                child.kill()
    return warm, measured


def client_child(load: Callable[[Callable[[Run], None]], Awaitable[Run]]) -> int:
    """The child's side of :func:`load_in_child`: ``load`` runs the warm-up, calls its argument
    with it, then runs the measured load."""

    def report_and_wait(warm: Run) -> None:
        print(warm.to_json(), flush=True)
        sys.stdin.readline()

    make_missing_sniffio_cheap()
    measured = asyncio.run(load(report_and_wait))
    print(measured.to_json(), flush=True)
    return 0
