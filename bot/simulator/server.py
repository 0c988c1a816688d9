"""moto's server, in a thread or a child process, as the AWS endpoint the bot talks to."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from types import TracebackType
from typing import Any

import boto3

from bot.aws import AwsGateway, new_session
from bot.config import Config
from bot.simulator.seed import SeedReport, seed_environments

DEFAULT_REGION = "us-west-1"

_AMI_SETTING = "MOTO_EC2_LOAD_DEFAULT_AMIS"


class Simulator:
    """moto's server on 127.0.0.1 (a free port) for the length of a ``with`` block.

    moto keeps its state in this process, shared by every server and ``mock_aws`` in it: the state
    is reset when the simulator starts, so each simulator begins empty.
    """

    def __init__(self, *, region: str = DEFAULT_REGION, separate_process: bool = False) -> None:
        """``separate_process``: moto's server runs as a child process, so its CPU does not compete
        with this process's (the benchmarks). Its state is then out of reach of the helpers here that
        move simulated rollouts by hand (moto's ECS never does it by itself)."""
        self.region = region
        self._server: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        self._werkzeug_level: int | None = None
        self.endpoint_url = ""
        self._separate = separate_process

    def __enter__(self) -> Simulator:
        if self._separate:
            return self._start_process()
        from moto.server import (
            ThreadedMotoServer,  # heavy import, only when a simulator is wanted
        )

        # werkzeug logs every request to stderr, which would bury the demo's console.
        werkzeug = logging.getLogger("werkzeug")
        self._werkzeug_level = werkzeug.level
        werkzeug.setLevel(logging.WARNING)

        # moto otherwise builds thousands of default AMIs whenever RDS touches EC2 (about a second).
        self._ami_setting = os.environ.get(_AMI_SETTING)
        os.environ.setdefault(_AMI_SETTING, "false")

        # Port 0: the operating system picks a free port (no guess-then-bind race with other processes).
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        try:
            host, port = self._server.get_host_and_port()
            self.endpoint_url = f"http://{host}:{port}"
            request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
            with urllib.request.urlopen(request, timeout=10):
                pass
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_process(self) -> Simulator:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, _AMI_SETTING: os.environ.get(_AMI_SETTING, "false")}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.endpoint_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
                with urllib.request.urlopen(request, timeout=2):
                    return self
            except OSError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.endpoint_url = ""
        if self._werkzeug_level is not None:
            logging.getLogger("werkzeug").setLevel(self._werkzeug_level)
            self._werkzeug_level = None
        if getattr(self, "_ami_setting", "unset") is None:
            os.environ.pop(_AMI_SETTING, None)

    def session(self) -> boto3.session.Session:
        """Dummy credentials given explicitly: the process environment is never touched."""
        return new_session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region
        )

    def gateway(
        self, *, connect_timeout: float = 3.0, read_timeout: float = 10.0, max_attempts: int = 3
    ) -> AwsGateway:
        if not self.endpoint_url:
            raise RuntimeError("the simulator is not running; use it in a `with` block")
        return AwsGateway(
            session=self.session(),
            region=self.region,
            endpoint_url=self.endpoint_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
        )

    def seed(self, config: Config, *, at: datetime | None = None) -> SeedReport:
        return seed_environments(self.gateway(), config, at=at)
