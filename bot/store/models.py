"""Tables. Changes here need an Alembic revision in bot/migrations/versions (a test checks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AuditEvent(Base):
    """Append-only. ``hash`` covers every other column and ``prev_hash``: an edit or a deletion
    breaks the chain, and ``AuditHead`` catches a deletion at the end."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    verb: Mapped[str] = mapped_column(String(64), index=True)  # the keying marker is found by its verb
    env: Mapped[str | None] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    rule: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (Index("ix_audit_events_env_seq", "env", "seq"),)


class AuditHead(Base):
    """One row: the last sequence number and hash. Appends lock it, so the chain never forks."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class DeployRecord(Base):
    """Every deploy and rollback: who, where, from what to what, and how it ended."""

    __tablename__ = "deploy_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    env: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # deploy | rollback | scale
    requested_by: Mapped[str] = mapped_column(String(64))
    image_tag: Mapped[str | None] = mapped_column(String(200))
    image_digest: Mapped[str | None] = mapped_column(String(100))
    from_revision: Mapped[int | None] = mapped_column(Integer)
    to_revision: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(32))  # in_progress | completed | failed | rolled_back
    detail: Mapped[str | None] = mapped_column(Text)
    # The change request (and lease holder) this deploy ran under, the prod approval behind it, the
    # break-glass reason if it bypassed the window or a freeze, and the Slack message that tracks it.
    request_id: Mapped[str | None] = mapped_column(String(64))
    approval_id: Mapped[str | None] = mapped_column(String(16))
    emergency_reason: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(64))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    # Observed from AWS: who made the change (the bot, or someone outside it: CI/CD, the console,
    # the autoscaler), the ECS deployment it is (one record per deployment id, whoever made it),
    # task counts for scalings, and the post-deploy alarm watch (until when; what it saw).
    source: Mapped[str] = mapped_column(String(16), default="bot", server_default="bot")
    ecs_deployment_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    image_commit: Mapped[str | None] = mapped_column(String(40))  # the commit-SHA tag the image carried
    from_count: Mapped[int | None] = mapped_column(Integer)
    to_count: Mapped[int | None] = mapped_column(Integer)
    watch_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    watch_state: Mapped[str | None] = mapped_column(String(16))  # watching | quiet | alarmed


class ObservedService(Base):
    """The last desired count seen for an environment's service, so a change made outside the bot
    (console, CLI, autoscaling) is recorded once as a scaling."""

    __tablename__ = "observed_services"

    env: Mapped[str] = mapped_column(String(32), primary_key=True)
    desired_count: Mapped[int] = mapped_column(Integer)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EnvLock(Base):
    """An incident freeze (`lock <env> <reason>`): deploys and scaling refused until `unlock`.

    A human decision, so it never expires on its own, unlike a ``ChangeLease``."""

    __tablename__ = "env_locks"

    env: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    locked_by: Mapped[str] = mapped_column(String(64))
    locked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChangeLease(Base):
    """One change at a time per environment. The primary key makes taking it atomic (INSERT), and
    ``expires_at`` lets a crashed holder's lease be taken over instead of blocking forever."""

    __tablename__ = "change_leases"

    env: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))  # the id of the request (or run) holding it
    action: Mapped[str] = mapped_column(String(16))  # deploy | rollback | scale
    user: Mapped[str] = mapped_column(String(64))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChangeRequest(Base):
    """A change waiting for a confirmation click or a second person's approval.

    ``params_hash`` binds the decision to the exact parameters (env, image digest, revision…): the
    executor recomputes it at click time and refuses if anything moved."""

    __tablename__ = "change_requests"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # confirmation | approval
    env: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    params_hash: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(
        String(16)
    )  # pending | approved | denied | expired | executed | cancelled
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    channel: Mapped[str | None] = mapped_column(String(64))
    message_ts: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_change_requests_env_status", "env", "status"),)


class SnsInboxMessage(Base):
    """Every SNS message, stored before SNS hears 200 (DESIGN §6): SNS retries until then, and the
    unique ``message_id`` drops the redeliveries, so an alarm is processed once."""

    __tablename__ = "sns_inbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(100), unique=True)
    topic_arn: Mapped[str] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(32))  # Notification | UnsubscribeConfirmation
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # the whole envelope JSON, exactly as received
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sns_timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(8))  # http | sqs
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(32))


