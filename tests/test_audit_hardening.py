"""The audit trail under attack (issue 12, item 4), on SQLite and PostgreSQL, through the CLI.

- a trail rewritten with the plain digest (an event deleted, the chain recomputed) fails `audit verify`;
- a truncated trail (the newest events deleted, the head moved back) fails it thanks to the S3 anchor;
- every actor is audited: `jobs run` by hand (`cli:<OS user>`, one event per dev-cleanup deletion),
  the scheduler (`scheduler`, each step of the staging refresh), the console (`console:<OS user> as U…`).
"""

from __future__ import annotations

import io
import json
import os
import pwd
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from bot.audit_anchor import AnchorStore, anchor_head, start_trail
from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import Config, JobsConfig
from bot.console import Console
from bot.core import Core
from bot.job import JobContext, JobSpec
from bot.scheduler import JobScheduler
from bot.settings import Settings
from bot.store.audit import GENESIS, MARKER_VERB, AuditEntry, AuditKeyError, AuditLog
from bot.store.audit.chain import _digest
from bot.store.db import Database
from bot.store.models import AuditEvent
from handlers.cli import cli
from jobs.dev_cleanup.clutter import DevClutter, seed_dev_clutter
from jobs.staging_refresh import STEPS, job_spec
from tests.conftest import PEOPLE, REGION, moto_session
from tests.fakes.jobs import FakeReport, NoOptions
from tests.test_audit import tamper
from tests.test_staging_refresh import Harness, harness, store  # noqa: F401 - fixtures

KEY = "k" * 16 + "0123456789abcdef0123456789abcdef"
BUCKET = "menotime-audit-anchors"
T0 = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
OPERATOR = pwd.getpwuid(os.geteuid()).pw_name  # who runs the CLI, whatever LOGNAME and USER say


def _fill(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.append(
            at=T0 + timedelta(seconds=i),
            actor="U0ONCALL1",
            source="slack",
            verb="scale",
            env="dev",
            args={"count": i},
            rule="matrix:scale/dev:oncall",
            outcome="allowed",
            request_id=f"req{i}",
        )


def _env(db: Database, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db.url,
        "LOGNAME": "mallory",
        "USER": "mallory",
        **extra,
    }  # self-asserted: ignored


def _verify(db: Database, **extra: str) -> Result:
    return CliRunner().invoke(cli, ["audit", "verify"], env=_env(db, **extra))


def _replace_rows(db: Database, rows: list[dict[str, Any]], head: tuple[int, str]) -> None:
    """What the database's owner can do: switch off the append-only trigger, swap the rows, move the head."""
    table = AuditEvent.__table__
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        conn.execute(table.delete())
        if rows:
            conn.execute(table.insert(), rows)
        conn.execute(
            text("UPDATE audit_head SET seq = :seq, hash = :hash"), {"seq": head[0], "hash": head[1]}
        )
        if db.dialect == "postgresql":
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))


def _row(e: AuditEntry, **changes: Any) -> dict[str, Any]:
    return {
        **{
            k: getattr(e, k)
            for k in (
                "seq",
                "at",
                "actor",
                "source",
                "verb",
                "env",
                "args",
                "rule",
                "outcome",
                "detail",
                "request_id",
                "prev_hash",
                "hash",
            )
        },
        **changes,
    }


def _rechained(entries: list[AuditEntry], *, prev: str = GENESIS) -> list[dict[str, Any]]:
    """The attack: ``entries`` renumbered and re-chained with the project's own plain digest."""
    rows = []
    for seq, e in enumerate(entries, 1):
        digest = _digest(
            prev,
            None,
            seq=seq,
            at=e.at,
            actor=e.actor,
            source=e.source,
            verb=e.verb,
            env=e.env,
            args=e.args,
            rule=e.rule,
            outcome=e.outcome,
            detail=e.detail,
            request_id=e.request_id,
        )
        rows.append(_row(e, seq=seq, prev_hash=prev, hash=digest))
        prev = digest
    return rows


