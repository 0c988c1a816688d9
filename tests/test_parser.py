"""The /menotime grammar: what parses, what is refused, and that nothing else can escape."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import BadInput
from bot.verbs import build_registry

ENVS = ("dev", "staging", "prod")
REGISTRY = build_registry()


def parse(text: str):
    return REGISTRY.parse(text, environments=ENVS)


@pytest.mark.parametrize(
    ("text", "verb", "args"),
    [
        ("", "help", {}),
        ("help", "help", {}),
        ("help status", "help", {"verb": "status"}),
        ("status prod", "status", {"env": "prod"}),
        ("STATUS Prod", "status", {"env": "prod"}),
        ("status", "status", {}),
        ("status all", "status", {"env": "all"}),
        ("  status   staging  ", "status", {"env": "staging"}),
        ("whoami", "whoami", {}),
        ("history", "history", {}),
        ("history prod", "history", {"env": "prod"}),
        ("history 5", "history", {"n": 5}),
        ("history dev 20", "history", {"env": "dev", "n": 20}),
    ],
)
def test_valid_commands(text: str, verb: str, args: dict) -> None:
    command = parse(text)
    assert command.verb.name == verb
    assert dict(command.args) == args


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stauts prod", "Did you mean `status`?"),
        ("hlep", "Did you mean `help`?"),
        ("frobnicate", "Type `/menotime help`"),
        ("status prd", "Did you mean `prod`?"),
        ("status qa", "Choose `dev`, `staging`, `prod` or `all`"),
        ("status prod extra", "takes at most 1"),
        ("whoami now", "takes no arguments"),
        ("history prod many", "must be a whole number"),
        ("history prod 0", "between 1 and 50"),
        ("history prod 51", "between 1 and 50"),
        ("history prod 99999999999999999999999", "between 1 and 50"),
        ("status prod --force", "Unknown flag `--force`"),
        ('status "prod', "check your quotes"),
        ("status " + "x" * 2000, "keep it under"),
    ],
)
def test_invalid_commands_say_what_to_type(text: str, expected: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse(text)
    assert expected in caught.value.message
    assert "\n" not in caught.value.message  # one sentence-line for the user


def test_help_usage_is_derived_from_the_declaration() -> None:
    assert REGISTRY.get("status").usage == "status [env|all]"
    assert REGISTRY.get("history").usage == "history [env] [n]"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_no_input_raises_anything_but_bad_input(text: str) -> None:
    try:
        command = parse(text)
    except BadInput as exc:
        assert exc.message
    else:
        assert command.verb.name in REGISTRY


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "status",
                "history",
                "help",
                "whoami",
                "prod",
                "dev",
                "all",
                "5",
                "--plan",
                "--reason",
                "x",
                '"',
                "'",
                "--",
                "-1",
                "０",
            ]
        ),
        max_size=6,
    )
)
def test_token_soup_raises_only_bad_input(tokens: list[str]) -> None:
    with contextlib.suppress(BadInput):
        parse(" ".join(tokens))
