"""Text the bot writes with people and links in it, typed: ``Rich("Cancelled by ", Mention(user))``.

The core says *who* and *which thread*; the renderers decide how that looks — a live ``<@U…>`` and
``<url|label>`` in Slack, ``@U…`` and the URL on a terminal — and escape every other character. So
no text from outside can ever become a mention or a link, and no renderer has to guess which
``<@…>`` in a string the bot meant (the old way: Slack syntax in the core, un-escaped by regexes).

A ``Rich`` is also a ``str`` (as a Slack reader would see it written), so it compares, searches and
logs like the text it replaces; joining it with ``+`` keeps its parts, an f-string does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")


@dataclass(frozen=True)
class Mention:
    """A person: a Slack user id, or another actor (``cli:alice``, ``scheduler``) shown as written."""

    user: str


@dataclass(frozen=True)
class Link:
    url: str
    label: str


Part = str | Mention | Link


class Rich(str):
    parts: tuple[Part, ...]

    def __new__(cls, *parts: Part | Rich) -> Rich:
        flat: list[Part] = []
        for part in parts:
            flat.extend(part.parts if isinstance(part, Rich) else (part,))
        text = super().__new__(cls, "".join(_as_written(p) for p in flat))
        text.parts = tuple(flat)
        return text

    def __add__(self, other: Any) -> Rich:
        return Rich(self, other) if isinstance(other, str) else NotImplemented

    def __radd__(self, other: Any) -> Rich:
        return Rich(other, self) if isinstance(other, str) else NotImplemented


def join(separator: str, items: list[str] | tuple[str, ...]) -> Rich:
    """``separator.join(items)``, keeping the mentions and links of the items that have them."""
    parts: list[Part | Rich] = []
    for index, item in enumerate(items):
        if index:
            parts.append(separator)
        parts.append(item)
    return Rich(*parts)


def _as_written(part: Part) -> str:
    if isinstance(part, Mention):
        return f"<@{part.user}>" if _SLACK_USER.fullmatch(part.user) else part.user
    if isinstance(part, Link):
        return f"<{part.url}|{part.label}>"
    return part


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters, so no text can ping a channel or fake a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_slack(value: Any) -> str:
    """mrkdwn: every character escaped, except the mentions and links the bot typed."""
    if not isinstance(value, Rich):
        return escape_mrkdwn(str(value))
    out: list[str] = []
    for part in value.parts:
        if isinstance(part, Mention):
            who = part.user
            out.append(f"<@{who}>" if _SLACK_USER.fullmatch(who) else escape_mrkdwn(who))
        elif isinstance(part, Link):
            out.append(f"<{escape_mrkdwn(part.url)}|{escape_mrkdwn(part.label)}>")
        else:
            out.append(escape_mrkdwn(part))
    return "".join(out)


def to_console(value: Any) -> str:
    """For a terminal: ``@U…`` for a person, ``label (url)`` for a link, no mrkdwn emphasis."""
    parts = value.parts if isinstance(value, Rich) else (str(value),)
    out: list[str] = []
    for part in parts:
        if isinstance(part, Mention):
            out.append(f"@{part.user}" if _SLACK_USER.fullmatch(part.user) else part.user)
        elif isinstance(part, Link):
            out.append(f"{part.label} ({part.url})")
        else:
            out.append(part.replace("`", "").replace("*", ""))
    return "".join(out)
