"""Rendering of result objects: Jinja2 templates producing Slack Block Kit JSON, and plain text.

Each result class names its template (``template = "status"``); ``templates/slack/status.json.j2``
renders a JSON object ``{"text": fallback, "blocks": [...]}`` and ``templates/text/status.txt.j2``
the console text. Templates write every string through ``tojson`` (after ``mrkdwn`` where the text
goes into a mrkdwn field), so user or AWS text can never break the JSON or inject Slack markup.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, Protocol

import jinja2

from bot.clock import DISPLAY_ZONE
from bot.rich import Mention, Rich, join, to_console, to_slack

PACIFIC = DISPLAY_ZONE

Audience = Literal["ephemeral", "in_channel"]


class Renderable(Protocol):
    """A result a template can show. Read-only, so a class constant (``audience: ClassVar[...] = ...``)
    and a property (``ChangeResult.audience``, chosen per answer) both satisfy it."""

    @property
    def template(self) -> str: ...

    @property
    def audience(self) -> Audience: ...


# Where Slack markup could start in text from outside: a mention (<@U…>, <@W…>), a channel (<#C…>),
# a special (<!here>, <!channel>, <!everyone>, <!subteam^…>) or a link (<https://…>).
_MARKUP_START = re.compile(r"<(?=[@#!]|[A-Za-z][A-Za-z0-9+.-]*:)")
_WORD_JOINER = "\u2060"  # invisible: the text reads the same, but no longer matches Slack's (or our) markup


def inert(text: str) -> str:
    """Text the bot did not write (Slack users' reasons and notes, AWS alarm names, descriptions and
    reasons), made unable to become a live mention, channel ping or link, however it is rendered
    later: an invisible word joiner after each ``<`` that could start Slack markup. Applied where
    such text enters the bot (``bot.commands.parse``, ``bot.events.parse_message``), so the bot's
    own sentences can quote it next to the mentions they insert. Idempotent."""
    return _MARKUP_START.sub("<" + _WORD_JOINER, text)


def as_written(text: str) -> str:
    """``inert``'s inverse, for asking AWS about a name exactly as it was written."""
    return text.replace("<" + _WORD_JOINER, "<")


def inert_or_none(value: object) -> str | None:
    """``inert`` for an optional field as AWS gives it (absent stays None)."""
    return None if value is None else inert(str(value))


def mrkdwn_escape(value: Any) -> str:
    """Slack mrkdwn of ``value``: every control character escaped, so no text can ping a channel or
    fake a link; the people and links the bot typed (``bot.rich``) alone are live."""
    return to_slack(value)


def mention(who: str) -> Rich:
    """A person, typed: a Slack user ID renders as a mention, anyone else (``cli:alice``) as written."""
    return Rich(Mention(who))


def actor(value: Any) -> Rich:
    """Who did something (a Slack user, ``scheduler``, ``cli:alice``), for the templates to render."""
    return mention(str(value))


def plain(value: Any) -> str:
    """For a terminal: people as ``@U…``, links as ``label (url)``, no backticks or asterisks."""
    return to_console(value)


def when(value: datetime | None) -> str:
    """``2026-11-25 10:46 PST (18:46 UTC)``: on-call reads Pacific time, AWS speaks UTC."""
    if value is None:
        return "never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(PACIFIC)
    return f"{local:%Y-%m-%d %H:%M %Z} ({value.astimezone(UTC):%H:%M} UTC)"


def duration(start: datetime, end: datetime) -> str:
    """``17 min``, ``2 h 5 min``, ``45 s``."""
    aware = [v.replace(tzinfo=UTC) if v.tzinfo is None else v for v in (start, end)]
    seconds = max(0, int((aware[1] - aware[0]).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    return minutes_text(round(seconds / 60))


def minutes_text(minutes: int) -> str:
    """``17 min``, ``1 h``, ``2 h 5 min``: a span of whole minutes as every reply writes one."""
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["mrkdwn"] = mrkdwn_escape
    env.filters["when"] = when
    env.filters["plain"] = plain
    env.filters["actor"] = actor
    env.filters["join"] = lambda items, separator="": join(
        separator, [str(i) if not isinstance(i, str) else i for i in items]
    )
    env.globals["plural"] = plural
    return env


def render_slack(result: Renderable) -> dict[str, Any]:
    """``{"text": ..., "blocks": [...]}`` ready for chat.postMessage or a response_url."""
    raw = _environment().get_template(f"slack/{result.template}.json.j2").render(r=result)
    try:
        message: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError as exc:  # a template bug, caught by the rendering tests
        raise RuntimeError(f"template slack/{result.template}.json.j2 produced invalid JSON: {exc}") from exc
    message["blocks"] = [b for b in message.get("blocks", []) if b]
    return message


def render_text(result: Renderable) -> str:
    return _environment().get_template(f"text/{result.template}.txt.j2").render(r=result).strip() + "\n"
