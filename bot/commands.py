"""The `/menotime` grammar: verbs declared once, and the parser, usage and help derived from them.

A verb declares its arguments, flags, help text and the policy action it needs. The parser turns a
line into a :class:`Command` or raises :class:`BadInput` with one sentence saying what to type
instead; it never raises anything else.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.errors import BadInput
from bot.render import Renderable, inert

MAX_COMMAND_LENGTH = 1000

ArgKind = Literal["env", "env_or_all", "int", "word", "text"]


@dataclass(frozen=True)
class Arg:
    name: str
    kind: ArgKind
    help: str
    required: bool = True
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Flag:
    name: str
    help: str
    takes_value: bool = False


OPEN = (
    "open"  # the action of verbs anyone may use, role or not (help, whoami): said explicitly, never implied
)
# The action of verbs that act on a pending request (confirm, approve, …): decided against the
# request's own action and environment, which the verb's `resolve` looks up.
REQUEST = "request"


@dataclass(frozen=True)
class Verb:
    name: str
    summary: str
    # The policy action this verb needs (a key of the permission matrix), or OPEN. Required, so a
    # new verb cannot be open to everyone by forgetting to say what it needs.
    action: str
    args: tuple[Arg, ...] = ()
    flags: tuple[Flag, ...] = ()
    examples: tuple[str, ...] = ()
    # For REQUEST verbs: (core, command) -> (policy action, environment) of the request named.
    resolve: Callable[[Any, Command], tuple[str, str | None]] | None = field(
        default=None, compare=False, repr=False
    )
    # For REQUEST verbs: help and whoami show them to whoever may do one of these actions.
    shown_for: tuple[str, ...] = ()
    # A flag that, when given, lets the `emergency` permission stand in for the verb's own.
    break_glass: str | None = None
    # The operation: (context, command) -> result. Kept as an opaque callable so this module
    # stays free of the operations it routes to.
    run: Callable[..., Renderable] | None = field(default=None, compare=False, repr=False)
    # The IAM actions the verb may call (bot.iam); a job it runs declares its own.
    iam_actions: tuple[str, ...] = ()

    @property
    def usage(self) -> str:
        parts = [self.name]
        for arg in self.args:
            shown = "env|all" if arg.kind == "env_or_all" else arg.name
            parts.append(f"<{shown}>" if arg.required else f"[{shown}]")
        parts.extend(f"[--{f.name}{' …' if f.takes_value else ''}]" for f in self.flags)
        return " ".join(parts)

    @property
    def policy_actions(self) -> tuple[str, ...]:
        """The matrix actions that make this verb usable (for help and whoami)."""
        return self.shown_for if self.action == REQUEST else (self.action,)

    @property
    def env_arg(self) -> Arg | None:
        return next((a for a in self.args if a.kind in ("env", "env_or_all")), None)


@dataclass(frozen=True)
class Command:
    verb: Verb
    args: Mapping[str, Any]
    flags: Mapping[str, Any]
    text: str

    @property
    def env(self) -> str | None:
        """The environment named (``"all"`` for env-or-all verbs), or None."""
        arg = self.verb.env_arg
        return self.args.get(arg.name) if arg else None


class Registry:
    """The verbs, by name, in declaration order (that order is the help order)."""

    def __init__(self, verbs: Iterable[Verb]) -> None:
        self._verbs: dict[str, Verb] = {}
        for verb in verbs:
            if verb.name in self._verbs:
                raise ValueError(f"verb {verb.name!r} declared twice")
            self._verbs[verb.name] = verb

    def __iter__(self) -> Iterator[Verb]:
        return iter(self._verbs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._verbs

    def get(self, name: str) -> Verb | None:
        return self._verbs.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._verbs)

    def parse(self, text: str, *, environments: Iterable[str]) -> Command:
        return parse(text, registry=self, environments=tuple(environments))


def _nearest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _one_of(choices: Iterable[str]) -> str:
    items = [f"`{c}`" for c in choices]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise BadInput(f"I could not read that command ({exc}); check your quotes.") from None


def parse(text: str, *, registry: Registry, environments: tuple[str, ...]) -> Command:
    """Parse the text after `/menotime`. An empty line asks for help."""
    if not isinstance(text, str):
        raise BadInput("The command must be text.")
    if len(text) > MAX_COMMAND_LENGTH:
        raise BadInput(f"That command is {len(text)} characters long; keep it under {MAX_COMMAND_LENGTH}.")
    if "\x00" in text:
        raise BadInput("That command contains a NUL character; type it again without it.")
    text = inert(text)  # reasons and notes are quoted back in the bot's messages: never a live mention
    tokens = _tokens(text.strip())
    if not tokens:
        tokens = ["help"]
    word, rest = tokens[0], tokens[1:]
    verb = registry.get(word.lower())
    if verb is None:
        hint = _nearest(word, registry.names)
        shown = word if len(word) <= 40 else word[:40] + "…"
        suggestion = f" Did you mean `{hint}`?" if hint else ""
        raise BadInput(
            f"`{shown}` is not a command.{suggestion} Type `/menotime help` to see what you can do."
        )

    positionals, flags = _split_flags(verb, rest)
    return Command(verb=verb, args=_bind(verb, positionals, environments), flags=flags, text=text.strip())


def _split_flags(verb: Verb, tokens: list[str]) -> tuple[list[str], dict[str, Any]]:
    by_name = {f.name: f for f in verb.flags}
    positionals: list[str] = []
    flags: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--") or token == "--":
            positionals.append(token)
            continue
        name, eq, value = token[2:].partition("=")
        flag = by_name.get(name.lower())
        if flag is None:
            valid = (
                f" `{verb.name}` takes {_one_of('--' + f for f in by_name)}."
                if by_name
                else (f" `{verb.name}` takes no flags.")
            )
            raise BadInput(f"Unknown flag `--{name[:30]}`.{valid} Usage: `/menotime {verb.usage}`")
        if flag.name in flags:
            raise BadInput(f"`--{flag.name}` is given twice; give it once.")
        if flag.takes_value:
            if not eq:
                if i >= len(tokens) or tokens[i].startswith("--"):
                    raise BadInput(f'`--{flag.name}` needs a value, like `--{flag.name} "why"`.')
                value = tokens[i]
                i += 1
            if not value.strip():
                raise BadInput(f"`--{flag.name}` needs a non-empty value.")
            flags[flag.name] = value
        else:
            if eq:
                raise BadInput(f"`--{flag.name}` takes no value; write just `--{flag.name}`.")
            flags[flag.name] = True
    return positionals, flags


def _bind(verb: Verb, positionals: list[str], environments: tuple[str, ...]) -> dict[str, Any]:
    usage = f"Usage: `/menotime {verb.usage}`"
    if len(positionals) > len(verb.args):
        if verb.args and verb.args[-1].kind == "text":
            head = positionals[: len(verb.args) - 1]
            positionals = [*head, " ".join(positionals[len(verb.args) - 1 :])]
        else:
            extra = " ".join(positionals[len(verb.args) :])
            most = "no arguments" if not verb.args else f"at most {len(verb.args)}"
            raise BadInput(
                f"`{verb.name}` takes {most}; I don't know what to do with `{extra[:40]}`. {usage}"
            )
    bound: dict[str, Any] = {}
    pending = list(positionals)
    for index, arg in enumerate(verb.args):
        if not pending:
            if arg.required:
                raise BadInput(f"`{verb.name}` needs {_describe(arg, environments)}. {usage}")
            continue
        is_env = arg.kind in ("env", "env_or_all")
        later = verb.args[index + 1 :]
        # `history 5`: an optional environment left out, the word belongs to what follows.
        if (
            is_env
            and not arg.required
            and later
            and pending[0].lower() not in (*environments, "all")
            and len(pending) < len(verb.args) - index
            and _fits(later[0], pending[0])
        ):
            continue
        bound[arg.name] = _convert(arg, pending.pop(0), environments, usage)
    return bound


def _fits(arg: Arg, raw: str) -> bool:
    return raw.lstrip("-").isdigit() if arg.kind == "int" else arg.kind in ("word", "text")


def _describe(arg: Arg, environments: tuple[str, ...]) -> str:
    if arg.kind == "env":
        return f"an environment ({_one_of(environments)})"
    if arg.kind == "env_or_all":
        return f"an environment ({_one_of((*environments, 'all'))})"
    return f"<{arg.name}> ({arg.help})"


def _convert(arg: Arg, raw: str, environments: tuple[str, ...], usage: str) -> Any:
    if arg.kind in ("env", "env_or_all"):
        choices = environments + (("all",) if arg.kind == "env_or_all" else ())
        value = raw.lower()
        if value in choices:
            return value
        hint = _nearest(value, choices)
        suggestion = f"Did you mean `{hint}`? " if hint else ""
        raise BadInput(f"`{raw[:40]}` is not an environment. {suggestion}Choose {_one_of(choices)}.")
    if arg.kind == "int":
        try:
            number = int(raw, 10)
        except ValueError:
            raise BadInput(f"<{arg.name}> must be a whole number, not `{raw[:40]}`. {usage}") from None
        low, high = arg.minimum, arg.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            raise BadInput(f"<{arg.name}> must be between {low} and {high}; `{number}` is not. {usage}")
        return number
    return raw
