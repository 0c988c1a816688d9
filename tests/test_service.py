"""The command service end to end in-process: parse, identify, decide, audit, run, answer."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bot.answers import ErrorResult, HelpResult, WhoamiResult
from bot.dispatch import Dispatcher
from bot.render import render_slack, render_text
from tests.conftest import GROUP_MEMBER, NOBODY, PEOPLE
from tests.harness import TestBot


def test_status_prod_reports_the_seeded_service(testbot: TestBot) -> None:
    reply = testbot.reply("status prod", user=PEOPLE["viewer"])
    assert reply.outcome == "ok"
    shown = render_text(reply.result)
    assert "2 running / 2 desired / 0 pending" in shown
    assert "menotime-backend-prod:3" in shown and "v1.5.0" in shown
    assert "autoscaling 2–4" in shown and "db.m7g.large" in shown and "1000 GB" in shown
    assert "menotime-prod-api-5xx" in shown
    assert (
        "last deploy  v1.5.0 (rev 3) by CI/CD or console, completed" in shown
    )  # seen in ECS, whoever made it


def test_status_all_answers_for_every_environment_in_one_message(testbot: TestBot) -> None:
    reply = testbot.reply("status all", user=PEOPLE["oncall"])
    shown = render_text(reply.result)
    assert [e.env for e in reply.result.envs] == ["dev", "staging", "prod"]
    assert "develop" in shown and "main" in shown and "v1.5.0" in shown
    assert len(render_slack(reply.result)["blocks"]) <= 50


def test_every_decision_is_audited_with_its_rule(testbot: TestBot) -> None:
    testbot.reply("status prod", user=PEOPLE["developer"])
    testbot.reply("status prod", user=NOBODY)
    testbot.reply("stauts prod", user=PEOPLE["developer"])
    newest_first = testbot.core.audit.recent()
    assert [(e.actor, e.verb, e.env, e.outcome, e.rule) for e in newest_first] == [
        (PEOPLE["developer"], "stauts", None, "invalid", "parse"),
        (NOBODY, "status", "prod", "denied", "default-deny:no-role"),
        (PEOPLE["developer"], "status", "prod", "allowed", "matrix:status/prod:developer"),
    ]
    assert testbot.core.audit.verify().ok


def test_help_lists_only_what_the_user_may_use(testbot: TestBot) -> None:
    nobody = testbot.reply("help", user=NOBODY).result
    assert isinstance(nobody, HelpResult) and [v.name for v in nobody.verbs] == ["help", "whoami"]
    viewer = testbot.reply("help", user=PEOPLE["viewer"]).result
    # Seeing alarms is not acknowledging them (DESIGN §5): no ack or snooze for a viewer.
    assert [v.name for v in viewer.verbs] == ["help", "whoami", "status", "history", "alarms", "cost", "jobs"]


def test_help_for_a_verb_the_user_may_not_use_says_so(testbot: TestBot) -> None:
    reply = testbot.reply("help status", user=NOBODY)
    assert isinstance(reply.result, ErrorResult) and "needs the role" in reply.result.message


def test_whoami_shows_roles_from_groups(testbot: TestBot) -> None:
    result = testbot.reply("whoami", user=GROUP_MEMBER).result
    assert isinstance(result, WhoamiResult) and result.roles == ("developer",)
    assert {p.env: p.verbs for p in result.per_env}["prod"] == ("status", "history", "alarms", "cost", "jobs")


def test_a_developer_is_offered_changes_on_dev_only(testbot: TestBot) -> None:
    """DESIGN §5: developers have full access to dev and are read-only in staging and prod."""
    per_env = {p.env: p.verbs for p in testbot.reply("whoami", user=PEOPLE["developer"]).result.per_env}
    assert per_env["dev"] == (
        "status",
        "history",
        "alarms",
        "ack",
        "snooze",
        "deploy",
        "rollback",
        "scale",
        "confirm",
        "cancel",
        "cost",
        "jobs",
    )
    read_only = ("status", "history", "alarms", "cost", "jobs")
    assert per_env["staging"] == read_only and per_env["prod"] == read_only
    shown = {v.name: v.envs for v in testbot.reply("help", user=PEOPLE["developer"]).result.verbs}
    assert shown["deploy"] == ("dev",) and shown["rollback"] == ("dev",) and shown["scale"] == ("dev",)
    assert shown["ack"] == ("dev",) and shown["snooze"] == ("dev",)
    assert testbot.reply("help deploy", user=PEOPLE["developer"]).result.detail.envs == ("dev",)
    refused = testbot.reply("deploy staging main", user=PEOPLE["developer"])
    assert refused.outcome == "denied" and refused.result.message.startswith(
        "`deploy` on staging needs the role operations, release_manager or admin; you have developer."
    )
    assert testbot.reply("rollback staging", user=PEOPLE["qa"]).outcome == "denied"


def test_emergency_without_on_call_is_refused_as_break_glass(testbot: TestBot) -> None:
    reply = testbot.reply("deploy prod v1.5.1 --emergency 'login is down'", user=PEOPLE["release_manager"])
    assert reply.outcome == "denied"
    assert reply.result.message == (
        "`--emergency` on prod is break-glass for on-call: it needs the role oncall or admin; you have "
        "release_manager. Deploy without it, inside the change window and after the soak, or ask on-call."
    )
    [entry] = testbot.core.audit.recent(limit=1)
    assert (entry.verb, entry.outcome, entry.rule) == ("deploy", "denied", "matrix:emergency/prod")


def test_history_shows_changes_newest_first_and_no_reads(testbot: TestBot) -> None:
    testbot.reply("status prod", user=PEOPLE["oncall"])
    testbot.reply("status dev", user=PEOPLE["oncall"])
    result = testbot.reply("history prod 5", user=PEOPLE["oncall"]).result
    # the seeded deployment, seen in ECS; the reads (status, history itself) are not changes
    assert [(e.env, e.kind, e.what, e.actor) for e in result.entries] == [
        ("prod", "deploy", "`v1.5.0` (rev 3)", "CI/CD or console")
    ]
    everything = testbot.reply("history", user=PEOPLE["oncall"]).result
    assert sorted(e.env for e in everything.entries) == ["dev", "prod", "staging"]


def test_an_unexpected_error_gives_a_reference_not_a_traceback(
    testbot: TestBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(**_kwargs):
        raise RuntimeError("secret internal detail arn:aws:iam::123:role/x")

    monkeypatch.setattr("bot.verbs.overview.status", explode)
    reply = testbot.reply("status prod", user=PEOPLE["oncall"])
    assert reply.outcome == "error"
    assert isinstance(reply.result, ErrorResult) and reply.result.correlation_id
    message = render_text(reply.result) + str(render_slack(reply.result))
    assert reply.result.correlation_id in message
    assert "secret internal detail" not in message and "RuntimeError" not in message
    assert testbot.core.audit.recent()[0].outcome == "error"


def test_a_database_outage_changes_nothing_and_says_so(testbot: TestBot) -> None:
    with testbot.core.db.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_head"))
    reply = testbot.reply("status prod", user=PEOPLE["oncall"])
    assert reply.outcome == "error"
    assert (
        "database is not answering" in reply.result.message and "nothing was changed" in reply.result.message
    )


def test_metrics_count_commands_by_verb_and_outcome(testbot: TestBot) -> None:
    testbot.reply("status prod", user=PEOPLE["oncall"])
    testbot.reply("status prod", user=NOBODY)
    testbot.reply("zzzz", user=NOBODY)
    testbot.reply("qqqq", user=NOBODY)
    exposition = testbot.core.metrics.exposition().decode()
    assert 'menotime_commands_total{outcome="ok",verb="status"} 1.0' in exposition
    assert 'menotime_commands_total{outcome="denied",verb="status"} 1.0' in exposition
    # unparsable words share one label value: no unbounded label cardinality
    assert 'menotime_commands_total{outcome="invalid",verb="(unknown)"} 2.0' in exposition


def test_history_never_shows_what_the_user_may_not_see(sqlite_url: str, seeded_aws, clock) -> None:
    """With a matrix where developers may not read prod's history: no prod rows, no `all` rows,
    and nobody else's env-less rows (those carry what other people typed)."""
    from bot.compose import build_core
    from bot.config import load_config
    from bot.identity import StaticGroups
    from bot.settings import Settings
    from tests.conftest import STATIC_GROUPS, TEST_ROLES

    config = load_config(overrides={**TEST_ROLES, "permissions": {"history": {"prod": ["oncall"]}}})
    core = build_core(
        Settings(database_url=sqlite_url),
        config=config,
        aws=seeded_aws,
        groups=StaticGroups(STATIC_GROUPS),
        clock=clock,
        migrate_schema=True,
    )
    seen = (
        Dispatcher(core=core)
        .handle(user_id=PEOPLE["developer"], text="history", source="test")
        .result.entries
    )
    assert {e.env for e in seen} == {"dev", "staging"}  # no prod row
    refused = Dispatcher(core=core).handle(user_id=PEOPLE["developer"], text="history prod", source="test")
    assert refused.outcome == "denied"
    core.close()


