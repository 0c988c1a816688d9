"""Freezes, change leases and change requests, on SQLite and PostgreSQL, with explicit times."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command

from bot.errors import NotFound, PolicyViolation
from bot.store import migrate
from bot.store.changes import Freezes, Leases, Requests
from bot.store.db import Database

NOW = datetime(2026, 11, 24, 18, 2, tzinfo=UTC)  # Tuesday 10:02 in Los Angeles
TTL = timedelta(minutes=30)
PARAMS = {"env": "prod", "image_tag": "v1.4.2", "digest": "sha256:" + "ab" * 32, "revision": 42}


# -- freezes -----------------------------------------------------------------------------------------


def test_freeze_and_unfreeze(db: Database) -> None:
    freezes = Freezes(db)
    assert freezes.get("prod") is None
    made = freezes.freeze(env="prod", reason="db failover in progress", by="U0ONCALL1", at=NOW)
    assert made.locked_by == "U0ONCALL1"

    got = freezes.get("prod")
    assert got == made
    assert got.locked_at == NOW and got.locked_at.tzinfo is not None
    assert freezes.all() == {"prod": made}

    assert freezes.unfreeze(env="prod") == made
    assert freezes.get("prod") is None
    assert freezes.all() == {}


def test_a_second_freeze_is_refused_and_names_the_first(db: Database) -> None:
    freezes = Freezes(db)
    freezes.freeze(env="prod", reason="db failover", by="U0ONCALL1", at=NOW)
    with pytest.raises(PolicyViolation) as refused:
        freezes.freeze(env="prod", reason="me too", by="U0OPS", at=NOW + timedelta(minutes=5))
    assert refused.value.message == "prod is already locked by <@U0ONCALL1> since 10:02 PT: db failover"
    assert freezes.get("prod").reason == "db failover"
    # other environments are independent
    freezes.freeze(env="staging", reason="load test", by="U0OPS", at=NOW)
    assert set(freezes.all()) == {"prod", "staging"}


def test_unfreezing_what_is_not_frozen_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match=r"^prod is not locked$"):
        Freezes(db).unfreeze(env="prod")


def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Freezes(db).freeze(env="prod", reason="x", by="U0OPS", at=datetime(2026, 11, 24, 18, 0))


# -- leases ------------------------------------------------------------------------------------------


def test_a_lease_is_taken_once_and_refused_while_held(db: Database) -> None:
    leases = Leases(db)
    lease = leases.acquire(
        env="prod", holder="REQ-AAAAAA", action="deploy", user="U0RELMGR", now=NOW, ttl=TTL
    )
    assert (lease.env, lease.holder, lease.action, lease.user) == ("prod", "REQ-AAAAAA", "deploy", "U0RELMGR")
    assert lease.acquired_at == NOW and lease.expires_at == NOW + TTL
    assert leases.get("prod", now=NOW) == lease

    with pytest.raises(PolicyViolation) as refused:
        leases.acquire(
            env="prod",
            holder="REQ-BBBBBB",
            action="scale",
            user="U0OPS",
            now=NOW + timedelta(minutes=1),
            ttl=TTL,
        )
    assert refused.value.message == (
        "Another change is in flight on prod: deploy by <@U0RELMGR> since 10:02 PT; try again when it ends "
        "(the lock expires at 10:32 PT)."
    )

    # the same holder does not get in twice either (a double-clicked button)
    with pytest.raises(PolicyViolation, match="already running on prod"):
        leases.acquire(env="prod", holder="REQ-AAAAAA", action="deploy", user="U0RELMGR", now=NOW, ttl=TTL)

    # other environments are independent
    leases.acquire(env="staging", holder="REQ-CCCCCC", action="scale", user="U0OPS", now=NOW, ttl=TTL)
    assert set(leases.all(now=NOW)) == {"prod", "staging"}


def test_an_expired_lease_is_taken_over(db: Database) -> None:
    leases = Leases(db)
    leases.acquire(env="prod", holder="REQ-AAAAAA", action="deploy", user="U0RELMGR", now=NOW, ttl=TTL)
    later = NOW + TTL
    assert leases.get("prod", now=later) is None  # expired: nobody holds it
    assert leases.all(now=later) == {}

    taken = leases.acquire(
        env="prod", holder="REQ-BBBBBB", action="rollback", user="U0ONCALL1", now=later, ttl=TTL
    )
    assert (taken.holder, taken.acquired_at, taken.expires_at) == ("REQ-BBBBBB", later, later + TTL)
    assert leases.get("prod", now=later) == taken
    # the old holder's release does not free the new holder's lease
    assert leases.release(env="prod", holder="REQ-AAAAAA") is False
    assert leases.get("prod", now=later) == taken


def test_only_the_holder_releases_and_renews(db: Database) -> None:
    leases = Leases(db)
    leases.acquire(env="prod", holder="REQ-AAAAAA", action="deploy", user="U0RELMGR", now=NOW, ttl=TTL)
    assert leases.renew(env="prod", holder="REQ-BBBBBB", now=NOW, ttl=TTL) is False
    assert leases.release(env="prod", holder="REQ-BBBBBB") is False
    assert leases.get("prod", now=NOW) is not None

    later = NOW + timedelta(minutes=20)
    assert leases.renew(env="prod", holder="REQ-AAAAAA", now=later, ttl=TTL) is True
    assert leases.get("prod", now=NOW + TTL + timedelta(minutes=1)).expires_at == later + TTL

    assert leases.release(env="prod", holder="REQ-AAAAAA") is True
    assert leases.get("prod", now=NOW) is None
    assert leases.release(env="prod", holder="REQ-AAAAAA") is False
    leases.acquire(env="prod", holder="REQ-BBBBBB", action="scale", user="U0OPS", now=NOW, ttl=TTL)


def test_held_releases_on_exit_even_on_errors(db: Database) -> None:
    leases = Leases(db)
    with leases.held(
        env="prod", holder="REQ-AAAAAA", action="deploy", user="U0RELMGR", now=NOW, ttl=TTL
    ) as lease:
        assert leases.get("prod", now=NOW) == lease
    assert leases.get("prod", now=NOW) is None

    with (
        pytest.raises(RuntimeError, match="boom"),
        leases.held(env="prod", holder="REQ-BBBBBB", action="scale", user="U0OPS", now=NOW, ttl=TTL),
    ):
        raise RuntimeError("boom")
    assert leases.get("prod", now=NOW) is None

    # a refused acquire leaves the holder's lease alone
    leases.acquire(env="prod", holder="REQ-AAAAAA", action="deploy", user="U0RELMGR", now=NOW, ttl=TTL)
    with (
        pytest.raises(PolicyViolation),
        leases.held(env="prod", holder="REQ-CCCCCC", action="scale", user="U0OPS", now=NOW, ttl=TTL),
    ):
        pytest.fail("must not run")
    assert leases.get("prod", now=NOW).holder == "REQ-AAAAAA"


# -- requests ----------------------------------------------------------------------------------------


def _create(
    requests: Requests,
    *,
    by: str = "U0RELMGR",
    kind: str = "approval",
    env: str = "prod",
    now: datetime = NOW,
    ttl: timedelta = timedelta(hours=2),
) -> Any:
    return requests.create(
        kind=kind,
        env=env,
        action="deploy",
        params=PARAMS,
        requested_by=by,
        reason="release 1.4.2",
        now=now,
        ttl=ttl,
    )


def test_create_and_get(db: Database) -> None:
    requests = Requests(db)
    made = _create(requests)
    assert made.id.startswith("REQ-") and len(made.id) <= 16
    assert (made.kind, made.env, made.action, made.status) == ("approval", "prod", "deploy", "pending")
    assert made.params == PARAMS and made.params_hash == Requests.params_hash(PARAMS)
    assert made.requested_by == "U0RELMGR" and made.reason == "release 1.4.2"
    assert made.created_at == NOW and made.expires_at == NOW + timedelta(hours=2)
    assert made.decided_by is None and made.decided_at is None and made.channel is None

    got = requests.get(made.id)
    assert got == made and got.created_at.tzinfo is not None
    assert requests.get(made.id.lower()) == made
    assert requests.get(made.id.removeprefix("REQ-").lower()) == made
    assert got.matches({**PARAMS}) and not got.matches({**PARAMS, "revision": 43})

    requests.set_message(id=made.id, channel="C0PROD", ts="1700000000.000100")
    got = requests.get(made.id)
    assert (got.channel, got.message_ts) == ("C0PROD", "1700000000.000100")

    assert len({_create(requests).id for _ in range(20)}) == 20


def test_unknown_requests_are_not_found(db: Database) -> None:
    requests = Requests(db)
    with pytest.raises(NotFound) as missing:
        requests.get("REQ-ZZZZZZ")
    assert missing.value.message == "There is no request REQ-ZZZZZZ."
    with pytest.raises(NotFound):
        requests.decide(id="REQ-ZZZZZZ", status="approved", by="U0OPS", now=NOW)
    with pytest.raises(NotFound):
        requests.set_message(id="REQ-ZZZZZZ", channel="C0PROD", ts="1.2")


def test_approve_then_execute(db: Database) -> None:
    requests = Requests(db)
    made = _create(requests)
    at = NOW + timedelta(minutes=10)
    approved = requests.decide(id=made.id.lower(), status="approved", by="U0OPS", now=at)
    assert (approved.status, approved.decided_by, approved.decided_at) == ("approved", "U0OPS", at)
    assert requests.pending() == []

    executed = requests.decide(id=made.id, status="executed", by="U0RELMGR", now=at, expect="approved")
    assert executed.status == "executed"
    assert (executed.decided_by, executed.decided_at) == ("U0OPS", at)  # the approver stays on record


def test_deny(db: Database) -> None:
    requests = Requests(db)
    made = _create(requests)
    denied = requests.decide(id=made.id, status="denied", by="U0OPS", now=NOW)
    assert (denied.status, denied.decided_by) == ("denied", "U0OPS")
    with pytest.raises(PolicyViolation) as refused:
        requests.decide(id=made.id, status="approved", by="U0ADMIN", now=NOW)
    assert refused.value.message == f"Request {made.id} was already denied by <@U0OPS>."


def test_a_request_is_decided_once(db: Database) -> None:
    requests = Requests(db)
    made = _create(requests)
    requests.decide(id=made.id, status="approved", by="U0OPS", now=NOW)
    for status in ("approved", "denied", "cancelled"):
        with pytest.raises(PolicyViolation) as refused:
            requests.decide(id=made.id, status=status, by="U0ADMIN", now=NOW)
        assert refused.value.message == f"Request {made.id} was already approved by <@U0OPS>."
    assert requests.get(made.id).decided_by == "U0OPS"

    # executing needs an approval first
    other = _create(requests)
    with pytest.raises(PolicyViolation, match="still pending; it has not been approved yet"):
        requests.decide(id=other.id, status="executed", by="U0RELMGR", now=NOW, expect="approved")


def test_an_expired_request_cannot_be_decided(db: Database) -> None:
    requests = Requests(db)
    made = _create(requests, ttl=timedelta(hours=2))
    expiry = NOW + timedelta(hours=2)
    for status in ("approved", "denied", "cancelled", "executed"):
        with pytest.raises(PolicyViolation) as refused:
            requests.decide(id=made.id, status=status, by="U0OPS", now=expiry)
        assert refused.value.message == f"Request {made.id} expired at 12:02 PT; ask again."
    assert requests.get(made.id).status == "expired"  # the refusal records it


def test_expire_due_and_pending(db: Database) -> None:
    requests = Requests(db)
    short = _create(requests, ttl=timedelta(minutes=5))
    long = _create(requests, ttl=timedelta(hours=2), now=NOW + timedelta(seconds=1))
    staging = _create(
        requests, env="staging", kind="confirmation", ttl=timedelta(hours=2), now=NOW + timedelta(seconds=2)
    )
    decided = _create(requests, ttl=timedelta(minutes=5))
    requests.decide(id=decided.id, status="cancelled", by="U0RELMGR", now=NOW)

    assert [r.id for r in requests.pending()] == [short.id, long.id, staging.id]
    assert [r.id for r in requests.pending("prod")] == [short.id, long.id]
    later = NOW + timedelta(minutes=5)
    assert [r.id for r in requests.pending("prod", now=later)] == [long.id]

    assert requests.expire_due(now=later) == 1
    assert requests.expire_due(now=later) == 0
    assert requests.get(short.id).status == "expired"
    assert requests.get(short.id).is_expired(later)
    assert requests.get(decided.id).status == "cancelled"
    assert [r.id for r in requests.pending()] == [long.id, staging.id]
    with pytest.raises(PolicyViolation, match="expired at 10:07 PT; ask again"):
        requests.decide(id=short.id, status="approved", by="U0OPS", now=later)


def test_the_params_hash_ignores_key_order_and_nothing_else() -> None:
    one = {"env": "prod", "image": {"tag": "v1.4.2", "digest": "sha256:ab"}, "revision": 42}
    two = {"revision": 42, "image": {"digest": "sha256:ab", "tag": "v1.4.2"}, "env": "prod"}
    assert Requests.params_hash(one) == Requests.params_hash(two)
    assert len(Requests.params_hash(one)) == 64
    assert Requests.params_hash(one) != Requests.params_hash({**one, "revision": 43})
    assert Requests.params_hash(one) != Requests.params_hash({**one, "revision": "42"})


# -- races: one winner, across engines (as across processes and replicas) ----------------------------


def _race(
    url: str, attempt: Callable[[Database, int], Any], contenders: int = 10
) -> tuple[list[Any], list[Exception]]:
    """Runs ``attempt(database, i)`` on ``contenders`` threads at once, each with its own engine."""
    databases = [Database(url) for _ in range(contenders)]
    for database in databases:
        database.ping()  # connect before the start line, so the race is on the statements
    barrier = threading.Barrier(contenders)
    wins: list[Any] = []
    losses: list[Exception] = []
    guard = threading.Lock()

    def run(database: Database, index: int) -> None:
        barrier.wait()
        try:
            result = attempt(database, index)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            with guard:
                losses.append(exc)
        else:
            with guard:
                wins.append(result)

    threads = [threading.Thread(target=run, args=(database, i)) for i, database in enumerate(databases)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for database in databases:
        database.dispose()
    assert not any(thread.is_alive() for thread in threads), "a contender hung"
    return wins, losses


# Also on SQLite: BEGIN IMMEDIATE (bot/store/db.py) serialises writers across connections.
def test_ten_contenders_one_lease(database_url: str, db: Database) -> None:
    for round_ in range(3):
        env = f"prod{round_}"
        wins, losses = _race(
            database_url,
            lambda d, i, env=env: Leases(d).acquire(
                env=env, holder=f"{env}-{i}", action="deploy", user=f"U0USER{i}", now=NOW, ttl=TTL
            ),
        )
        assert len(wins) == 1 and len(losses) == 9, losses
        assert all(isinstance(exc, PolicyViolation) for exc in losses), losses
        assert all(f"deploy by <@{wins[0].user}>" in exc.message for exc in losses), losses
        assert Leases(db).get(env, now=NOW) == wins[0]

    # and the same for taking over an expired lease
    later = NOW + TTL
    wins, losses = _race(
        database_url,
        lambda d, i: Leases(d).acquire(
            env="prod0", holder=f"TAKE-{i}", action="rollback", user=f"U0USER{i}", now=later, ttl=TTL
        ),
    )
    assert len(wins) == 1 and len(losses) == 9, losses
    assert all(isinstance(exc, PolicyViolation) for exc in losses), losses
    assert Leases(db).get("prod0", now=later) == wins[0]


def test_ten_deciders_one_decision(database_url: str, db: Database) -> None:
    requests = Requests(db)
    for round_ in range(3):
        made = _create(requests)
        wins, losses = _race(
            database_url,
            lambda d, i, rid=made.id: Requests(d).decide(
                id=rid, status="approved" if i % 2 else "denied", by=f"U0USER{i}", now=NOW
            ),
        )
        assert len(wins) == 1 and len(losses) == 9, (round_, losses)
        assert all(isinstance(exc, PolicyViolation) and "was already" in exc.message for exc in losses), (
            losses
        )
        final = requests.get(made.id)
        assert (final.status, final.decided_by) == (wins[0].status, wins[0].decided_by)


def test_the_migration_applies_on_top_of_0001_and_reverts(database_url: str) -> None:
    database = Database(database_url)
    try:
        migrate.upgrade(database, "0001")
        migrate.upgrade(database)
        assert migrate.is_current(database)
        cfg = migrate._alembic_config(database)
        with database.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "0001")
        assert migrate.current_revision(database) == "0001"
        migrate.upgrade(database)
        assert migrate.is_current(database)
    finally:
        database.dispose()
