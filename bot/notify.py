"""Posting to channels: change announcements, approval requests, living rollout messages.

The core hands a result object and a channel; the notifier renders it for its medium. Slack posts
go through the Web API client (issue 4's outbox will sit behind this same interface); the console
prints the text rendering; the null notifier drops everything (tests that do not look).
"""

from __future__ import annotations

import itertools
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TextIO

import structlog

from bot.render import Renderable, render_slack, render_text

log = structlog.get_logger("menotime.notify")


@dataclass(frozen=True)
class MessageRef:
    channel: str
    ts: str


class Notifier(Protocol):
    def post(
        self,
        *,
        channel: str,
        result: Renderable,
        thread: MessageRef | None = None,
        origin_at: datetime | None = None,
    ) -> MessageRef | None:
        """``origin_at``: when what the message reports happened (an alarm's SNS Timestamp), for the
        latency metric of notifiers that send later."""
        ...

    def update(self, *, ref: MessageRef, result: Renderable) -> None: ...

    def upload(self, *, ref: MessageRef, filename: str, content: bytes, title: str) -> None:
        """A file (the cost chart) in the thread of a message already posted."""
        ...


class NullNotifier:
    def post(
        self,
        *,
        channel: str,
        result: Renderable,
        thread: MessageRef | None = None,
        origin_at: datetime | None = None,
    ) -> MessageRef | None:
        return None

    def update(self, *, ref: MessageRef, result: Renderable) -> None:
        return None

    def upload(self, *, ref: MessageRef, filename: str, content: bytes, title: str) -> None:
        return None


class ConsoleNotifier:
    """Channel posts printed where the console user can see them."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._shown: dict[str, list[str]] = {}  # what each message says now, to print only changes

    def post(
        self,
        *,
        channel: str,
        result: Renderable,
        thread: MessageRef | None = None,
        origin_at: datetime | None = None,
    ) -> MessageRef | None:
        ref = MessageRef(channel=channel, ts=f"{next(self._ts)}")
        self._shown[ref.ts] = render_text(result).rstrip("\n").split("\n")
        self._write(f"[{channel}, thread {thread.ts}] " if thread else f"[{channel}] ", result)
        return ref

    def update(self, *, ref: MessageRef, result: Renderable) -> None:
        """An edit in place: the headline and the lines that changed (a terminal cannot redraw)."""
        lines = render_text(result).rstrip("\n").split("\n")
        before = set(self._shown.get(ref.ts, ()))
        self._shown[ref.ts] = lines
        changed = [line for line in lines[1:] if line not in before]
        text = "\n    ".join([lines[0], *changed])
        with self._lock:
            self._out.write(f"  [{ref.channel}, message {ref.ts} updated] {text}\n")
            self._out.flush()

    def upload(self, *, ref: MessageRef, filename: str, content: bytes, title: str) -> None:
        with self._lock:
            self._out.write(
                f"  [{ref.channel}, thread {ref.ts}] file {filename} ({title}, {len(content):,} bytes)\n"
            )
            self._out.flush()

    def _write(self, prefix: str, result: Renderable) -> None:
        text = render_text(result).rstrip("\n").replace("\n", "\n    ")
        with self._lock:
            self._out.write(f"  {prefix}{text}\n")
            self._out.flush()


class SlackNotifier:
    """chat.postMessage / chat.update through the Web API client (which retries 429s and 5xx)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def post(
        self,
        *,
        channel: str,
        result: Renderable,
        thread: MessageRef | None = None,
        origin_at: datetime | None = None,
    ) -> MessageRef | None:
        message = render_slack(result)
        extra = {"thread_ts": thread.ts} if thread is not None else {}
        try:
            answer = self._client.chat_postMessage(
                channel=channel, text=message["text"], blocks=message["blocks"], **extra
            )
        except Exception as exc:  # noqa: BLE001 - a failed announcement must not undo the change it announces
            log.error("slack_post_failed", channel=channel, error=type(exc).__name__)
            return None
        return MessageRef(channel=str(answer.get("channel") or channel), ts=str(answer["ts"]))

    def update(self, *, ref: MessageRef, result: Renderable) -> None:
        message = render_slack(result)
        try:
            self._client.chat_update(
                channel=ref.channel, ts=ref.ts, text=message["text"], blocks=message["blocks"]
            )
        except Exception as exc:  # noqa: BLE001
            log.error("slack_update_failed", channel=ref.channel, error=type(exc).__name__)

    def upload(self, *, ref: MessageRef, filename: str, content: bytes, title: str) -> None:
        """Slack's external upload flow (files.getUploadURLExternal, then completeUploadExternal)."""
        try:
            self._client.files_upload_v2(
                channel=ref.channel, thread_ts=ref.ts, filename=filename, content=content, title=title
            )
        except Exception as exc:  # noqa: BLE001
            log.error("slack_upload_failed", channel=ref.channel, error=type(exc).__name__)