# -- (a) a keyed chain -------------------------------------------------------------------------------


@pytest.mark.parametrize("drop_marker", [False, True], ids=["marker-rehashed", "marker-dropped"])
def test_a_trail_rewritten_with_the_plain_digest_fails_verify(db: Database, drop_marker: bool) -> None:
    log = AuditLog(db, key=KEY.encode())
    _fill(log, 5)
    intact = _verify(db, AUDIT_KEY=KEY)
    assert intact.exit_code == 0, intact.output
    assert "6 events verified (HMAC-SHA256 from event 1)" in intact.output  # the keying marker, then 5

    kept = [
        e for e in log.entries() if e.args.get("count") != 2 and not (drop_marker and e.verb == MARKER_VERB)
    ]
    rows = _rechained(kept)
    _replace_rows(db, rows, (rows[-1]["seq"], rows[-1]["hash"]))
    assert AuditLog(db).verify().problems == (), "the forgery is consistent under the plain digest"

    broken = _verify(db, AUDIT_KEY=KEY)
    assert broken.exit_code == 1
    expected = (
        "none of the 4 events is keyed although AUDIT_KEY is set"
        if drop_marker
        else "event 1, where the trail became keyed, does not verify under AUDIT_KEY"
    )
    assert expected in broken.output


def _key_trail(db: Database, *args: str, input: str | None = None, **extra: str) -> Result:
    return CliRunner().invoke(cli, ["audit", "key", *args], env=_env(db, AUDIT_KEY=KEY, **extra), input=input)


def test_an_unkeyed_trail_is_frozen_by_the_keying_marker(db: Database) -> None:
    """Events written before the key are kept as they are; once keyed, rewriting them is caught."""
    _fill(AuditLog(db), 3)  # before AUDIT_KEY existed
    keyed = AuditLog(db, key=KEY.encode())
    unkeyed_head = keyed.head()
    done = _key_trail(db, "--yes")
    assert done.exit_code == 0, done.output
    assert f"event 3, hash {unkeyed_head.hash}" in done.output and "audit trail keyed: event 4" in done.output
    _fill(keyed, 2, start=3)
    marker = [e for e in keyed.entries() if e.verb == MARKER_VERB]
    assert [m.seq for m in marker] == [4] and marker[0].args["unkeyed_events"] == 3
    assert marker[0].actor == f"cli:{OPERATOR}"
    ok = _verify(db, AUDIT_KEY=KEY)
    assert ok.exit_code == 0 and "6 events verified (HMAC-SHA256 from event 4)" in ok.output

    entries = list(keyed.entries())
    # Rewrite the unkeyed prefix without event 2; keep the keyed rows as they were, renumbered.
    legacy = _rechained([e for e in entries[:3] if e.args["count"] != 1])
    rows = legacy + [_row(e, seq=e.seq - 1) for e in entries[3:]]
    _replace_rows(db, rows, (5, entries[-1].hash))
    broken = _verify(db, AUDIT_KEY=KEY)
    assert broken.exit_code == 1, broken.output
    assert "event 3: does not follow the event before it" in broken.output  # the marker names the old prefix


def test_without_a_key_verify_says_the_trail_cannot_detect_a_rewrite(db: Database) -> None:
    _fill(AuditLog(db), 2)
    result = _verify(db)
    assert result.exit_code == 0
    assert "UNKEYED" in result.output and "cannot detect a rewrite" in result.output

    assert _key_trail(db, "--yes").exit_code == 0  # keyed from now on
    unkeyed = _verify(db)
    assert unkeyed.exit_code == 3
    assert "NOT CHECKED: events from 3 on are keyed and AUDIT_KEY is not set" in unkeyed.output
    with pytest.raises(AuditKeyError, match="keyed since event 3"):
        _fill(AuditLog(db), 1)  # a process without the key does not write events that read as forged
    wrong = _verify(db, AUDIT_KEY="w" * 40)
    assert wrong.exit_code == 1 and "not the one the trail was keyed with" in wrong.output


