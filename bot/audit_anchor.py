"""The audit trail's head, anchored outside the database: an S3 object under Object Lock.

The keyed chain (:mod:`bot.store.audit`) makes a rewrite detectable, but not a truncation: deleting
the newest events and moving the head row back leaves a shorter trail that verifies. So the head
(seq, hash, time) is written to S3 as one object per anchor, ``<prefix><seq, 12 digits>-<hash
prefix>.json``, in COMPLIANCE mode with a retention date: nobody, the bucket's owner and root
included, can delete or overwrite it before then. Verification then requires the anchor with the
highest seq to name an event the database still holds, with the same hash.

**Signed.** Whoever can put objects in the bucket (the bot's own role) could otherwise write an
anchor at a truncated head. So each anchor carries ``mac = HMAC-SHA256(AUDIT_KEY,
"anchor|<seq>|<hash>|<anchored_at>")``; with the key, an anchor whose MAC does not verify is
ignored and reported, and the trail is judged against the highest anchor that does. (Without
AUDIT_KEY anchors cannot be signed or checked; the trail is then unprotected anyway, and says so.)

An anchor is written every ``AUDIT_ANCHOR_INTERVAL_SECONDS`` by the bot (:func:`anchor_head`,
after verifying the events since the previous anchor) and by every successful ``audit verify``.
Neither writes over a trail that disagrees with the latest anchor: a tampered trail is never
anchored, so a later anchor cannot mask an earlier one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from bot.clock import Clock, SystemClock
from bot.store.audit import AuditLog, ChainHead, VerifyReport, chain_key
from bot.store.db import stored_utc

if TYPE_CHECKING:
    from bot.aws import AwsGateway
    from bot.settings import Settings

log = structlog.get_logger("menotime.audit")

_SEQ_DIGITS = 12
_FIRST_WINDOW = 64  # events below the database's head searched first for the latest anchor


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: datetime | None  # the anchored event's time
    anchored_at: datetime | None  # None only in an anchor that is not valid (unreadable)
    key: str
    valid: bool = True  # its MAC verifies under AUDIT_KEY (always, without a key: nothing to check)

    @property
    def head(self) -> ChainHead:
        return ChainHead(seq=self.seq, hash=self.hash, at=self.at)


@dataclass(frozen=True)
class LatestAnchors:
    """The valid anchors with the highest seq (normally one), and the anchors above them whose MAC
    does not verify (written by someone without AUDIT_KEY: ignored, reported)."""

    anchors: tuple[Anchor, ...] = ()
    invalid: tuple[Anchor, ...] = ()

    @property
    def top(self) -> Anchor | None:
        return self.anchors[0] if self.anchors else None

    def invalid_problems(self) -> list[str]:
        return [
            f"anchor {a.key} (event {a.seq}) has no valid MAC under AUDIT_KEY: it was not written by the bot "
            "and is ignored (who else can write to the anchor bucket?)"
            for a in self.invalid
        ]


def _anchor_mac(key: bytes, *, seq: int, hash: str, anchored_at: str) -> str:
    return hmac.new(key, f"anchor|{seq}|{hash}|{anchored_at}".encode(), hashlib.sha256).hexdigest()


class AnchorStore:
    """Anchors in one bucket under one prefix (the bucket must have Object Lock enabled)."""

    def __init__(
        self,
        *,
        aws: AwsGateway,
        bucket: str,
        prefix: str,
        retention: timedelta,
        key: bytes | None,
        clock: Clock | None = None,
    ) -> None:
        self._aws, self.bucket, self.prefix, self._retention = aws, bucket, prefix, retention
        self._key = key  # AUDIT_KEY: signs the anchors written, checks those read
        self._clock = clock or SystemClock()
        self._name = re.compile(re.escape(prefix) + rf"(\d{{{_SEQ_DIGITS}}})-[0-9a-f]+\.json")

    @classmethod
    def from_settings(
        cls, settings: Settings, *, aws: AwsGateway | None = None, clock: Clock | None = None
    ) -> AnchorStore | None:
        """None when no anchor bucket is configured."""
        if not settings.audit_anchor_bucket:
            return None
        from bot.aws import gateway_from_settings

        return cls(
            aws=aws or gateway_from_settings(settings),
            bucket=settings.audit_anchor_bucket,
            prefix=settings.audit_anchor_prefix,
            retention=timedelta(days=settings.audit_anchor_retention_days),
            key=chain_key(settings),
            clock=clock,
        )

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def latest(self, *, near: int) -> LatestAnchors:
        """The valid anchors with the highest seq, and the invalid ones above them. ``near`` (the
        database's head) is where the search starts: anchors are listed from a little below it,
        then further down."""
        window = _FIRST_WINDOW
        read: dict[str, Anchor] = {}
        while True:
            start = max(near - window, 0)
            keys = sorted(
                (k for k in self._keys_from(start) if self._name.fullmatch(k)), key=self._seq, reverse=True
            )
            valid: list[Anchor] = []
            invalid: list[Anchor] = []
            for key in keys:
                anchor = read.get(key) or read.setdefault(key, self._read(key))
                if valid and anchor.seq < valid[0].seq:
                    break
                (valid if anchor.valid else invalid).append(anchor)
            if valid or start == 0:
                return LatestAnchors(anchors=tuple(valid), invalid=tuple(invalid))
            window *= 16

    def write(self, head: ChainHead) -> Anchor:
        now = self._clock.now()
        key = f"{self.prefix}{head.seq:0{_SEQ_DIGITS}d}-{head.hash[:16]}.json"
        anchored_at = now.isoformat()
        body = {
            "seq": head.seq,
            "hash": head.hash,
            "at": head.at.isoformat() if head.at else None,
            "anchored_at": anchored_at,
            "mac": _anchor_mac(self._key, seq=head.seq, hash=head.hash, anchored_at=anchored_at)
            if self._key is not None
            else None,
        }
        self._aws.call(
            "s3",
            "put_object",
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(body).encode(),
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=now + self._retention,
        )
        log.info("audit_anchored", seq=head.seq, key=key)
        return Anchor(seq=head.seq, hash=head.hash, at=head.at, anchored_at=now, key=key)

    def _keys_from(self, seq: int) -> list[str]:
        # A key for ``seq`` is the bare number followed by "-…", so it sorts after the bare number.
        start_after = f"{self.prefix}{seq:0{_SEQ_DIGITS}d}"
        found = self._aws.paginate(
            "s3",
            "list_objects_v2",
            "Contents",
            Bucket=self.bucket,
            Prefix=self.prefix,
            StartAfter=start_after,
        )
        return [str(item["Key"]) for item in found]

    def _seq(self, key: str) -> int:
        match = self._name.fullmatch(key)
        assert match is not None
        return int(match.group(1))

    def _read(self, key: str) -> Anchor:
        raw = self._aws.call("s3", "get_object", Bucket=self.bucket, Key=key)["Body"].read()
        try:
            body = json.loads(raw)
            seq, digest, anchored_at, at = (
                int(body["seq"]),
                str(body["hash"]),
                str(body["anchored_at"]),
                body.get("at"),
            )
            anchor = Anchor(
                seq=seq,
                hash=digest,
                at=stored_utc(datetime.fromisoformat(at)) if at else None,
                anchored_at=stored_utc(datetime.fromisoformat(anchored_at)),
                key=key,
            )
        except (ValueError, TypeError, KeyError):
            return Anchor(seq=self._seq(key), hash="", at=None, anchored_at=None, key=key, valid=False)
        if self._key is None or seq != self._seq(key):
            return dataclasses.replace(anchor, valid=self._key is None)
        mac = body.get("mac")
        expected = _anchor_mac(self._key, seq=seq, hash=digest, anchored_at=anchored_at)
        return dataclasses.replace(anchor, valid=isinstance(mac, str) and hmac.compare_digest(mac, expected))


def anchor_problems(audit: AuditLog, anchors: Sequence[Anchor], head: ChainHead) -> list[str]:
    """What the database's trail (up to ``head``) contradicts in the latest anchors."""
    problems: list[str] = []
    for anchor in anchors:
        when = f"{anchor.anchored_at:%Y-%m-%d %H:%M} UTC" if anchor.anchored_at else "an unknown date"
        if anchor.seq > head.seq:
            problems.append(
                f"the trail ends at event {head.seq} but event {anchor.seq} was anchored outside the "
                f"database on {when} (events at the end were deleted)"
            )
            continue
        stored = audit.hash_at(anchor.seq)
        if stored is None:
            problems.append(f"event {anchor.seq}, anchored on {when}, is missing (deleted)")
        elif stored != anchor.hash:
            problems.append(
                f"event {anchor.seq} is not the event anchored on {when} (the trail was truncated and "
                "written again, or rewritten)"
            )
    return problems


@dataclass(frozen=True)
class TrailReport:
    """``audit verify``: the chain's own verdict, then the anchor's."""

    chain: VerifyReport
    anchoring: bool  # an anchor bucket is configured
    anchor_problems: tuple[str, ...] = ()
    checked_against: Anchor | None = None  # the latest anchor before this verification
    anchored: Anchor | None = None  # written by this verification
    problems: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "problems", (*self.chain.problems, *self.anchor_problems))

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.anchor_problems


