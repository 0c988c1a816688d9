"""Deploy records: every deploy and rollback, who asked, from what to what, and how it ended.

They answer three questions the guardrails ask: what was live before the current revision
(rollback's default target), how long an image digest has run in an environment (the soak), and
what the last deploy was (status).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.store.db import Database, stored_utc
from bot.store.models import DeployRecord

IN_PROGRESS, COMPLETED, FAILED, ROLLED_BACK, TIMED_OUT = "in_progress", "completed", "failed", "rolled_back", "timed_out"
UNKNOWN = "unknown"  # the bot could not see how it ended (AWS did not answer, the bot stopped)


@dataclass(frozen=True)
class DeployView:
    id: int
    env: str
    kind: str
    requested_by: str
    image_tag: str | None
    image_digest: str | None
    from_revision: int | None
    to_revision: int | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    detail: str | None
    approval_id: str | None
    emergency_reason: str | None
    channel: str | None
    message_ts: str | None


def _view(row: DeployRecord) -> DeployView:
    return DeployView(id=row.id, env=row.env, kind=row.kind, requested_by=row.requested_by, image_tag=row.image_tag,
                      image_digest=row.image_digest, from_revision=row.from_revision, to_revision=row.to_revision,
                      started_at=stored_utc(row.started_at), finished_at=stored_utc(row.finished_at) if row.finished_at else None, outcome=row.outcome,
                      detail=row.detail, approval_id=row.approval_id, emergency_reason=row.emergency_reason,
                      channel=row.channel, message_ts=row.message_ts)


class DeployLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def start(self, *, env: str, kind: str, requested_by: str, image_tag: str | None, image_digest: str | None,
              from_revision: int | None, to_revision: int | None, at: datetime, request_id: str | None = None,
              approval_id: str | None = None, emergency_reason: str | None = None) -> DeployView:
        with self._db.session() as session:
            row = DeployRecord(env=env, kind=kind, requested_by=requested_by, image_tag=image_tag,
                               image_digest=image_digest, from_revision=from_revision, to_revision=to_revision,
                               started_at=at, outcome=IN_PROGRESS, request_id=request_id, approval_id=approval_id,
                               emergency_reason=emergency_reason)
            session.add(row)
            session.flush()
            return _view(row)

    def set_message(self, *, id: int, channel: str, ts: str) -> None:  # noqa: A002 - the record's id
        with self._db.session() as session:
            session.execute(update(DeployRecord).where(DeployRecord.id == id).values(channel=channel, message_ts=ts))

    def finish(self, *, id: int, outcome: str, at: datetime, detail: str | None = None) -> DeployView:  # noqa: A002
        with self._db.session() as session:
            row = session.get(DeployRecord, id)
            row.outcome, row.finished_at, row.detail = outcome, at, detail
            session.flush()
            return _view(row)

    def get(self, id: int) -> DeployView | None:  # noqa: A002
        with self._db.session(write=False) as session:
            row = session.get(DeployRecord, id)
            return _view(row) if row else None

    def last(self, env: str) -> DeployView | None:
        recent = self.recent(env, 1)
        return recent[0] if recent else None

    def recent(self, env: str, limit: int = 10) -> list[DeployView]:
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(DeployRecord).where(DeployRecord.env == env)
                .order_by(DeployRecord.started_at.desc(), DeployRecord.id.desc()).limit(limit)
            ).scalars()
            return [_view(r) for r in rows]

    def in_window(self, *, since: datetime, until: datetime) -> list[DeployView]:
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(DeployRecord).where(DeployRecord.started_at >= since, DeployRecord.started_at < until)
                .order_by(DeployRecord.started_at)
            ).scalars()
            return [_view(r) for r in rows]

    def previous_live_revision(self, env: str, current_revision: int | None) -> int | None:
        """The revision live before ``current_revision``: where the newest completed *deploy* of it
        came from. Rollbacks do not count, or a second rollback would undo the first."""
        for record in self.recent(env, 50):
            if record.kind == "deploy" and record.outcome == COMPLETED and record.to_revision == current_revision:
                return record.from_revision
        return None

    def unfinished(self) -> list[DeployView]:
        with self._db.session(write=False) as session:
            rows = session.execute(select(DeployRecord).where(DeployRecord.outcome == IN_PROGRESS)).scalars()
            return [_view(r) for r in rows]

    def time_run(self, *, env: str, digest: str, now: datetime) -> tuple[timedelta, datetime | None]:
        """How long ``digest`` has run in ``env`` in one stretch (the longest), and since when it has
        run now if it still does. A stretch starts at a completed deploy of the digest and ends at
        the next change of any outcome: a failed or unfinished one may have moved the service, and
        a soak must never be overcounted."""
        with self._db.session(write=False) as session:
            rows = [_view(r) for r in session.execute(
                select(DeployRecord).where(DeployRecord.env == env)
                .order_by(DeployRecord.started_at, DeployRecord.id)
            ).scalars()]
        longest, running_since = timedelta(0), None
        for index, record in enumerate(rows):
            if record.image_digest != digest or record.outcome != COMPLETED:
                continue
            began = record.finished_at or record.started_at
            following = rows[index + 1] if index + 1 < len(rows) else None
            ended = (following.finished_at or following.started_at) if following else now
            longest = max(longest, ended - began)
            running_since = began if following is None else running_since
        return longest, running_since
