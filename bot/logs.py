"""Structured logging: JSON lines in production, readable lines at a terminal.

Called once by the CLI before anything logs; nothing here runs at import.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

_SECRET_KEYS = ("token", "secret", "password", "authorization", "signature", "response_url")
# Bearer secrets that can hide inside any text, a library's message included: a response_url lets
# whoever holds it answer in Slack for 30 minutes; a token, for as long as it lives.
_SECRET_TEXT = (
    (re.compile(r"(https?://hooks\.slack(?:-gov)?\.com/)[^\s'\"<>]+"), r"\1[redacted]"),
    (re.compile(r"\b(xox[abeoprs]|xapp)-[0-9A-Za-z-]+"), r"\1-[redacted]"),
)
# Libraries that write request bodies and URLs (response_urls included) at DEBUG, and a
# response_url again at INFO when they retry it: never below WARNING, whatever LOG_LEVEL says.
_QUIET = ("botocore", "boto3", "urllib3", "werkzeug", "slack_bolt", "slack_sdk")


def _redact(_logger: object, _name: str, event: dict) -> dict:
    """Belt and braces: a field whose name smells of a secret is never written out, and no text
    carries a response_url or a Slack token."""
    for key, value in event.items():
        if any(word in key.lower() for word in _SECRET_KEYS):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = scrub(value)
    return event


def scrub(text: str) -> str:
    """``text`` without Slack response_urls and tokens."""
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def configure_logging(*, fmt: str = "json", level: str = "INFO", stream=None) -> None:  # noqa: ANN001
    stream = stream or sys.stderr
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # A traceback is text like any other: formatted first, then redacted with the rest.
    ending = [structlog.processors.format_exc_info, _redact] if fmt == "json" else [_redact]
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, *ending, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Libraries (uvicorn, slack_bolt, botocore) log through the standard library: the same format
    # (one JSON object a line in production), level and stream as the bot's own lines.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *ending, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