def verify_trail(*, audit: AuditLog, anchors: AnchorStore | None) -> TrailReport:
    """Verifies the whole chain and, with an anchor bucket, that it reaches the latest anchor with
    the same hash; a trail that passes both is anchored anew. AWS errors propagate (the caller
    says the trail could not be checked)."""
    chain = audit.verify()
    if anchors is None:
        return TrailReport(chain=chain, anchoring=False)
    latest = anchors.latest(near=chain.head.seq)
    problems = (*latest.invalid_problems(), *anchor_problems(audit, latest.anchors, chain.head))
    anchored = None
    if (
        chain.ok
        and not problems
        and chain.head.seq
        and (latest.top is None or latest.top.seq < chain.head.seq)
    ):
        anchored = anchors.write(chain.head)
    return TrailReport(
        chain=chain, anchoring=True, anchor_problems=problems, checked_against=latest.top, anchored=anchored
    )


def anchor_head(*, audit: AuditLog, anchors: AnchorStore) -> Anchor | None:
    """The periodic anchor: verifies the events written since the latest anchor, then anchors the
    head. A trail that disagrees with its anchor, or does not verify, is logged and not anchored."""
    head = audit.head()
    latest = anchors.latest(near=head.seq)
    if latest.invalid:
        # Reported, and anchoring goes on: stopping it would let one planted object end truncation detection.
        log.error(
            "audit_anchor_invalid",
            keys=[a.key for a in latest.invalid][:10],
            hint="an anchor without a valid MAC is in the bucket; run `menotime-bot audit verify`",
        )
    problems = anchor_problems(audit, latest.anchors, head)
    if problems:
        log.error("audit_anchor_mismatch", problems=problems, hint="run `menotime-bot audit verify`")
        return None
    since = latest.top.head if latest.top else None
    if not head.seq or (since is not None and since.seq >= head.seq):
        return None
    report = audit.verify(since=since)
    if not report.ok:
        log.error(
            "audit_trail_not_anchored",
            problems=list(report.problems)[:10],
            unchecked_from=report.unchecked_from,
            hint="run `menotime-bot audit verify`",
        )
        return None
    return anchors.write(report.head)


