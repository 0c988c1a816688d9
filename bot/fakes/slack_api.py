"""A fake Slack Web API and response_url endpoint, served over real HTTP on 127.0.0.1.

Why a real server rather than mocking ``WebClient``: the bot's Slack traffic goes
through slack_sdk's HTTP layer (headers, encodings, 429 handling, retry
handlers, ``SlackApiError``). Pointing a real client at this server keeps all of
that under test while staying offline and fast.

Usage::

    with FakeSlack() as fake:
        client = WebClient(token="xoxb-test", base_url=fake.api_url)
        client.chat_postMessage(channel="C1", text="hi")
        assert fake.calls_to("chat.postMessage")[0].params["text"] == "hi"

Paths served:

* ``/api/<method>``      Web API methods (token checked, canned answers)
* ``/response/<key>``    slash-command / interaction ``response_url`` targets
* ``/upload/<file_id>``  upload URLs handed out by ``files.getUploadURLExternal``
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from bot.fakes.slack_answers import _API_HANDLERS
from bot.fakes.slack_requests import (
    ANY,
    RESPONSE,
    UPLOAD,
    Call,
    _Answer,
    _classify,
    _Fault,
    _fault_answer,
    _matches,
    _parse_params,
    _summarise,
)

__all__ = ["ANY", "RESPONSE", "UPLOAD", "Call", "FakeSlack"]

_TS_BASE_MICROS = 1_700_000_000_000_000


class FakeSlack:
    """In-process fake of Slack's HTTP surface; see the module docstring.

    Configuration attributes tests may set at any time:

    * ``usergroups`` – ``{subteam_id: [user_id, ...]}`` for ``usergroups.users.list``
    * ``users`` / ``channels`` – extra fields merged into ``users.info`` / ``conversations.info``
    * ``accepted_tokens`` – tokens valid besides any ``xoxb-...`` token
    """

    def __init__(
        self,
        *,
        usergroups: dict[str, list[str]] | None = None,
        accepted_tokens: Iterable[str] = (),
    ) -> None:
        self.usergroups: dict[str, list[str]] = dict(usergroups or {})
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.accepted_tokens: set[str] = set(accepted_tokens)
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._cond = threading.Condition()
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        """Bind a free port on 127.0.0.1 and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeSlack already started")
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        # A short poll interval keeps stop() (which waits for the next poll) from costing 0.5s per test.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="FakeSlack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/`` (trailing slash included)."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not running; use it as a context manager or call start()")
        return f"http://127.0.0.1:{self._server.server_port}/"  # bound there by start()

    @property
    def api_url(self) -> str:
        """Value for ``WebClient(base_url=...)``; ends with '/' as slack_sdk requires."""
        return self.url + "api/"

    def response_url(self, key: str) -> str:
        """A response_url whose posts are recorded under ``key``."""
        return self.url + f"response/{key}"

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[Call]:
        """Snapshot of every request so far, in arrival order (including failed ones)."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """Calls to one API method (or ``"response"``, ``"upload"``, ``"*"`` for all)."""
        with self._cond:
            return [c for c in self._calls if _matches(method, c.method)]

    def responses(self, key: str | None = None) -> list[dict[str, Any]]:
        """JSON bodies posted to response URLs (to ``key`` only, if given), oldest first.

        Posts answered with an injected failure are included: they were sent.
        Use ``calls_to("response")`` and ``Call.ok`` to tell them apart.
        """
        return [c.params for c in self.calls_to(RESPONSE) if key is None or c.key == key]

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Block until ``count`` calls to ``method`` arrived; return all of them.

        Needed because the bot answers slash commands from worker threads
        after acking. On timeout, raises AssertionError listing what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matching = [c for c in self._calls if _matches(method, c.method)]
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._describe_timeout(method, count, timeout, len(matching)))
                self._cond.wait(remaining)

    def reset(self) -> None:
        """Forget recorded calls and pending faults; configuration (usergroups, tokens) stays."""
        with self._cond:
            self._calls.clear()
            self._faults.clear()

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        *,
        status: int | None = None,
        times: int = 1,
        retry_after: int | None = None,
        error: str | None = None,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail.

        ``method`` is an API method, ``"response"`` (response URLs), ``"upload"``
        or ``"*"`` (anything). Without ``error`` the answer is HTTP ``status``
        (default 500; 429 sends ``Retry-After``, default 1s). With ``error`` the
        answer is Slack's usual HTTP 200 ``{"ok": false, "error": error}``,
        unless a ``status`` is also given. Faults queue in the order added.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        if error is None:
            final_status = 500 if status is None else status
        else:
            final_status = 200 if status is None else status
        if final_status == 429 and retry_after is None:
            retry_after = 1
        with self._cond:
            self._faults.append(_Fault(method, times, final_status, retry_after, error))

    # ------------------------------------------------------------------ request handling (server threads)

    def _handle(self, http_method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Answer:
        parts = urlsplit(raw_path)
        path = parts.path
        params = _parse_params(parts.query, headers, body)
        kind, key = _classify(path)
        fault = self._take_fault(kind)
        if fault is not None:
            answer = _fault_answer(fault, kind)
        elif kind in (RESPONSE, UPLOAD):
            answer = _Answer(payload="ok" if kind == RESPONSE else f"OK - {len(body)}")
        elif kind == "":
            answer = _Answer(status=404, payload="not found")
        else:
            answer = self._api_answer(kind, headers, params)
        call = Call(
            method=kind or path,
            path=path,
            headers=headers,
            params=params,
            body=body,
            received_at=time.time(),
            answered_status=answer.status,
            key=key,
            http_method=http_method,
            response=answer.payload if isinstance(answer.payload, dict) else {},
        )
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()
        return answer

    def _take_fault(self, method: str) -> _Fault | None:
        with self._cond:
            for fault in self._faults:
                if _matches(fault.method, method):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _api_answer(self, method: str, headers: dict[str, str], params: dict[str, Any]) -> _Answer:
        auth_error = self._auth_error(headers, params)
        if auth_error is not None:
            return _Answer(payload={"ok": False, "error": auth_error})
        handler = _API_HANDLERS.get(method)
        payload = handler(self, params) if handler is not None else {"ok": True}
        return _Answer(payload=payload)

    def _auth_error(self, headers: dict[str, str], params: dict[str, Any]) -> str | None:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        token: str | None = None
        if auth is not None:
            scheme, _, value = auth.partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
            if token is None:
                return "invalid_auth"
        elif isinstance(params.get("token"), str):
            token = params["token"]  # Slack still accepts a token form field
        if not token:
            return "not_authed"
        if token.startswith("xoxb-") or token in self.accepted_tokens:
            return None
        return "invalid_auth"

    def _next_ts(self) -> str:
        micros = _TS_BASE_MICROS + 100 * next(self._ts_counter)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}0FAKE{next(self._id_counter):05d}"

    def _describe_timeout(self, method: str, count: int, timeout: float, got: int) -> str:
        lines = [f"expected {count} call(s) to {method!r} within {timeout:g}s, got {got}."]
        if not self._calls:
            lines.append("No requests reached the fake at all.")
        else:
            lines.append(f"Requests received ({len(self._calls)}):")
            lines.extend(f"  - {_summarise(c)}" for c in self._calls)
        pending = [f"{f.method}×{f.remaining}" for f in self._faults]
        if pending:
            lines.append(f"Unconsumed injected faults: {', '.join(pending)}")
        return "\n".join(lines)


def _make_handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        server_version = "FakeSlack/1.0"

        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def _serve(self, http_method: str) -> None:
            try:
                body = self._read_body()
                headers = {k: v for k, v in self.headers.items()}
                answer = fake._handle(http_method, self.path, headers, body)
            except Exception as exc:  # noqa: BLE001 - a bug in the fake must not look like a hang
                answer = _Answer(status=500, payload=f"FakeSlack crashed: {exc!r}")
            data, content_type = answer.encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return _Handler
