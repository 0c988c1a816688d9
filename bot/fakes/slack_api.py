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

import contextlib
import email.parser
import email.policy
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["ANY", "RESPONSE", "UPLOAD", "Call", "FakeSlack"]

ANY = "*"
"""Pseudo-method for :meth:`FakeSlack.fail_next`/:meth:`FakeSlack.calls_to`: every request."""
RESPONSE = "response"
"""Pseudo-method under which posts to response URLs are recorded."""
UPLOAD = "upload"
"""Pseudo-method under which file bytes posted to an upload URL are recorded."""

BOT_USER_ID = "UBOT"
BOT_ID = "B0BOT"
TEAM_ID = "T0TEST"
TEAM_URL = "https://menotime-test.slack.com/"

# Form fields that Slack clients send as JSON text; decoded so tests can compare structures.
_JSON_FIELDS = frozenset({"blocks", "attachments", "view", "files", "metadata"})
_TS_BASE_MICROS = 1_700_000_000_000_000


@dataclass(frozen=True)
class Call:
    """One request as the fake saw it.

    ``params`` merges the query string with the body (JSON, form-encoded or
    multipart); JSON-valued form fields such as ``blocks`` are decoded.
    ``answered_status`` is the HTTP status the fake replied with, so tests can
    tell injected failures from delivered requests.
    """

    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any]
    body: bytes
    received_at: float
    answered_status: int = 200
    key: str | None = None
    """Response-URL key (``/response/<key>``) or upload file id; ``None`` for Web API calls."""
    http_method: str = "POST"
    response: dict[str, Any] = field(default_factory=dict)
    """The JSON the fake answered (``ts`` and ``channel`` of a post), empty for non-JSON answers."""

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup (HTTP header names are case-insensitive)."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    @property
    def ok(self) -> bool:
        """True when the fake answered 2xx (an ``ok: false`` JSON body still counts as delivered)."""
        return 200 <= self.answered_status < 300


@dataclass
class _Fault:
    method: str
    remaining: int
    status: int
    retry_after: int | None
    error: str | None


@dataclass
class _Answer:
    status: int = 200
    payload: dict[str, Any] | str = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.payload, str):
            return self.payload.encode("utf-8"), "text/plain; charset=utf-8"
        return json.dumps(self.payload).encode("utf-8"), "application/json; charset=utf-8"


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


# ---------------------------------------------------------------------- canned Web API answers