def start_trail(*, audit: AuditLog, settings: Settings, clock: Clock) -> None:
    """`serve` and `socket` at start: a key that cannot extend the trail stops the start (AuditKeyError,
    exit 2), and so does a key set for a trail of unkeyed events nobody has keyed yet (`audit key`);
    with a key, an empty trail gets its keying marker now; what is left unprotected is one warning."""
    audit.check_key()
    if audit.keyed:
        audit.ensure_keyed(at=clock.now())
    missing = [
        *(["AUDIT_KEY (a rewrite of the trail cannot be detected)"] if not audit.keyed else []),
        *(
            ["AUDIT_ANCHOR_BUCKET (a truncation of the trail cannot be detected)"]
            if not settings.audit_anchor_bucket
            else []
        ),
    ]
    if missing:
        log.warning(
            "audit_trail_unprotected",
            missing="; ".join(missing),
            hint="set them before this bot holds real audit records",
        )


def anchor_round(*, audit: AuditLog, anchors: AnchorStore) -> None:
    """One round of the anchoring worker: an unreachable bucket is one log line, tried again next round."""
    from botocore.exceptions import ClientError

    from bot.aws import error_code
    from bot.errors import AwsUnavailable

    try:
        anchor_head(audit=audit, anchors=anchors)
    except AwsUnavailable as exc:
        log.warning("audit_anchor_failed", bucket=anchors.bucket, error=exc.message)
    except ClientError as exc:
        log.warning("audit_anchor_failed", bucket=anchors.bucket, error=error_code(exc))