def test_serve_start_up_warns_once_without_a_key_and_refuses_a_wrong_one(db: Database) -> None:
    settings = Settings(database_url=db.url)
    with capture_logs() as logs:
        start_trail(audit=AuditLog(db), settings=settings, clock=FrozenClock(T0))
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [w["event"] for w in warnings] == ["audit_trail_unprotected"]
    assert "AUDIT_KEY" in warnings[0]["missing"] and "AUDIT_ANCHOR_BUCKET" in warnings[0]["missing"]

    start_trail(audit=AuditLog(db, key=KEY.encode()), settings=settings, clock=FrozenClock(T0))
    assert [e.verb for e in AuditLog(db).entries()] == [MARKER_VERB]  # keyed at start, before any action
    with pytest.raises(AuditKeyError, match="not the key"):
        start_trail(audit=AuditLog(db, key=b"w" * 40), settings=settings, clock=FrozenClock(T0))
    with pytest.raises(AuditKeyError, match="AUDIT_KEY is not set"):
        start_trail(audit=AuditLog(db), settings=settings, clock=FrozenClock(T0))


# -- (b) the anchor ----------------------------------------------------------------------------------


@pytest.fixture
def bucket() -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(
            Bucket=BUCKET,
            ObjectLockEnabledForBucket=True,
            CreateBucketConfiguration={"LocationConstraint": REGION},
        )
        yield s3


def _anchored_env() -> dict[str, str]:
    return {"AUDIT_KEY": KEY, "AUDIT_ANCHOR_BUCKET": BUCKET, "AWS_REGION": REGION}


