"""The audit trail at its edges (SQLite and PostgreSQL): what verify reports and from where, the
exact export an auditor receives, the key's rules, and the filters of `recent`."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import event

from bot.settings import Settings
from bot.store import migrate
from bot.store.audit import (
    GENESIS,
    MARKER_VERB,
    AuditKeyError,
    AuditKeyingRefused,
    AuditLog,
    ChainHead,
    chain_key,
)
from bot.store.audit.chain import _entry_digest
from bot.store.db import Database
from tests.test_audit import tamper

T0 = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
KEY = b"k" * 16 + b"0123456789abcdef0123456789abcdef"


def _append(log: AuditLog, i: int, **over: object) -> None:
    fields: dict[str, object] = {
        "at": T0 + timedelta(seconds=i),
        "actor": f"U{i}",
        "source": "slack",
        "verb": "status",
        "env": "dev",
        "args": {"i": i},
        "rule": "matrix:status/dev:dev",
        "outcome": "allowed",
        "detail": None,
        "request_id": None,
    }
    fields.update(over)
    log.append(**fields)  # type: ignore[arg-type]


def _fill(log: AuditLog, n: int) -> None:
    for i in range(1, n + 1):
        _append(log, i)


def test_two_events_deleted_together_are_reported_as_one_range(db: Database) -> None:
    log = AuditLog(db)
    _fill(log, 6)
    tamper(db, "DELETE FROM audit_events WHERE seq IN (3, 4)")
    report = log.verify()
    assert not report.ok
    assert "event 3–4 is missing (deleted)" in report.problems
    assert "event 5: does not follow the event before it (a row was deleted or inserted)" in report.problems
    assert report.checked == 4


def test_verify_reports_the_head_it_judged_and_walks_on_from_an_anchor(db: Database) -> None:
    log = AuditLog(db)
    _fill(log, 3)
    report = log.verify()
    head = log.head()
    assert (report.head.seq, report.head.hash, report.head.at) == (3, head.hash, T0 + timedelta(seconds=3))
    assert head.at == T0 + timedelta(seconds=3)
    assert log.hash_at(3) == head.hash and log.hash_at(4) is None
    _append(log, 4)
    _append(log, 5)
    later = log.verify(since=report.head)
    assert later.ok and later.checked == 2 and later.head.seq == 5
    # An edit before the anchor is not judged again; one after it is.
    tamper(db, "UPDATE audit_events SET outcome = 'denied' WHERE seq = 2")
    assert log.verify(since=report.head).ok
    tamper(db, "UPDATE audit_events SET outcome = 'denied' WHERE seq = 5")
    assert log.verify(since=report.head).problems == (
        "event 5: its contents were changed after it was written",
    )


def test_an_empty_trail_has_the_genesis_head(db: Database) -> None:
    log = AuditLog(db)
    assert log.head() == ChainHead(seq=0, hash=GENESIS)
    report = log.verify()
    assert report.ok and report.checked == 0 and report.head.seq == 0 and report.head.hash == GENESIS
    assert not report.keyed


def test_a_keyed_trail_verifies_under_its_key_and_not_without_it(db: Database) -> None:
    log = AuditLog(db, key=KEY)
    _fill(log, 3)
    report = log.verify()
    assert report.ok and report.keyed and report.keyed_from == 1 and report.checked == 4
    # Each hash is the HMAC under the key, not the plain digest.
    for entry in log.entries():
        assert _entry_digest(entry, KEY) == entry.hash != _entry_digest(entry, None)
    unkeyed = AuditLog(db).verify()
    assert not unkeyed.ok and unkeyed.unchecked_from == 1 and unkeyed.problems == ()
    wrong = AuditLog(db, key=b"w" * 48).verify()
    assert wrong.problems[0].startswith(
        "event 1, where the trail became keyed, does not verify under AUDIT_KEY"
    )
    assert wrong.unchecked_from == 2
    with pytest.raises(AuditKeyError, match="not the key the audit trail was keyed with"):
        AuditLog(db, key=b"w" * 48).check_key()
    with pytest.raises(AuditKeyError, match="AUDIT_KEY is not set"):
        AuditLog(db).check_key()
    AuditLog(db, key=KEY).check_key()


def test_the_key_must_have_32_characters() -> None:
    assert chain_key(Settings(audit_key=None)) is None
    assert chain_key(Settings(audit_key=SecretStr("x" * 32))) == b"x" * 32
    with pytest.raises(AuditKeyError, match=r"too short \(31 characters\)"):
        chain_key(Settings(audit_key=SecretStr("x" * 31)))


def test_the_json_export_is_exactly_the_trail(db: Database) -> None:
    log = AuditLog(db)
    empty = io.StringIO()
    assert log.export(empty, "json") == 0
    assert empty.getvalue() == "[]\n"
    _append(log, 1, env=None, args={"b": 1, "a": [1, 2]})
    _append(log, 2, detail="why", request_id="req2")
    out = io.StringIO()
    assert log.export(out, "json") == 2
    text = out.getvalue()
    assert text.startswith("[\n  {") and text.endswith("}\n]\n") and ",\n  {" in text
    first, second = json.loads(text)
    entries = list(log.entries())
    assert first == {
        "seq": 1,
        "at": entries[0].at.isoformat(),
        "actor": "U1",
        "source": "slack",
        "verb": "status",
        "env": "",
        "args": {"b": 1, "a": [1, 2]},
        "rule": "matrix:status/dev:dev",
        "outcome": "allowed",
        "detail": "",
        "request_id": "",
        "prev_hash": GENESIS,
        "hash": entries[0].hash,
    }
    assert (second["env"], second["detail"], second["request_id"]) == ("dev", "why", "req2")
    assert second["prev_hash"] == first["hash"]


def test_the_csv_export_has_every_field_and_args_as_sorted_json(db: Database) -> None:
    log = AuditLog(db)
    _append(log, 1, args={"b": 1, "a": 2})
    out = io.StringIO()
    assert log.export(out, "csv") == 1
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["args"] == '{"a": 2, "b": 1}'
    assert (row["env"], row["detail"], row["request_id"], row["prev_hash"]) == ("dev", "", "", GENESIS)


def test_long_trails_are_read_in_batches_without_losing_an_event(db: Database) -> None:
    log = AuditLog(db)
    _fill(log, 7)
    assert [e.seq for e in log.entries(batch=3)] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.seq for e in log.entries(batch=2, after=2, up_to=5)] == [3, 4, 5]


def test_recent_shows_the_envs_asked_for_and_the_users_own_envless_events(db: Database) -> None:
    log = AuditLog(db)
    _append(log, 1, env="prod")
    _append(log, 2, env=None, actor="UME")
    _append(log, 3, env=None, actor="UOTHER")
    _append(log, 4, env="dev")
    assert [e.seq for e in log.recent()] == [4, 3, 2, 1]
    assert [e.seq for e in log.recent(envs=["prod"])] == [1]
    assert [e.seq for e in log.recent(envs=["prod"], envless_actor="UME")] == [2, 1]
    assert [e.seq for e in log.recent(envs=[], envless_actor="UME")] == [2]
    assert [e.seq for e in log.recent(limit=2)] == [4, 3]


def test_an_append_keeps_only_what_the_json_column_holds(db: Database) -> None:
    log = AuditLog(db)
    entry = log.append(
        at=T0,
        actor="U" * 200,
        source="slack",
        verb="status",
        env="dev",
        args={"when": T0},
        rule="r",
        outcome="allowed",
    )
    assert entry.args == {"when": str(T0)}
    assert entry.actor == "U" * 64  # the column's width
    assert log.verify().ok


def test_a_short_key_is_refused_with_the_advice_an_operator_can_follow() -> None:
    with pytest.raises(AuditKeyError) as refused:
        chain_key(Settings(audit_key=SecretStr("x" * 31)))
    assert str(refused.value) == (
        "AUDIT_KEY is too short (31 characters): use at least 32 random characters, "
        "e.g. the output of `openssl rand -hex 32`."
    )


def test_the_key_errors_say_exactly_what_to_set(db: Database) -> None:
    with pytest.raises(AuditKeyError) as no_key:
        AuditLog(db).key_trail(at=T0, expect=ChainHead(seq=0, hash=GENESIS), actor="cli:ops")
    assert str(no_key.value) == (
        "AUDIT_KEY is not set: set it (the environment or Secrets Manager) to key the trail."
    )
    _fill(AuditLog(db, key=KEY), 2)
    with pytest.raises(AuditKeyError) as unset:
        AuditLog(db).check_key()
    assert str(unset.value) == (
        "The audit trail is keyed since event 1 but AUDIT_KEY is not set. "
        "Set it (the environment or Secrets Manager)."
    )
    with pytest.raises(AuditKeyError) as wrong:
        AuditLog(db, key=b"w" * 48).check_key()
    assert str(wrong.value) == (
        "AUDIT_KEY is not the key the audit trail was keyed with (event 1 does not verify under it): "
        "set the original key."
    )


def test_the_keying_marker_says_what_it_froze(db: Database) -> None:
    """The marker an auditor reads: how many unkeyed events came before it and the hash of the last."""
    fresh = AuditLog(db, key=KEY)
    _append(fresh, 1)
    [marker, _] = list(fresh.entries())
    assert (marker.verb, marker.source, marker.actor) == (MARKER_VERB, "audit", "menotime-bot")
    assert (marker.rule, marker.outcome, marker.env) == ("audit-key", "keyed", None)
    assert marker.detail == "every hash of this trail is HMAC-SHA256 under AUDIT_KEY"
    assert marker.args == {"unkeyed_events": 0, "unkeyed_head": GENESIS}


def test_audit_key_freezes_the_unkeyed_prefix_and_refuses_to_key_twice(db: Database) -> None:
    _fill(AuditLog(db), 3)
    keyed = AuditLog(db, key=KEY)
    head = keyed.head()
    with pytest.raises(AuditKeyingRefused) as moved:
        keyed.key_trail(at=T0, expect=ChainHead(seq=2, hash=head.hash), actor="cli:ops")
    assert str(moved.value) == (
        "the trail's head moved from event 2 to 3 since it was verified; run `menotime-bot audit key` again."
    )
    marker = keyed.key_trail(at=T0, expect=head, actor="cli:ops")
    assert (marker.seq, marker.verb, marker.actor, marker.rule, marker.outcome) == (
        4,
        MARKER_VERB,
        "cli:ops",
        "audit-key",
        "keyed",
    )
    assert marker.detail == (
        "events 1-3 are chained with plain SHA-256; from this event on every hash is HMAC-SHA256 under AUDIT_KEY"
    )
    assert marker.args == {"unkeyed_events": 3, "unkeyed_head": head.hash}
    for again in (keyed, AuditLog(db, key=KEY)):  # this process, and another one
        with pytest.raises(AuditKeyingRefused) as twice:
            again.key_trail(at=T0, expect=again.head(), actor="cli:ops")
        assert str(twice.value) == "the audit trail is already keyed (since event 4)."
    assert [e.verb for e in keyed.entries()].count(MARKER_VERB) == 1
    assert keyed.verify().ok


def test_check_key_reads_the_trail_afresh_not_what_this_process_saw_before(db: Database) -> None:
    """A process that appended to an unkeyed trail, then finds a keyed one in its place (a database
    restored from another backup): check_key judges the trail in the database, from its first event."""
    old = AuditLog(db)
    _fill(old, 3)
    tamper(db, "DELETE FROM audit_events")
    tamper(db, "UPDATE audit_head SET seq = 0, hash = :h", h=GENESIS)
    _fill(AuditLog(db, key=KEY), 3)
    with pytest.raises(AuditKeyError, match="keyed since event 1 but AUDIT_KEY is not set"):
        old.check_key()


def test_the_head_of_a_trail_whose_newest_event_is_gone_still_reads(db: Database) -> None:
    """The periodic anchor reads the head first: a deleted newest event leaves it without a time,
    for verify to report, rather than breaking the read."""
    log = AuditLog(db)
    _fill(log, 3)
    third = log.hash_at(3)
    tamper(db, "DELETE FROM audit_events WHERE seq = 3")
    assert log.head() == ChainHead(seq=3, hash=third or "", at=None)
    assert "the trail ends at event 2 but 3 were written (events at the end were deleted)" in (
        log.verify().problems
    )


def test_recent_shows_twenty_events_by_default(db: Database) -> None:
    log = AuditLog(db)
    _fill(log, 22)
    assert [e.seq for e in log.recent()] == list(range(22, 2, -1))


def test_reading_the_trail_never_waits_for_a_writer(tmp_path: Path) -> None:
    """Read-only units of work begin deferred (SQLite): `audit verify`, status, the start-up check and
    the anchor read the trail while another process holds the write lock."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    setup = Database(url)
    migrate.upgrade(setup)
    _fill(AuditLog(setup, key=KEY), 2)
    setup.dispose()
    reader = Database(url)
    # A writer's lock would make a read that asks for it wait 30 s; fail in a tenth of that here.
    event.listen(reader.engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout=100"))
    log = AuditLog(reader, key=KEY)
    writer = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        assert log.head().seq == 3
        assert log.hash_at(3) == log.head().hash
        assert [e.seq for e in log.recent()] == [3, 2, 1]
        assert [e.seq for e in log.entries()] == [1, 2, 3]
        log.check_key()
        assert log.verify().ok
        out = io.StringIO()
        assert log.export(out, "csv") == 3
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        reader.dispose()


# -- the hash format is a contract: a trail written today verifies after any upgrade -----------------

_EVENT = dict(
    seq=7,
    at=datetime(2026, 11, 24, 18, 0, 0, 123456, tzinfo=UTC),
    actor="U0RELMGR",
    source="slack",
    verb="deploy",
    env="prod",
    args={"tag": "v1.6.0", "reason": "release – Zoë"},
    rule="matrix:deploy/prod:release_manager",
    outcome="allowed",
    detail="asked — Zoë",
    request_id="ab996419d65b",
)
# The canonical form every stored hash was made of: every field, keys sorted, no spaces, ASCII only,
# microseconds in UTC, preceded by the previous event's hash and a newline.
_CANONICAL = (
    '{"actor":"U0RELMGR","args":{"reason":"release \\u2013 Zo\\u00eb","tag":"v1.6.0"},'
    '"at":"2026-11-24T18:00:00.123456+00:00","detail":"asked \\u2014 Zo\\u00eb","env":"prod",'
    '"outcome":"allowed","request_id":"ab996419d65b","rule":"matrix:deploy/prod:release_manager",'
    '"seq":7,"source":"slack","verb":"deploy"}'
)


@pytest.mark.parametrize("key", [None, b"k" * 32], ids=["plain", "keyed"])
def test_an_events_hash_keeps_its_canonical_form_so_old_trails_verify_after_an_upgrade(
    key: bytes | None,
) -> None:
    """Any change to the form (a field renamed, keys unsorted, another separator, non-ASCII written
    raw, seconds instead of microseconds) would make every trail written before it fail verify."""
    import hashlib
    import hmac

    from bot.store.audit.chain import _digest

    message = ("0" * 64 + "\n" + _CANONICAL).encode()
    expected = (
        hashlib.sha256(message).hexdigest()
        if key is None
        else hmac.new(key, message, hashlib.sha256).hexdigest()
    )
    assert _digest("0" * 64, key, **_EVENT) == expected  # type: ignore[arg-type]


# -- what verify and the key check tell an operator, word for word ----------------------------------


def test_verify_with_a_key_over_a_never_keyed_trail_says_it_could_have_been_rewritten(db: Database) -> None:
    _fill(AuditLog(db), 3)
    report = AuditLog(db, key=KEY).verify()
    assert report.problems == (
        "none of the 3 events is keyed although AUDIT_KEY is set: the whole trail could have been "
        "rewritten with the plain digest (if it was never keyed, an operator keys it with "
        "`menotime-bot audit key`)",
    )


def test_verify_under_a_wrong_key_names_the_keying_event_and_judges_only_the_links_after_it(
    db: Database,
) -> None:
    _fill(AuditLog(db, key=KEY), 3)
    report = AuditLog(db, key=b"w" * 48).verify()
    assert report.problems == (
        "event 1, where the trail became keyed, does not verify under AUDIT_KEY: the key is not the one "
        "the trail was keyed with, or the event was forged",
    )
    assert report.unchecked_from == 2 and not report.ok


def test_verify_says_when_the_head_record_does_not_match_the_last_event(db: Database) -> None:
    log = AuditLog(db)
    _fill(log, 3)
    tamper(db, f"UPDATE audit_head SET hash = '{'e' * 64}'")
    assert log.verify().problems == ("the trail's head record does not match its last event (tampered)",)


def test_a_process_without_the_key_refuses_a_keyed_trail_saying_what_to_set(db: Database) -> None:
    _fill(AuditLog(db, key=KEY), 2)
    with pytest.raises(AuditKeyError) as refused:
        _append(AuditLog(db), 9)
    assert str(refused.value) == (
        "The audit trail is keyed since event 1 but AUDIT_KEY is not set: an event written without it "
        "would read as forged. Set AUDIT_KEY."
    )


def test_a_user_typing_the_keying_markers_verb_does_not_key_the_trail(db: Database) -> None:
    """An unknown command is audited under the word typed (`/menotime audit-chain-keyed`); only the
    bot's own marker, from the `audit` source, keys the trail."""
    log = AuditLog(db)
    _fill(log, 2)
    _append(log, 3, verb=MARKER_VERB, source="slack", rule="parse", outcome="invalid")
    report = log.verify()
    assert report.ok and not report.keyed and report.keyed_from is None
    assert AuditLog(db, key=KEY).verify().problems[0].startswith("none of the 3 events is keyed")


def test_verify_judges_the_trail_in_the_database_not_the_marker_this_process_saw(db: Database) -> None:
    """A keyed process remembers where its trail became keyed. If the trail is then replaced by one
    rewritten with the plain digest (the marker gone), verify says so, from what the database holds."""
    log = AuditLog(db, key=KEY)
    _fill(log, 3)  # the keying marker is event 1, and this process remembers it
    tamper(db, "DELETE FROM audit_events")
    tamper(db, "UPDATE audit_head SET seq = 0, hash = :h", h=GENESIS)
    _fill(AuditLog(db), 3)  # the forgery: three events under the plain digest, consistent among themselves
    report = log.verify()
    assert report.keyed_from is None
    assert report.problems == (
        "none of the 3 events is keyed although AUDIT_KEY is set: the whole trail could have been "
        "rewritten with the plain digest (if it was never keyed, an operator keys it with "
        "`menotime-bot audit key`)",
    )


@pytest.mark.postgres
def test_a_trail_reordered_on_disk_by_routine_maintenance_still_verifies_and_exports_in_order(
    postgres_server: str,
) -> None:
    """PostgreSQL returns rows in no promised order without ORDER BY: after a DBA's CLUSTER (here by
    the verb index), the rows lie on disk in verb order, and the trail must still be read by seq."""
    from tests.conftest import _reset_postgres

    _reset_postgres(postgres_server)
    db = Database(postgres_server)
    migrate.upgrade(db)
    log = AuditLog(db)
    for i, verb in enumerate(["status", "deploy", "scale", "alarms", "rollback"], start=1):
        _append(log, i, verb=verb)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CLUSTER audit_events USING ix_audit_events_verb")
    report = log.verify()
    assert report.ok, report.problems
    assert [e.seq for e in log.entries()] == [1, 2, 3, 4, 5]
    assert [e.seq for e in log.entries(batch=2)] == [1, 2, 3, 4, 5]
    db.dispose()
