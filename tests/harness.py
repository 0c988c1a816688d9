"""The test harness, in one place: a recording notifier, `wait_until`, and `TestBot`.

``TestBot`` is Errbot's idea: the whole bot (registry, policy, guardrails, audit trail, moto-backed
AWS, SQLite) behind one call, ``testbot.exec("status prod", user=ONCALL)``, answering the text the
console would show. The ``testbot`` fixture (tests/conftest.py) builds one on a seeded moto.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from bot.answers import Reply
from bot.core import Core
from bot.dispatch import Dispatcher
from bot.notify import MessageRef
from bot.render import render_slack, render_text
from tests.blockkit import assert_valid_message


class Post(NamedTuple):
    """One message the bot posted: where, what (the result, before rendering), in which thread."""

    channel: str
    result: Any
    thread: MessageRef | None
    ref: MessageRef

    @property
    def text(self) -> str:
        return render_text(self.result)


class RecordingNotifier:
    """Posts, edits and uploads as lists; every Slack rendering is checked against Block Kit's limits.

    ``fail``: ``True`` answers a post with no message (Slack did not take it); ``"raise"`` raises,
    as a connection failure would."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.updates: list[tuple[MessageRef, Any]] = []
        self.uploads: list[tuple[MessageRef, str, bytes, str]] = []
        self.fail: bool | str = False
        self._lock = threading.Lock()

    def post(
        self,
        *,
        channel: str,
        result: Any,
        thread: MessageRef | None = None,
        origin_at: datetime | None = None,
    ) -> MessageRef | None:
        if self.fail == "raise":
            raise ConnectionError("slack is down")
        if self.fail:
            return None
        assert_valid_message(render_slack(result))
        with self._lock:
            ref = MessageRef(channel, f"{len(self.posts) + 1}.0")
            self.posts.append(Post(channel, result, thread, ref))
        return ref

    def update(self, *, ref: MessageRef, result: Any) -> None:
        assert_valid_message(render_slack(result))
        with self._lock:
            self.updates.append((ref, result))

    def upload(self, *, ref: MessageRef, filename: str, content: bytes, title: str) -> None:
        with self._lock:
            self.uploads.append((ref, filename, content, title))

    def texts(self, channel: str | None = None) -> list[str]:
        """The posts' console text (of one channel), then the edits'."""
        posts = [p.text for p in self.posts if channel is None or p.channel == channel]
        return posts + ([render_text(r) for _, r in self.updates] if channel is None else [])

    def roots(self) -> list[Post]:
        return [p for p in self.posts if p.thread is None]

    def replies(self) -> list[Post]:
        return [p for p in self.posts if p.thread is not None]


def wait_until(condition: Callable[[], Any], *, timeout: float = 10.0, what: str = "the condition") -> Any:
    """Poll ``condition`` until it answers something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        answer = condition()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s")
        time.sleep(0.02)


@dataclass
class TestBot:
    """The bot as a console user sees it."""

    __test__ = False  # not a test class, whatever its name

    core: Core
    notifier: RecordingNotifier

    def reply(self, line: str, *, user: str) -> Reply:
        return Dispatcher(core=self.core).handle(user_id=user, text=line, source="test")

    def exec(self, line: str, *, user: str) -> str:
        """The answer's console text."""
        return render_text(self.reply(line, user=user).result)
