"""`menotime-bot serve` as its own process, against the AWS simulator and a fake Slack.

:func:`serve_process` starts moto's server (seeded from the config given), a :class:`FakeSlack`, and
``python -m handlers serve`` on a free loopback port with SQLite in the working folder; it yields
once ``/readyz`` answers 200 and stops the process (SIGTERM, waited for) on the way out. The
helpers below attack it from outside: a body streamed in chunks, and the peak memory of the process.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.config import load_config
from bot.fakes.slack_api import FakeSlack
from bot.simulator import Simulator

__all__ = ["BOT_TOKEN", "MB", "Served", "free_port", "peak_rss_mb", "serve_process", "stream_junk"]

MB = 1024 * 1024
BOT_TOKEN = "xoxb-serve-test"
"""SLACK_BOT_TOKEN of the served process (a test can then look for it in the logs)."""
REGION = "us-west-1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# Nothing of the caller's environment may steer the served bot (or send it to real AWS or Slack).
_NOT_INHERITED = ("SLACK_", "AWS_", "MENOTIME_")
# No proxy for 127.0.0.1, whatever the environment says.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A port free on 127.0.0.1 a moment ago (for a server that cannot be given port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Served:
    """A running `serve` and what it runs against."""

    base: str  # http://127.0.0.1:PORT
    slack: FakeSlack
    log: Path  # the process's stdout and stderr
    database: Path  # its SQLite file
    simulator: Simulator
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def serve_process(
    workdir: Path,
    config: str,
    *,
    secret: str,
    env: Mapping[str, str] | None = None,
    token: str = BOT_TOKEN,
) -> Iterator[Served]:
    """`serve` with ``config`` (YAML text, written to ``workdir/menotime.yaml``) and the signing
    secret ``secret``; ``env`` is added to (and overrides) the environment it is given. Its log goes
    to ``workdir/serve.log``, its database to ``workdir/serve.db``."""
    config_path = workdir / "menotime.yaml"
    config_path.write_text(config)
    log_path = workdir / "serve.log"
    database = workdir / "serve.db"
    with Simulator(region=REGION) as simulator, FakeSlack() as slack:
        simulator.seed(load_config(config_path))
        port = free_port()
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)},
            "SLACK_BOT_TOKEN": token,
            "SLACK_SIGNING_SECRET": secret,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": f"sqlite:///{database}",
            "AWS_ENDPOINT_URL": simulator.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "MENOTIME_CONFIG": str(config_path),
            "LOG_FORMAT": "json",
            "PORT": str(port),
            **(env or {}),
        }
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "handlers", "serve", "--host", "127.0.0.1"],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_ready(base, process, log_path)
                yield Served(base, slack, log_path, database, simulator, process)
            finally:
                process.terminate()
                process.wait(timeout=STOP_TIMEOUT)


def _wait_ready(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            with _LOCAL.open(f"{base}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (OSError, http.client.HTTPException):  # not listening yet, or not ready (a 503 raises)
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError(f"serve did not become ready:\n{log_path.read_text()}")
        time.sleep(0.1)


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of process ``pid`` so far, in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def stream_junk(
    base: str, *, total: int, headers: dict[str, str], started: threading.Event | None = None
) -> tuple[int, int]:
    """POSTs ``total`` bytes of junk to /slack/events in 64 KiB chunks (chunked, or with the
    Content-Length given in ``headers``), stopping as soon as the server answers. Returns the status
    and how many body bytes were sent before the answer. ``started`` is set once half a MiB is out."""
    host, port = base.removeprefix("http://").split(":")
    chunked = "Content-Length" not in headers
    head = "".join(
        f"{k}: {v}\r\n"
        for k, v in {**headers, **({"Transfer-Encoding": "chunked"} if chunked else {})}.items()
    )
    chunk = b"x" * (64 * 1024)
    framed = (b"%x\r\n" % len(chunk)) + chunk + b"\r\n" if chunked else chunk
    sent = 0
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # answered: stop sending, as a client would
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            if started is not None and sent >= MB // 2:
                started.set()
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")  # all of it sent, unanswered: end the body and wait
        if started is not None:
            started.set()
        answer = sock.recv(4096)
    return int(answer.split()[1]), sent
