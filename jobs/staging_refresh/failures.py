"""How a refresh run stops: its own errors, and the one safe sentence any error is told as."""

from __future__ import annotations

from botocore.exceptions import ClientError

from bot.aws import error_code
from bot.errors import BotError
from jobs.staging_refresh.rds import RefreshRefused


class VerificationFailed(BotError):
    kind = "verification_failed"


class LeaseLost(BotError):
    """Another run took the refresh's lock: this one must change nothing more."""

    kind = "lease_lost"


class RefreshRefusedEarly(RefreshRefused):
    """Raised before a run row exists."""


def _describe_error(exc: BaseException) -> str:
    """One safe sentence: our own messages (AwsUnavailable included), AWS error codes, else the
    error's type (never its text, which for a database driver could carry connection details)."""
    if isinstance(exc, BotError):
        return exc.message
    if isinstance(exc, ClientError):
        operation = getattr(exc, "operation_name", "AWS")
        return f"AWS refused {operation} ({error_code(exc)})"
    return f"unexpected {type(exc).__name__}"