def _auth_test(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "url": TEAM_URL,
        "team": "MenoTime Test",
        "user": "menotime-ops",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


def _message(params: dict[str, Any], ts: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "text": params.get("text", ""),
        "ts": ts,
    }
    for name in ("blocks", "attachments", "thread_ts", "metadata"):
        if name in params:
            message[name] = params[name]
    return message


def _needs_channel_and_content(params: dict[str, Any]) -> dict[str, Any] | None:
    """Slack's own validation for posting; catches handlers that lose the channel or the text."""
    if not params.get("channel"):
        return {"ok": False, "error": "channel_not_found"}
    if not any(params.get(k) for k in ("text", "blocks", "attachments")):
        return {"ok": False, "error": "no_text"}
    return None


def _chat_post_message(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    invalid = _needs_channel_and_content(params)
    if invalid is not None:
        return invalid
    ts = fake._next_ts()
    return {"ok": True, "channel": params["channel"], "ts": ts, "message": _message(params, ts)}


def _chat_post_ephemeral(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    invalid = _needs_channel_and_content(params)
    if invalid is not None:
        return invalid
    if not params.get("user"):
        return {"ok": False, "error": "user_not_in_channel"}
    return {"ok": True, "message_ts": fake._next_ts()}


def _chat_update(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    channel, ts = params.get("channel"), params.get("ts")
    if not channel:
        return {"ok": False, "error": "channel_not_found"}
    if not ts:
        return {"ok": False, "error": "message_not_found"}
    return {
        "ok": True,
        "channel": channel,
        "ts": ts,
        "text": params.get("text", ""),
        "message": _message(params, str(ts)),
    }


def _chat_delete(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}


def _views_open(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    view = params.get("view")
    view = dict(view) if isinstance(view, dict) else {}
    view.setdefault("id", fake._next_id("V"))
    view.setdefault("team_id", TEAM_ID)
    view.setdefault("app_id", "A0TEST")
    view.setdefault("bot_id", BOT_ID)
    return {"ok": True, "view": view}


def _conversations_info(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    channel_id = str(params.get("channel", ""))
    if not channel_id:
        return {"ok": False, "error": "channel_not_found"}
    channel: dict[str, Any] = {
        "id": channel_id,
        "name": f"channel-{channel_id.lower()}",
        "is_channel": True,
        "is_private": False,
        "is_archived": False,
        "is_member": True,
        "created": 1_700_000_000,
    }
    channel.update(fake.channels.get(channel_id, {}))
    return {"ok": True, "channel": channel}


def _users_info(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    user_id = str(params.get("user", ""))
    if not user_id:
        return {"ok": False, "error": "user_not_found"}
    name = f"user-{user_id.lower()}"
    user: dict[str, Any] = {
        "id": user_id,
        "team_id": TEAM_ID,
        "name": name,
        "real_name": name,
        "deleted": False,
        "is_bot": user_id == BOT_USER_ID,
        "tz": "UTC",
        "tz_offset": 0,
        "profile": {"real_name": name, "display_name": name},
    }
    user.update(fake.users.get(user_id, {}))
    return {"ok": True, "user": user}


def _usergroups_users_list(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    group = params.get("usergroup")
    if not isinstance(group, str) or group not in fake.usergroups:
        return {"ok": False, "error": "no_such_subteam"}
    return {"ok": True, "users": list(fake.usergroups[group])}


def _files_get_upload_url(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    file_id = fake._next_id("F")
    return {"ok": True, "upload_url": fake.url + f"upload/{file_id}", "file_id": file_id}


def _files_complete_upload(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    files = params.get("files")
    entries = files if isinstance(files, list) else []
    return {
        "ok": True,
        "files": [{"id": f.get("id"), "title": f.get("title") or ""} for f in entries if isinstance(f, dict)],
    }


def _reactions_add(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


_API_HANDLERS: dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": _auth_test,
    "chat.postMessage": _chat_post_message,
    "chat.postEphemeral": _chat_post_ephemeral,
    "chat.update": _chat_update,
    "chat.delete": _chat_delete,
    "reactions.add": _reactions_add,
    "views.open": _views_open,
    "views.push": _views_open,
    "views.update": _views_open,
    "conversations.info": _conversations_info,
    "users.info": _users_info,
    "usergroups.users.list": _usergroups_users_list,
    "files.getUploadURLExternal": _files_get_upload_url,
    "files.completeUploadExternal": _files_complete_upload,
}


# ---------------------------------------------------------------------- helpers


def _matches(pattern: str, method: str) -> bool:
    return pattern in (ANY, method)


def _classify(path: str) -> tuple[str, str | None]:
    """Map a path to (method, key): ``("chat.postMessage", None)``, ``("response", key)``..."""
    for prefix, kind in (("/api/", None), ("/response/", RESPONSE), ("/upload/", UPLOAD)):
        if path.startswith(prefix) and len(path) > len(prefix):
            rest = unquote(path[len(prefix) :])
            return (rest, None) if kind is None else (kind, rest)
    return "", None


def _fault_answer(fault: _Fault, kind: str) -> _Answer:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    if fault.error is not None:
        return _Answer(status=fault.status, payload={"ok": False, "error": fault.error}, headers=headers)
    if kind in (RESPONSE, UPLOAD):
        phrase = "rate_limited" if fault.status == 429 else f"injected {fault.status}"
        return _Answer(status=fault.status, payload=phrase, headers=headers)
    error = "ratelimited" if fault.status == 429 else "fatal_error"
    return _Answer(status=fault.status, payload={"ok": False, "error": error}, headers=headers)


def _parse_params(query: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    params: dict[str, Any] = _flatten(parse_qs(query, keep_blank_values=True))
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    mime = content_type.split(";", 1)[0].strip().lower()
    if body:
        if mime == "application/json" or (not mime and body.lstrip()[:1] in (b"{", b"[")):
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                params.update(decoded)
        elif mime == "application/x-www-form-urlencoded":
            params.update(_flatten(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)))
        elif mime == "multipart/form-data":
            params.update(_parse_multipart(content_type, body))
    for name in _JSON_FIELDS & params.keys():
        value = params[name]
        if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):  # leave as sent; the raw body is on the Call anyway
                params[name] = json.loads(value)
    return params


def _flatten(parsed: dict[str, list[str]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Fields as str, file parts as bytes (slack_sdk sends uploads and some methods this way)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        decoded = part.get_payload(decode=True)  # bytes for a leaf part, None if there is none
        payload = decoded if isinstance(decoded, bytes) else b""
        is_file = part.get_filename() is not None
        fields[str(name)] = payload if is_file else payload.decode(part.get_content_charset() or "utf-8")
    return fields


def _summarise(call: Call) -> str:
    shown = {k: v for k, v in call.params.items() if k in ("channel", "text", "usergroup", "user", "ts")}
    where = f"[{call.key}]" if call.key else ""
    return f"{call.method}{where} -> HTTP {call.answered_status} {shown if shown else ''}".rstrip()


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