class AlarmThread(Base):
    """One Slack thread per alarm (DESIGN §6 step 4): the root message shows the current state and
    is edited in place; each state change is a reply in the thread. ``key`` is the parser's thread
    key (the AlarmArn for CloudWatch alarms); ``short_id`` fits in a button value."""

    __tablename__ = "alarm_threads"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    short_id: Mapped[str] = mapped_column(String(12), unique=True)
    env: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(64))
    root_ts: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str | None] = mapped_column(String(100))
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when the current state began
    alarm_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when the last ALARM began
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    snoozed_by: Mapped[str | None] = mapped_column(String(64))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Recent state changes (ISO times) for flap detection, and when a flap summary was last posted.
    flips: Mapped[list[str] | None] = mapped_column(JSON)
    flap_noted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    grouped: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )  # posted inside a storm message
    # The last notification as AWS sent it ({"subject", "message"}), to redraw the root on a click.
    last_notification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The deployment whose post-deploy watch this alarm fired in (see bot/watch.py), as shown.
    after_deployment: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_alarm_threads_state_env", "state", "env"),)


class OutboxMessage(Base):
    """Every Slack call (post, update, upload), written before it is sent (DESIGN §6 step 6).

    A worker sends them oldest first within an ``ordering`` key (an alarm thread, a channel), with
    backoff that honours 429 Retry-After; ``status`` moves pending → sent (or dead after the retry
    budget). A row's ``ts`` is Slack's answer; later rows that reply to or edit it name it by
    ``parent_id``/``target_id``, so nothing waits for Slack before it is queued."""

    __tablename__ = "slack_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ordering: Mapped[str] = mapped_column(String(320))
    op: Mapped[str] = mapped_column(String(16))  # post | update | upload
    channel: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSON
    )  # text/blocks (or file), thread_ts/ts when already known
    parent_id: Mapped[int | None] = mapped_column(BigInteger)  # post in the thread of this row's message
    target_id: Mapped[int | None] = mapped_column(BigInteger)  # update (or upload beside) this row's message
    status: Mapped[str] = mapped_column(String(16))  # pending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_channel: Mapped[str | None] = mapped_column(String(64))  # Slack's channel id from the answer
    ts: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(200))
    origin_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # e.g. the SNS Timestamp

    __table_args__ = (
        Index("ix_slack_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_slack_outbox_ordering_id", "ordering", "id"),
    )


class JobRun(Base):
    """One run of a scheduled job: when, why (schedule, misfire catch-up, manual), how it ended.

    ``scheduled_for`` is unique per job, so a scheduled fire runs once even if two replicas both
    believe they lead."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | misfire | manual
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    requested_by: Mapped[str | None] = mapped_column(String(64))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed | refused
    summary: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_job_runs_job_started", "job", "started_at"),
        UniqueConstraint("job", "scheduled_for", name="uq_job_runs_job_scheduled_for"),
    )


class CleanupMark(Base):
    """A dev-cleanup candidate marked by one run and deleted by the next if it still matches."""

    __tablename__ = "cleanup_marks"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    marked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RefreshRun(Base):
    """One staging refresh: which step it reached, so a crashed run resumes or cleans up."""

    __tablename__ = "refresh_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_run_id: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    step: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # running | completed | failed | abandoned
    state: Mapped[dict[str, Any]] = mapped_column(JSON)  # snapshot id, instance names, old name, endpoint…
    error: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(64))
    message_ts: Mapped[str | None] = mapped_column(String(32))


class RefreshStep(Base):
    """Each step a refresh run took, with its outcome (the progress message and the report)."""

    __tablename__ = "refresh_steps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    step: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))  # running | done | failed | skipped
    detail: Mapped[str | None] = mapped_column(Text)


class CostCacheEntry(Base):
    """A Cost Explorer answer, keyed by the hash of its query: every request costs $0.01."""

    __tablename__ = "cost_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    query: Mapped[dict[str, Any]] = mapped_column(JSON)
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SlackRequestSeen(Base):
    """A signed Slack request already received, by the hash of its timestamp and signature: the
    same request again is a replay (or Slack's retry) and is not run twice. Kept while the
    signature could still pass verification, then pruned."""

    __tablename__ = "slack_requests"

    signature_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    signed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), index=True
    )  # X-Slack-Request-Timestamp
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    replays: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # copies received since
