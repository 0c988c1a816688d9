"""Structured logging: JSON lines in production, readable lines at a terminal.

Called once by the CLI before anything logs; nothing here runs at import.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, TextIO

import structlog

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger

_SECRET_KEYS = ("token", "secret", "password", "authorization", "signature", "response_url")
# A "/" and a ":" as they appear in text: plain, JSON-escaped (``\/``), percent-encoded (once or twice).
_SLASH = r"(?:/|\\/|%2[Ff]|%252[Ff])"
_COLON = r"(?::|%3[Aa]|%253[Aa])"
# Bearer secrets that can hide inside any text, a library's message or a traceback included: a
# response_url lets whoever holds it answer in Slack for 30 minutes; a token, for as long as it lives.
_SECRET_TEXT = (
    (
        re.compile(
            rf"(https?{_COLON}{_SLASH}{_SLASH}hooks\.slack(?:-gov)?\.com{_SLASH})(?:[^\s'\"<>\\]|\\/)+"
        ),
        r"\1[redacted]",
    ),
    (re.compile(r"(xox[abeoprs]|xapp)-[0-9A-Za-z-]+"), r"\1-[redacted]"),
)
# Libraries that write request bodies and URLs (response_urls included) at DEBUG, and a
# response_url again at INFO when they retry it: never below WARNING, whatever LOG_LEVEL says.
_QUIET = ("botocore", "boto3", "urllib3", "werkzeug", "slack_bolt", "slack_sdk")


def _redact(_logger: WrappedLogger, _name: str, event: EventDict) -> dict[str, object]:
    """Belt and braces: a field whose name smells of a secret is never written out, and no text
    (at any depth of a field, a formatted traceback included) carries a response_url or a Slack
    token."""
    return {key: _clean(key, value) for key, value in event.items()}


def _clean(key: object, value: object) -> object:
    if isinstance(key, str) and any(word in key.lower() for word in _SECRET_KEYS):
        return "[redacted]"
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _clean(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(None, v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return scrub(repr(value))  # what the renderer would write for it


def scrub(text: str) -> str:
    """``text`` without Slack response_urls and tokens."""
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def configure_logging(*, fmt: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # A traceback is text like any other, in either format: formatted first, then redacted with the rest.
    ending: list[Processor] = [structlog.processors.format_exc_info, _redact]
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[*shared, *ending, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Libraries (uvicorn, slack_bolt, botocore) log through the standard library: the same format
    # (one JSON object a line in production), level and stream as the bot's own lines.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *ending, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
