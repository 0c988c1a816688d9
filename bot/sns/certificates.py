"""SNS signing certificates by URL, cached in memory and on disk, failed fetches remembered."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from cryptography import x509

from bot.clock import Clock, SystemClock
from bot.sns.rejection import SnsRejected
from bot.sns.urls import ResponseTooLarge, check_sns_url, fetch_checked_url

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
