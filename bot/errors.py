"""Typed errors, raised where the problem is found and turned into one user sentence at the edge.

Every message is written for the person who typed the command: it says what is wrong and what to
do instead. Raw exception text never reaches a user; unexpected errors get a correlation id.
"""

from __future__ import annotations


class BotError(Exception):
    """An error whose ``message`` is safe and useful to show to the user."""

    kind = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(BotError):
    """The command could not be understood: unknown verb, bad argument, bad flag."""

    kind = "bad_input"


class AccessDenied(BotError):
    """Policy said no; the message names the rule and the roles that would allow it."""

    kind = "denied"


class NotFound(BotError):
    """A named thing (environment, revision, image tag, request) does not exist."""

    kind = "not_found"


class PolicyViolation(BotError):
    """Allowed in principle, refused by a guardrail (bounds, window, lock, soak)."""

    kind = "policy"


class AwsUnavailable(BotError):
    """AWS could not be reached or kept failing; nothing was changed."""

    kind = "aws_unavailable"


class ConfigError(Exception):
    """The configuration is invalid. Raised at start-up; the message names file, line and field."""
