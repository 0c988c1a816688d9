"""The URLs an SNS message names (``SigningCertURL``, ``SubscribeURL``): the rule each must pass
before the bot fetches it, and the fetch itself."""

from __future__ import annotations

import re
import urllib.request
from typing import Any
from urllib.parse import SplitResult, urlsplit

from bot.sns.rejection import SnsRejected


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could lead off the allowed host: the URL we checked is the only one we fetch.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class ResponseTooLarge(OSError):
    """A fetched URL answered more than the bot reads: refused for good, not retried."""


def fetch_checked_url(url: str, *, timeout: float, limit: int) -> bytes:
    """GET a URL already checked against the SNS host rule: no redirects, HTTP 200 only, at most
    ``limit`` bytes (more is an error)."""
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(url, timeout=timeout) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        data: bytes = response.read(limit + 1)
    if len(data) > limit:
        raise ResponseTooLarge("response too large")
    return data


def check_sns_url(url: str, *, field: str, host: re.Pattern[str], kind: str) -> SplitResult:
    """SnsRejected(403) unless ``url`` is https on an SNS host (``host``), port 443 or none, with no
    user information, backslash, space or non-ASCII character: the rule for every URL the bot
    fetches because a message named it (``SigningCertURL``, ``SubscribeURL``)."""
    if not url or any(not (0x21 <= ord(c) <= 0x7E) for c in url):
        raise SnsRejected(f"{field} has spaces or non-ASCII characters", kind=kind)
    # A backslash is a path separator to some URL parsers and part of the host to others.
    if "\\" in url:
        raise SnsRejected(f"{field} {url!r} has a backslash", kind=kind)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        raise SnsRejected(f"{field} {url!r} is not a valid URL", kind=kind) from None
    if parts.scheme != "https":
        raise SnsRejected(f"{field} {url!r} is not https", kind=kind)
    # userinfo ("a@host") is where URL parsers disagree on the host: refuse it outright.
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise SnsRejected(f"{field} {url!r} has user information", kind=kind)
    if port not in (None, 443):
        raise SnsRejected(f"{field} {url!r} uses port {port}", kind=kind)
    if not parts.hostname or not host.fullmatch(parts.hostname):
        raise SnsRejected(f"{field} host {parts.hostname!r} is not an SNS host", kind=kind)
    return parts
