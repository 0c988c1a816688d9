"""The URLs an SNS message names (``SigningCertURL``, ``SubscribeURL``): the rule each must pass
before the bot fetches it, the fetch itself, and the signing certificates so fetched, cached in memory
and on disk, failed fetches remembered."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import structlog
from cryptography import x509

from bot.clock import Clock, SystemClock
from bot.sns.envelope import RefusalKind, SnsRejected

log = structlog.get_logger("menotime.sns")

FETCH_TIMEOUT_SECONDS = 5.0
_MAX_CERT_BYTES = 64 * 1024  # a signing certificate is ~2 KiB; never read an endless body
FAILURE_TTL = timedelta(
    minutes=5
)  # a certificate URL that failed for good is not fetched again for this long
TRANSIENT_FAILURE_TTL = timedelta(
    seconds=15
)  # after a timeout, a network error or a 5xx: 503s, then a new try
_MAX_REMEMBERED_FAILURES = 1024  # distinct failed URLs remembered (oldest forgotten first)


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


def check_sns_url(url: str, *, field: str, host: re.Pattern[str], kind: RefusalKind) -> SplitResult:
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


def _fetch_refusal(url: str, exc: Exception) -> SnsRejected:
    """Why a certificate fetch failed, as a refusal: 403 for good (HTTP 4xx, not a certificate, too
    large), 503 for what may pass (timeouts, network errors, HTTP 5xx), so SNS sends it again."""
    if isinstance(exc, SnsRejected):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        status = 503 if exc.code >= 500 else 403
        return SnsRejected(
            f"could not fetch SigningCertURL {url!r}: HTTP {exc.code}", status, kind="certificate"
        )
    definitive = isinstance(exc, ResponseTooLarge)
    return SnsRejected(
        f"could not fetch SigningCertURL {url!r}: {type(exc).__name__}",
        403 if definitive else 503,
        kind="certificate",
    )


def _default_fetch(url: str) -> bytes:
    return fetch_checked_url(url, timeout=FETCH_TIMEOUT_SECONDS, limit=_MAX_CERT_BYTES)


class CertificateStore:
    """SNS signing certificates by URL: memory, then ``<cache_dir>/<sha256(url)>.pem``, then fetch.

    A file already in the cache directory is trusted as is: that is how air-gapped installs and
    tests pin certificates. A URL whose fetch failed for good (HTTP 4xx, not a certificate) is
    refused (403) from memory for ``failure_ttl``: a flood of forged messages naming it costs one
    fetch, not one each. A failure that may pass (a timeout, a network error, HTTP 5xx) answers 503,
    which SNS retries, and is remembered only for ``transient_ttl``: a blip on AWS's real
    certificate URL must not cost genuine alarms, nor let a forged message poison that URL for long.
    """

    def __init__(
        self,
        *,
        host_pattern: str,
        cache_dir: Path | None,
        fetch: Callable[[str], bytes] | None = None,
        clock: Clock | None = None,
        failure_ttl: timedelta = FAILURE_TTL,
        transient_ttl: timedelta = TRANSIENT_FAILURE_TTL,
    ) -> None:
        self.host = re.compile(host_pattern)
        self._cache_dir = cache_dir
        self._fetch = fetch or _default_fetch
        self._clock = clock or SystemClock()
        self._failure_ttl, self._transient_ttl = failure_ttl, transient_ttl
        self._memory: dict[str, x509.Certificate] = {}
        self._failures: OrderedDict[str, tuple[datetime, SnsRejected]] = OrderedDict()

    def cache_path(self, url: str) -> Path | None:
        if self._cache_dir is None:
            return None
        return self._cache_dir / f"{hashlib.sha256(url.encode('utf-8')).hexdigest()}.pem"

    def check_url(self, url: str) -> None:
        """SnsRejected(403) unless ``url`` passes ``check_sns_url`` and names a .pem file."""
        parts = check_sns_url(url, field="SigningCertURL", host=self.host, kind="certificate")
        if not parts.path.endswith(".pem") or parts.query or parts.fragment:
            raise SnsRejected(f"SigningCertURL {url!r} is not a .pem file", kind="certificate")

    def in_memory(self, url: str) -> bool:
        """Whether ``url`` is answered from memory (its certificate, or its recent failure): verifying
        then neither reads nor fetches."""
        return url in self._memory or self._recent_failure(url) is not None

    def get(self, url: str) -> x509.Certificate:
        self.check_url(url)
        cert = self._memory.get(url)
        if cert is not None:
            return cert
        failed = self._recent_failure(url)
        if failed is not None:
            # A new exception each time: re-raising one instance would grow its traceback forever.
            raise SnsRejected(failed.reason, failed.status, kind=failed.kind)
        path = self.cache_path(url)
        if path is not None and path.is_file():
            cert = self._load(path.read_bytes(), f"cached certificate {path.name}")
        else:
            try:
                pem = self._fetch(url)
                cert = self._load(pem, f"certificate from {url!r}")
            except Exception as exc:  # noqa: BLE001 - any fetch failure is a refusal, said in one line
                rejected = _fetch_refusal(url, exc)
                self._remember_failure(url, rejected)
                raise rejected from None
            if path is not None:
                self._store(path, pem)
        self._memory[url] = cert
        return cert

    def _recent_failure(self, url: str) -> SnsRejected | None:
        entry = self._failures.get(url)
        if entry is None:
            return None
        until, rejected = entry
        if self._clock.now() >= until:
            self._failures.pop(url, None)
            return None
        return rejected

    def _remember_failure(self, url: str, rejected: SnsRejected) -> None:
        ttl = self._transient_ttl if rejected.status >= 500 else self._failure_ttl
        self._failures.pop(url, None)
        self._failures[url] = (self._clock.now() + ttl, rejected)
        while len(self._failures) > _MAX_REMEMBERED_FAILURES:
            self._failures.popitem(last=False)  # bounded: URLs are attacker-chosen
        log.warning(
            "sns_cert_fetch_failed",
            url=url[:200],
            reason=rejected.reason,
            status=rejected.status,
            refused_for_seconds=int(ttl.total_seconds()),
        )

    @staticmethod
    def _load(pem: bytes, what: str) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise SnsRejected(f"{what} is not a PEM certificate", kind="certificate") from None

    @staticmethod
    def _store(path: Path, pem: bytes) -> None:
        # Write-then-rename: a concurrent reader sees the whole certificate or none of it.
        # A cache that cannot be written costs a fetch next time, never a refused message.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pem")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(pem)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("sns_cert_cache_write_failed", path=str(path), error=str(exc))
