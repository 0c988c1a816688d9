"""A request to the fake Slack as it is recorded (:class:`Call`), read (the body's parameters, the
method or response URL it is for) and answered (an injected fault, or the answer's HTTP encoding)."""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

ANY = "*"
"""Pseudo-method for :meth:`FakeSlack.fail_next`/:meth:`FakeSlack.calls_to`: every request."""
RESPONSE = "response"
"""Pseudo-method under which posts to response URLs are recorded."""
UPLOAD = "upload"
"""Pseudo-method under which file bytes posted to an upload URL are recorded."""

# Form fields that Slack clients send as JSON text; decoded so tests can compare structures.
_JSON_FIELDS = frozenset({"blocks", "attachments", "view", "files", "metadata"})


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
