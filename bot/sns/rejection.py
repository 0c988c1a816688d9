"""The refusal of an SNS message: the reason to log and the 4xx status to answer."""

from __future__ import annotations


class SnsRejected(Exception):
    """The message is refused. ``reason`` is one line for the log and the 4xx body."""

    def __init__(self, reason: str, status: int = 403, *, kind: str | None = None) -> None:
        # Reasons quote attacker-supplied values: keep them on one printable, bounded line.
        reason = "".join(c if c.isprintable() else "?" for c in reason)[:300]
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.kind = kind  # the bounded metric label, when the raiser knows it
