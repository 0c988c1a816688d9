"""Every result renders to valid Block Kit within Slack's limits, and to console text, whatever
strings it carries (quotes, newlines, Slack control sequences)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.answers import (
    ChangeEntry,
    EnvPermissions,
    ErrorResult,
    HelpResult,
    HistoryResult,
    VerbHelp,
    WhoamiResult,
)
from bot.render import render_slack, render_text, when
from tests.blockkit import assert_valid_message

HOSTILE = 'quote " backslash \\ newline \n <!channel> <@U0OTHER> & {{ jinja }} `tick` *bold*'
AT = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def _change(seq: int, detail: str) -> ChangeEntry:
    """A change as history shows it, with hostile text wherever AWS or a person could put some."""
    return ChangeEntry(
        at=AT,
        env="prod",
        kind="deploy",
        what=f"`{detail[:200]}` (rev {seq})",
        user=None if seq % 2 else "U0ONCALL1",
        actor=detail[:100] if seq % 2 else None,
        outcome="failed",
        detail=detail,
    )


RESULTS = [
    ErrorResult("bad_input", HOSTILE),
    ErrorResult("internal", "Something went wrong (reference `abc123`)", "abc123"),
    HelpResult(
        verbs=(VerbHelp("status", "status [env|all]", HOSTILE, ("prod",)),), detail=None, has_role=False
    ),
    HelpResult(
        verbs=(),
        detail=VerbHelp(
            "status",
            "status [env|all]",
            HOSTILE,
            ("dev", "prod"),
            args=(("env|all", HOSTILE),),
            flags=(("--plan", HOSTILE),),
            examples=("/menotime status prod",),
        ),
        has_role=True,
    ),
    WhoamiResult(user_id="U0DEV", roles=(), per_env=(EnvPermissions("prod", ()),)),
    WhoamiResult(
        user_id="U0DEV", roles=("developer", "oncall"), per_env=(EnvPermissions("dev", ("status",)),)
    ),
    HistoryResult(entries=(), env=None, limit=10),
    HistoryResult(entries=tuple(_change(i, HOSTILE * 20) for i in range(50, 0, -1)), env="prod", limit=50),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: type(r).__name__)
def test_renders_valid_block_kit_and_text(result: object) -> None:
    message = render_slack(result)
    assert_valid_message(message)
    json.dumps(message)
    assert render_text(result).strip()


def test_slack_control_sequences_are_escaped() -> None:
    message = render_slack(ErrorResult("bad_input", "<!channel> please"))
    assert "<!channel>" not in json.dumps(message)


def test_times_are_shown_in_pacific_and_utc() -> None:
    assert when(datetime(2026, 7, 1, 16, 30, tzinfo=UTC)) == "2026-07-01 09:30 PDT (16:30 UTC)"
    assert when(datetime(2026, 12, 1, 17, 30, tzinfo=UTC)) == "2026-12-01 09:30 PST (17:30 UTC)"


def test_only_the_people_and_links_the_bot_typed_stay_live() -> None:
    from bot.render import mrkdwn_escape, plain
    from bot.rich import Link, Mention, Rich

    # A string has no typed mentions: whatever it holds, Slack shows it as text.
    assert mrkdwn_escape("locked by <@U0ONCALL1> <!here> <https://evil|click> a&b") == (
        "locked by &lt;@U0ONCALL1&gt; &lt;!here&gt; &lt;https://evil|click&gt; a&amp;b"
    )
    typed = Rich("locked by ", Mention("U0ONCALL1"), " <!here> <https://evil|click> a&b")
    assert mrkdwn_escape(typed) == "locked by <@U0ONCALL1> &lt;!here&gt; &lt;https://evil|click&gt; a&amp;b"
    assert plain(typed) == "locked by @U0ONCALL1 <!here> <https://evil|click> a&b"
    link = Rich("see the ", Link("https://slack.com/archives/C0ALERTS/p1764007200000001", "thread"))
    assert mrkdwn_escape(link) == "see the <https://slack.com/archives/C0ALERTS/p1764007200000001|thread>"
    assert plain(link) == "see the thread (https://slack.com/archives/C0ALERTS/p1764007200000001)"
    # Joined with + (not an f-string), a sentence keeps its people.
    assert mrkdwn_escape("by " + Rich(Mention("U0DEV")) + " <!channel>") == "by <@U0DEV> &lt;!channel&gt;"


@pytest.mark.parametrize(
    ("who", "shown"),
    [
        ("U0ONCALL1", "<@U0ONCALL1>"),
        ("scheduler", "scheduler"),
        ("console:alice as U0ONCALL1", "console:alice as U0ONCALL1"),
        ("cli:<!channel>", "cli:&lt;!channel&gt;"),
    ],
)
def test_an_actor_is_a_mention_only_when_it_is_a_slack_user(who: str, shown: str) -> None:
    from bot.render import actor, mrkdwn_escape

    assert mrkdwn_escape(actor(who)) == shown


def test_as_written_undoes_inert_exactly() -> None:
    from bot.render import as_written, inert

    name = "menotime-prod-<@U1>-<!here>-a<b"
    assert inert(name) != name and as_written(inert(name)) == name


def test_every_button_kind_runs_the_line_it_shows_and_refuses_a_forged_value() -> None:
    from bot.buttons import BUTTONS, ROLLBACK_TO

    for kind in BUTTONS.values():
        value = "prod:7" if kind is ROLLBACK_TO else "REQ-7K3M9Q"
        button = kind.button("Do it", value)
        assert button.action_id == kind.action_id and kind.clicked(button.value) == button.command
        # A value the bot never sends (Slack only echoes it back, but it is still input).
        assert kind.clicked("prod; scale prod 4") == f"{kind.command.split()[0]} (invalid)"
    assert ROLLBACK_TO.clicked("prod:7") == "rollback prod 7"
    with pytest.raises(ValueError):
        ROLLBACK_TO.button("Roll back", "prod")
