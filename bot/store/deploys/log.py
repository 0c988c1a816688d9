"""The deployment log (:class:`DeployLog`): the bot's own records as it makes them, those the observer
reads from ECS, and the queries of history, rollback, soak, cadence and post-deploy watches."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, or_, select, update

from bot.store.db import Database, rowcount
from bot.store.deploys.record import (
    BOT,
    COMPLETED,
    DEPLOYMENT_KINDS,
    IN_PROGRESS,
    UNKNOWN,
    DeployView,
    _view,
)
from bot.store.models import DeployRecord, ObservedService

_OPEN = (IN_PROGRESS, UNKNOWN)


class DeployLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def start(
        self,
        *,
        env: str,
        kind: str,
        requested_by: str,
        image_tag: str | None,
        image_digest: str | None,
        from_revision: int | None,
        to_revision: int | None,
        at: datetime,
        request_id: str | None = None,
        approval_id: str | None = None,
        emergency_reason: str | None = None,
        source: str = BOT,
        ecs_deployment_id: str | None = None,
        outcome: str = IN_PROGRESS,
        finished_at: datetime | None = None,
        from_count: int | None = None,
        to_count: int | None = None,
        detail: str | None = None,
        image_commit: str | None = None,
    ) -> DeployView:
        with self._db.session() as session:
            row = DeployRecord(
                env=env,
                kind=kind,
                requested_by=requested_by,
                image_tag=image_tag,
                image_digest=image_digest,
                from_revision=from_revision,
                to_revision=to_revision,
                started_at=at,
                outcome=outcome,
                request_id=request_id,
                approval_id=approval_id,
                emergency_reason=emergency_reason,
                source=source,
                ecs_deployment_id=ecs_deployment_id,
                finished_at=finished_at,
                from_count=from_count,
                to_count=to_count,
                detail=detail,
                image_commit=image_commit,
            )
            session.add(row)
            session.flush()
            return _view(row)

    def set_message(self, *, id: int, channel: str, ts: str) -> None:
        with self._db.session() as session:
            session.execute(
                update(DeployRecord).where(DeployRecord.id == id).values(channel=channel, message_ts=ts)
            )

    def finish(self, *, id: int, outcome: str, at: datetime, detail: str | None = None) -> DeployView:
        with self._db.session() as session:
            row = session.get(DeployRecord, id)
            assert row is not None, f"no deploy record {id}"  # ids come from start(), in this store
            row.outcome, row.finished_at, row.detail = outcome, at, detail
            session.flush()
            return _view(row)

    def get(self, id: int) -> DeployView | None:
        with self._db.session(write=False) as session:
            row = session.get(DeployRecord, id)
            return _view(row) if row else None

    def last(self, env: str, kinds: tuple[str, ...] = DEPLOYMENT_KINDS) -> DeployView | None:
        recent = self.recent(env, 1, kinds=kinds)
        return recent[0] if recent else None

    def recent(self, env: str, limit: int = 10, kinds: tuple[str, ...] | None = None) -> list[DeployView]:
        return self.changes(envs=(env,), limit=limit, kinds=kinds)

    def changes(
        self, *, envs: Iterable[str], limit: int = 10, kinds: tuple[str, ...] | None = None
    ) -> list[DeployView]:
        """Deployments and scalings in ``envs``, by the bot and by others, newest first."""
        query = select(DeployRecord).where(DeployRecord.env.in_(tuple(envs)))
        if kinds is not None:
            query = query.where(DeployRecord.kind.in_(kinds))
        with self._db.session(write=False) as session:
            rows = session.execute(
                query.order_by(DeployRecord.started_at.desc(), DeployRecord.id.desc()).limit(limit)
            ).scalars()
            return [_view(r) for r in rows]

    def in_window(self, *, since: datetime, until: datetime) -> list[DeployView]:
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(DeployRecord)
                .where(DeployRecord.started_at >= since, DeployRecord.started_at < until)
                .order_by(DeployRecord.started_at)
            ).scalars()
            return [_view(r) for r in rows]

    def last_before(self, env: str, at: datetime) -> DeployView | None:
        """The newest deployment of ``env`` started before ``at``: what a deployment then replaced."""
        with self._db.session(write=False) as session:
            row = session.execute(
                select(DeployRecord)
                .where(
                    DeployRecord.env == env,
                    DeployRecord.kind.in_(DEPLOYMENT_KINDS),
                    DeployRecord.started_at < at,
                    DeployRecord.outcome.in_((COMPLETED, IN_PROGRESS)),
                )
                .order_by(DeployRecord.started_at.desc(), DeployRecord.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            return _view(row) if row else None

    def history(self, env: str, limit: int = 200) -> list[DeployView]:
        """The environment's deployments (not scalings), oldest first: the last ``limit``."""
        return list(reversed(self.recent(env, limit, kinds=DEPLOYMENT_KINDS)))

    def previous_live_revision(self, env: str, current_revision: int | None) -> int | None:
        """The revision live before ``current_revision``, whoever deployed either.

        The completed deployments, oldest first, are replayed as a stack: a deployment of a
        revision already on the stack (a rollback, the bot's or anyone's) goes back to it, any other
        one goes on top. What lies under the current revision is what ran before it; so a second
        rollback goes further back instead of undoing the first."""
        stack: list[int] = []
        for record in self.history(env):
            if record.outcome != COMPLETED or record.to_revision is None:
                continue
            if record.to_revision in stack:
                del stack[stack.index(record.to_revision) + 1 :]
            else:
                stack.append(record.to_revision)
        if len(stack) >= 2 and stack[-1] == current_revision:
            return stack[-2]
        return None

    def unfinished(self) -> list[DeployView]:
        """The bot's own records still in progress: the rollouts it follows (or followed). Those of
        other actors are ended by the observer, from ECS."""
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(DeployRecord).where(DeployRecord.outcome == IN_PROGRESS, DeployRecord.source == BOT)
            ).scalars()
            return [_view(r) for r in rows]

    # ---------------------------------------------------------------------------- observed

    def by_deployment_id(self, deployment_id: str) -> DeployView | None:
        with self._db.session(write=False) as session:
            row = session.execute(
                select(DeployRecord).where(DeployRecord.ecs_deployment_id == deployment_id)
            ).scalar_one_or_none()
            return _view(row) if row else None

    def unlinked_bot_deployment(self, *, env: str, to_revision: int, since: datetime) -> DeployView | None:
        """The bot's own deployment of ``to_revision`` started after ``since`` and not yet tied to an
        ECS deployment id: the one an ECS deployment of that revision is."""
        with self._db.session(write=False) as session:
            row = session.execute(
                select(DeployRecord)
                .where(
                    DeployRecord.env == env,
                    DeployRecord.source == BOT,
                    DeployRecord.kind.in_(DEPLOYMENT_KINDS),
                    DeployRecord.to_revision == to_revision,
                    DeployRecord.ecs_deployment_id.is_(None),
                    DeployRecord.started_at >= since,
                )
                .order_by(DeployRecord.started_at.desc(), DeployRecord.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            return _view(row) if row else None

    def link(self, *, id: int, deployment_id: str, digest: str | None, commit: str | None) -> None:
        with self._db.session() as session:
            row = session.get(DeployRecord, id)
            if row is None:
                return
            row.ecs_deployment_id = deployment_id
            if row.image_digest is None and digest:
                row.image_digest = digest  # a rollback learns the digest it put back
            row.image_commit = row.image_commit or commit

    def settle(self, *, id: int, outcome: str, at: datetime | None, detail: str | None) -> bool:
        """End an open record with what ECS says; a record already ended is left as it is (the
        bot's own follower may have ended it with more to say). True when it changed."""
        with self._db.session() as session:
            changed = rowcount(
                session.execute(
                    update(DeployRecord)
                    .where(DeployRecord.id == id, DeployRecord.outcome.in_(_OPEN))
                    .values(outcome=outcome, finished_at=at, detail=detail)
                    .execution_options(synchronize_session=False)
                )
            )
            return bool(changed)

    def open_in(self, env: str) -> list[DeployView]:
        """Records of ``env`` still open that ECS deployments stand behind."""
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(DeployRecord).where(
                    DeployRecord.env == env,
                    DeployRecord.outcome.in_(_OPEN),
                    DeployRecord.ecs_deployment_id.is_not(None),
                )
            ).scalars()
            return [_view(r) for r in rows]

    def observed_count(self, env: str) -> int | None:
        with self._db.session(write=False) as session:
            row = session.get(ObservedService, env)
            return row.desired_count if row else None

    def set_observed_count(self, env: str, count: int, at: datetime) -> None:
        with self._db.session() as session:
            row = session.get(ObservedService, env)
            if row is None:
                session.add(ObservedService(env=env, desired_count=count, observed_at=at))
            else:
                row.desired_count, row.observed_at = count, at

    # ---------------------------------------------------------------------------- soak, cadence, watch

    def ran_matching(self, *, env: str, digests: Iterable[str], commits: Iterable[str]) -> list[DeployView]:
        """Deployments in ``env`` of an image with one of ``digests``, or that carried one of
        ``commits`` (commit-SHA tags), oldest first."""
        matches = [
            DeployRecord.image_digest.in_(tuple(set(digests))),
            DeployRecord.image_commit.in_(tuple(set(commits))),
        ]
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(DeployRecord)
                .where(DeployRecord.env == env, DeployRecord.kind.in_(DEPLOYMENT_KINDS), or_(*matches))
                .order_by(DeployRecord.started_at, DeployRecord.id)
            ).scalars()
            return [_view(r) for r in rows]

    def next_after(self, record: DeployView) -> DeployView | None:
        """The deployment of the same environment that followed ``record``."""
        with self._db.session(write=False) as session:
            row = session.execute(
                select(DeployRecord)
                .where(
                    DeployRecord.env == record.env,
                    DeployRecord.kind.in_(DEPLOYMENT_KINDS),
                    or_(
                        DeployRecord.started_at > record.started_at,
                        and_(DeployRecord.started_at == record.started_at, DeployRecord.id > record.id),
                    ),
                )
                .order_by(DeployRecord.started_at, DeployRecord.id)
                .limit(1)
            ).scalar_one_or_none()
            return _view(row) if row else None

    def releases_since(self, *, env: str, since: datetime) -> list[DeployView]:
        """Completed or running deploys (not rollbacks) in ``env`` since ``since``, whoever made them."""
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(DeployRecord)
                .where(
                    DeployRecord.env == env,
                    DeployRecord.kind == "deploy",
                    DeployRecord.started_at >= since,
                    DeployRecord.outcome.in_((COMPLETED, IN_PROGRESS)),
                )
                .order_by(DeployRecord.started_at)
            ).scalars()
            return [_view(r) for r in rows]

    def start_watch(self, *, id: int, until: datetime) -> None:
        with self._db.session() as session:
            session.execute(
                update(DeployRecord)
                .where(DeployRecord.id == id, DeployRecord.watch_state.is_(None))
                .values(watch_until=until, watch_state="watching")
                .execution_options(synchronize_session=False)
            )

    def to_watch(self, *, env: str, since: datetime) -> list[DeployView]:
        """Deployments of ``env`` that completed after ``since`` and have no watch yet."""
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(DeployRecord).where(
                    DeployRecord.env == env,
                    DeployRecord.kind.in_(DEPLOYMENT_KINDS),
                    DeployRecord.outcome == COMPLETED,
                    DeployRecord.watch_state.is_(None),
                    DeployRecord.finished_at > since,
                )
            ).scalars()
            return [_view(r) for r in rows]

    def watched_at(self, *, env: str, at: datetime) -> DeployView | None:
        """The deployment of ``env`` whose post-deploy watch covers ``at`` (the newest)."""
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(DeployRecord)
                .where(
                    DeployRecord.env == env,
                    DeployRecord.watch_until.is_not(None),
                    DeployRecord.watch_until >= at,
                )
                .order_by(DeployRecord.finished_at.desc(), DeployRecord.id.desc())
            ).scalars()
            for row in rows:
                view = _view(row)
                if view.finished_at is not None and view.finished_at <= at:
                    return view
            return None

    def set_watch_state(self, *, id: int, state: str, expect: str | None = None) -> bool:
        with self._db.session() as session:
            query = update(DeployRecord).where(DeployRecord.id == id)
            if expect is not None:
                query = query.where(DeployRecord.watch_state == expect)
            return bool(
                rowcount(
                    session.execute(
                        query.values(watch_state=state).execution_options(synchronize_session=False)
                    )
                )
            )

    def watches_ended(self, *, now: datetime) -> list[DeployView]:
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(DeployRecord).where(
                    DeployRecord.watch_state.in_(("watching", "alarmed")), DeployRecord.watch_until < now
                )
            ).scalars()
            return [_view(r) for r in rows]