def test_status_without_an_environment_shows_those_the_user_may_see(
    sqlite_url: str, seeded_aws, clock
) -> None:
    from bot.compose import build_core
    from bot.config import load_config
    from bot.settings import Settings
    from tests.conftest import TEST_ROLES

    config = load_config(overrides={**TEST_ROLES, "permissions": {"status": {"prod": ["oncall"]}}})
    core = build_core(
        Settings(database_url=sqlite_url), config=config, aws=seeded_aws, clock=clock, migrate_schema=True
    )
    reply = Dispatcher(core=core).handle(user_id=PEOPLE["developer"], text="status", source="test")
    assert [e.env for e in reply.result.envs] == ["dev", "staging"]
    assert (
        Dispatcher(core=core).handle(user_id=PEOPLE["developer"], text="status all", source="test").outcome
        == "denied"
    )
    core.close()


def test_the_registry_is_deny_by_default_and_its_examples_parse(testbot: TestBot) -> None:
    from bot.commands import OPEN, REQUEST
    from bot.config import ACTIONS

    for verb in testbot.core.registry:
        assert (
            verb.action == OPEN
            or verb.action in ACTIONS
            or (verb.action == REQUEST and verb.resolve and set(verb.shown_for) <= set(ACTIONS))
        ), verb.name
        for example in verb.examples:
            assert (
                testbot.core.registry.parse(
                    example.removeprefix("/menotime "), environments=testbot.core.config.env_names
                ).verb
                is verb
            )
    assert {v.name for v in testbot.core.registry if v.action == OPEN} == {"help", "whoami"}


def test_a_command_on_all_is_audited_with_the_rule_of_every_environment(testbot: TestBot) -> None:
    """The audit trail says why a command on `all` was allowed: the rule of each environment, in order."""
    testbot.reply("status all", user=PEOPLE["oncall"])
    entry = testbot.core.audit.recent()[0]
    assert (entry.verb, entry.env, entry.outcome, entry.rule) == (
        "status",
        "all",
        "allowed",
        "matrix:status/dev:oncall; matrix:status/staging:oncall; matrix:status/prod:oncall",
    )