def test_a_truncated_trail_fails_verify_thanks_to_the_anchor(db: Database, bucket: Any) -> None:
    log = AuditLog(db, key=KEY.encode())
    _fill(log, 5)
    first = _verify(db, **_anchored_env())
    assert first.exit_code == 0, first.output
    assert "head anchored: event 6" in first.output
    [obj] = bucket.list_objects_v2(Bucket=BUCKET)["Contents"]
    head = bucket.head_object(Bucket=BUCKET, Key=obj["Key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=2189)

    # Delete the newest two events and move the head back: the chain alone still verifies.
    fifth = log.hash_at(4)
    tamper(db, "DELETE FROM audit_events WHERE seq >= 5")
    tamper(db, "UPDATE audit_head SET seq = 4, hash = :h", h=fifth)
    assert log.verify().ok
    truncated = _verify(db, **_anchored_env())
    assert truncated.exit_code == 1
    assert "the trail ends at event 4 but event 6 was anchored outside the database" in truncated.output

    # The bot goes on appending past the anchored seq: the anchor still does not match.
    _fill(AuditLog(db, key=KEY.encode()), 3, start=10)
    refilled = _verify(db, **_anchored_env())
    assert refilled.exit_code == 1
    assert "event 6 is not the event anchored on" in refilled.output
    assert len(bucket.list_objects_v2(Bucket=BUCKET)["Contents"]) == 1, "a tampered trail is never anchored"


def _store(key: str | None = KEY) -> AnchorStore:
    return AnchorStore(
        aws=AwsGateway(session=moto_session(), region=REGION),
        bucket=BUCKET,
        prefix="menotime-ops/audit-head/",
        retention=timedelta(days=1),
        key=key.encode() if key else None,
        clock=FrozenClock(datetime.now(UTC)),
    )


def test_the_periodic_anchor_follows_the_head_and_never_anchors_a_truncation(
    db: Database, bucket: Any
) -> None:
    from bot.iam import BACKGROUND

    log = AuditLog(db, key=KEY.encode())
    store_ = _store()
    _fill(log, 3)
    assert anchor_head(audit=log, anchors=store_).seq == 4  # type: ignore[union-attr]
    assert anchor_head(audit=log, anchors=store_) is None  # nothing new
    [declared] = [set(work.iam_actions) for work in BACKGROUND if work.name == "audit anchor"]
    assert store_._aws.iam_actions == declared  # the gateway's record: listed, and put once
    _fill(log, 70, start=3)
    assert anchor_head(audit=log, anchors=store_).seq == 74  # type: ignore[union-attr]
    assert [a.seq for a in store_.latest(near=74).anchors] == [74]

    tamper(db, "DELETE FROM audit_events WHERE seq > 70")
    tamper(db, "UPDATE audit_head SET seq = 70, hash = :h", h=log.hash_at(70))
    _fill(AuditLog(db, key=KEY.encode()), 10, start=100)
    with capture_logs() as logs:
        assert anchor_head(audit=log, anchors=store_) is None
    assert [e["event"] for e in logs] == ["audit_anchor_mismatch"]
    assert [a.seq for a in store_.latest(near=80).anchors] == [74]


# -- (c) every actor ---------------------------------------------------------------------------------


def _events(db: Database, **where: Any) -> list[AuditEntry]:
    return [e for e in AuditLog(db).entries() if all(getattr(e, k) == v for k, v in where.items())]


@pytest.fixture
def clutter(seeded_aws: AwsGateway, config: Config) -> DevClutter:
    return seed_dev_clutter(seeded_aws, config, now=datetime.now(UTC))


def test_jobs_run_dev_cleanup_audits_each_deletion_as_the_os_user(db: Database, clutter: DevClutter) -> None:
    env = _env(db, AWS_REGION=REGION)
    marked = CliRunner().invoke(cli, ["jobs", "run", "dev-cleanup"], env=env)
    assert marked.exit_code == 0, marked.output
    assert _events(db, verb="delete") == [], "the first run only marks"
    with db.engine.begin() as conn:  # a week later
        conn.execute(
            text("UPDATE cleanup_marks SET marked_at = :at"), {"at": datetime.now(UTC) - timedelta(days=8)}
        )

    deleted = CliRunner().invoke(cli, ["jobs", "run", "dev-cleanup"], env=env)
    assert deleted.exit_code == 0, deleted.output

    events = _events(db, verb="delete", outcome="deleted")
    assert len(events) == len(clutter.candidates) == 11
    assert {e.actor for e in events} == {f"cli:{OPERATOR}"}
    assert {e.env for e in events} == {"dev"}
    assert {e.args["resource"] for e in events if e.args["kind"] == "rds_snapshots"} == {
        "menotime-dev-before-migration"
    }
    runs = [(e.outcome, e.actor) for e in _events(db, verb="dev-cleanup")]
    assert runs == [("started", f"cli:{OPERATOR}"), ("succeeded", f"cli:{OPERATOR}")] * 2
    assert AuditLog(db).verify().ok


def _sweep(ctx: JobContext) -> FakeReport:
    ctx.audit(verb="delete", env="dev", args={"resource": "old-thing"}, outcome="deleted")
    return FakeReport(headline="swept", summary="swept 1 thing")


def test_a_scheduled_run_is_audited_as_the_scheduler(database_url: str, config: Config) -> None:
    spec = JobSpec(
        name="sweep", summary="sweeps", env="dev", run=_sweep, options_model=NoOptions, options_key="sweep"
    )
    sunday = FrozenClock(datetime(2026, 11, 29, 11, 30, tzinfo=UTC))  # 30 min after its 03:00 PT fire
    core = build_core(
        Settings(database_url=database_url),
        config=config.model_copy(update={"jobs": JobsConfig(schedules={"sweep": "0 3 * * sun"})}),
        clock=sunday,
        jobs=(spec,),
        migrate_schema=True,
        run_background=lambda work: work(),
    )
    try:
        JobScheduler(core, submit=lambda work: work()).tick()  # leader: catches the missed fire up
        events = _events(core.db, request_id="job-run-1")
        assert [(e.verb, e.outcome, e.actor, e.rule) for e in events] == [
            ("sweep", "started", "scheduler", "job:misfire"),
            ("delete", "deleted", "scheduler", "job:misfire"),
            ("sweep", "succeeded", "scheduler", "job:misfire"),
        ]
    finally:
        core.close()


def test_each_step_of_a_scheduled_staging_refresh_is_audited(harness: Harness, sqlite_url: str) -> None:
    config = harness.config.model_copy(
        update={
            "jobs": JobsConfig(
                schedules={"staging-refresh": "0 4 * * sun"},
                options={"staging-refresh": harness.options.model_dump()},
            )
        }
    )
    spec = job_spec(anonymize_step=harness.anonymizer, database_gate=harness.gate)
    core = build_core(
        Settings(database_url=sqlite_url),
        config=config,
        aws=harness.aws,
        clock=harness.clock,
        jobs=(spec,),
        migrate_schema=True,
    )
    try:
        scheduler = JobScheduler(core, submit=lambda work: work())
        assert scheduler.tick()
        run = scheduler.fire("staging-refresh", harness.clock.now() - timedelta(minutes=5))
        assert run is not None and run.outcome == "succeeded", run
        steps = [(e.args["step"], e.outcome) for e in _events(core.db, verb="refresh-step")]
        assert steps == [(step, outcome) for step in STEPS for outcome in ("started", "done")]
        assert {e.actor for e in _events(core.db, verb="refresh-step")} == {"scheduler"}
    finally:
        core.close()


def test_console_lines_are_audited_as_the_os_user_acting_as_the_slack_user(
    db: Database, seeded_aws: AwsGateway
) -> None:
    typed = CliRunner().invoke(
        cli,
        ["console", "--user", PEOPLE["operations"]],
        env=_env(db, AWS_REGION=REGION),
        input="status dev\n:as U0OTHER\nhelp\n:quit\n",
    )
    assert typed.exit_code == 0, typed.output
    actors = [(e.verb, e.actor) for e in _events(db, source="console")]
    assert actors == [
        ("status", f"console:{OPERATOR} as {PEOPLE['operations']}"),
        ("help", f"console:{OPERATOR} as U0OTHER"),
    ]


def test_console_without_an_operator_audits_the_slack_user_as_before(core: Core) -> None:
    Console(core, user_id=PEOPLE["developer"], out=io.StringIO()).run("status dev")
    assert core.audit.recent(limit=1)[0].actor == PEOPLE["developer"]
    Console(core, user_id=PEOPLE["developer"], out=io.StringIO(), operator="bob").run("status dev")
    assert core.audit.recent(limit=1)[0].actor == f"console:bob as {PEOPLE['developer']}"


def test_a_short_key_is_a_configuration_error_and_changes_nothing(db: Database) -> None:
    result = _verify(db, AUDIT_KEY="s3cr3t")
    assert result.exit_code == 2
    assert "AUDIT_KEY is too short (6 characters)" in result.output and "s3cr3t" not in result.output
    assert list(AuditLog(db).entries()) == []


# -- review of the keyed trail -----------------------------------------------------------------------


def _launder(db: Database) -> None:
    """The attack on a keyed trail, with database write only: drop the keying marker and one event,
    re-chain the rest with the plain digest, move the head."""
    kept = [e for e in AuditLog(db).entries() if e.verb != MARKER_VERB and e.args.get("count") != 2]
    rows = _rechained(kept)
    _replace_rows(db, rows, (rows[-1]["seq"], rows[-1]["hash"]))


def _serve(db: Database, monkeypatch: pytest.MonkeyPatch) -> Result:
    """`serve` up to the point it would listen (uvicorn.run refuses: the start-up is what is judged)."""
    import uvicorn

    def listen(*_: Any, **__: Any) -> None:
        raise AssertionError("serve got as far as listening")

    monkeypatch.setattr(uvicorn, "run", listen)
    return CliRunner().invoke(
        cli,
        ["serve"],
        env=_env(db, AUDIT_KEY=KEY, SLACK_BOT_TOKEN="xoxb-x", SLACK_SIGNING_SECRET="s", AWS_REGION=REGION),
    )


def test_no_keyed_process_keys_a_trail_rewritten_without_its_marker(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(AuditLog(db, key=KEY.encode()), 5)
    _launder(db)
    forged = [e.hash for e in AuditLog(db).entries()]

    started = _serve(db, monkeypatch)  # a restart, another replica
    assert started.exit_code == 2, started.output
    assert (
        "4 events were written without it and nobody has keyed it yet: run `menotime-bot audit key`"
        in started.output
    )
    with pytest.raises(AuditKeyError, match="run `menotime-bot audit key`"):
        _fill(AuditLog(db, key=KEY.encode()), 1)  # any action, any CLI command
    with pytest.raises(AuditKeyError, match="run `menotime-bot audit key`"):
        start_trail(
            audit=AuditLog(db, key=KEY.encode()),
            settings=Settings(database_url=db.url),
            clock=FrozenClock(T0),
        )
    assert [e.hash for e in AuditLog(db).entries()] == forged, "nothing was written over the forgery"
    still = _verify(db, AUDIT_KEY=KEY)
    assert still.exit_code == 1 and "none of the 4 events is keyed although AUDIT_KEY is set" in still.output


def test_audit_key_asks_first_and_refuses_a_trail_that_was_anchored_under_the_key(
    db: Database, bucket: Any
) -> None:
    _fill(AuditLog(db), 3)  # before AUDIT_KEY existed
    asked = _key_trail(db, input="n\n", AUDIT_ANCHOR_BUCKET=BUCKET, AWS_REGION=REGION)
    assert asked.exit_code == 1 and "Key the trail now?" in asked.output
    assert [e.verb for e in AuditLog(db).entries()].count(MARKER_VERB) == 0, "declined: nothing written"

    keyed = _key_trail(db, input="y\n", AUDIT_ANCHOR_BUCKET=BUCKET, AWS_REGION=REGION)
    assert keyed.exit_code == 0, keyed.output
    assert "audit trail keyed: event 4" in keyed.output and "head anchored: event 4" in keyed.output
    _fill(AuditLog(db, key=KEY.encode()), 2, start=3)
    assert _verify(db, **_anchored_env()).exit_code == 0

    # The laundering attack once more: now the trail has a signed anchor, `audit key` will not key it.
    _launder(db)
    again = _key_trail(db, "--yes", AUDIT_ANCHOR_BUCKET=BUCKET, AWS_REGION=REGION)
    assert again.exit_code == 1
    assert "was anchored under AUDIT_KEY" in again.output and "it was rewritten" in again.output
    assert MARKER_VERB not in [e.verb for e in AuditLog(db).entries()]


def test_a_replica_without_the_key_stops_appending_once_another_keys_the_trail(db: Database) -> None:
    old = AuditLog(db)  # a replica still running without AUDIT_KEY during the roll-out
    _fill(old, 2)
    assert _key_trail(db, "--yes").exit_code == 0  # an operator keys the trail meanwhile
    with pytest.raises(AuditKeyError, match="keyed since event 3 but AUDIT_KEY is not set"):
        _fill(old, 1, start=2)
    _fill(AuditLog(db, key=KEY.encode()), 1, start=2)
    assert _verify(db, AUDIT_KEY=KEY).exit_code == 0, "the trail stays intact"


def _put_anchor(s3: Any, seq: int, digest: str, mac: str | None) -> None:
    body = {"seq": seq, "hash": digest, "at": None, "anchored_at": datetime.now(UTC).isoformat(), "mac": mac}
    s3.put_object(
        Bucket=BUCKET,
        Key=f"menotime-ops/audit-head/{seq:012d}-{digest[:12]}.json",
        Body=json.dumps(body).encode(),
    )


def test_an_anchor_without_a_valid_mac_is_reported_and_ignored(db: Database, bucket: Any) -> None:
    log = AuditLog(db, key=KEY.encode())
    _fill(log, 5)
    assert _verify(db, **_anchored_env()).exit_code == 0  # anchored at event 6, signed

    # Truncate to event 4, let the bot write on past the anchor, and anchor the new head without the key.
    tamper(db, "DELETE FROM audit_events WHERE seq >= 5")
    tamper(db, "UPDATE audit_head SET seq = 4, hash = :h", h=log.hash_at(4))
    _fill(AuditLog(db, key=KEY.encode()), 3, start=10)
    head = log.head()
    wrong = AnchorStore(
        aws=AwsGateway(session=moto_session(), region=REGION),
        bucket=BUCKET,
        prefix="menotime-ops/audit-head/",
        retention=timedelta(days=1),
        key=b"w" * 40,
    )
    wrong.write(head)  # signed under another key
    _put_anchor(bucket, head.seq, head.hash, None)  # not signed at all

    result = _verify(db, **_anchored_env())
    assert result.exit_code == 1
    assert result.output.count("has no valid MAC under AUDIT_KEY") == 2
    assert "event 6 is not the event anchored on" in result.output  # judged against the last valid anchor


def test_the_periodic_anchor_refuses_a_trail_with_no_keying_marker(db: Database, bucket: Any) -> None:
    _fill(AuditLog(db), 3)
    store_ = _store()
    store_.write(AuditLog(db).head())  # an anchor the trail reached before it lost its keying marker
    _fill(AuditLog(db), 2, start=3)  # plain-digest events after it
    with capture_logs() as logs:
        assert anchor_head(audit=AuditLog(db, key=KEY.encode()), anchors=store_) is None
    assert [e["event"] for e in logs] == ["audit_trail_not_anchored"]
    assert [a.seq for a in store_.latest(near=5).anchors] == [3]


def test_a_scheduled_job_whose_start_cannot_be_audited_waits_for_the_next_tick(
    database_url: str, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []

    def sweep(ctx: JobContext) -> FakeReport:
        ran.append(ctx.run_id)
        return FakeReport(headline="swept", summary="swept")

    spec = JobSpec(
        name="sweep", summary="sweeps", env="dev", run=sweep, options_model=NoOptions, options_key="sweep"
    )
    sunday = FrozenClock(datetime(2026, 11, 29, 11, 30, tzinfo=UTC))
    core = build_core(
        Settings(database_url=database_url),
        config=config.model_copy(update={"jobs": JobsConfig(schedules={"sweep": "0 3 * * sun"})}),
        clock=sunday,
        jobs=(spec,),
        migrate_schema=True,
        run_background=lambda work: work(),
    )
    try:
        scheduler = JobScheduler(core, submit=lambda work: work())
        real = core.audit.append

        def down(**_: Any) -> None:
            raise OperationalError("INSERT INTO audit_events …", {}, Exception("connection refused"))

        monkeypatch.setattr(core.audit, "append", down)
        with capture_logs() as logs:
            scheduler.tick()
        assert ran == [], "a job never runs unaudited"
        assert [(e["event"], e.get("error")) for e in logs if e["log_level"] == "error"] == [
            ("job_not_run_unaudited", "OperationalError")
        ]

        monkeypatch.setattr(core.audit, "append", real)
        scheduler.tick()  # the next tick catches the fire up
        assert len(ran) == 1
        assert [e.outcome for e in _events(core.db, verb="sweep")] == ["started", "succeeded"]
    finally:
        core.close()
