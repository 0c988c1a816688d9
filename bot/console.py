"""The console: `/menotime` lines typed at a terminal, answered with the same core as Slack."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.answers import Reply
from bot.core import Core
from bot.dispatch import Dispatcher
from bot.render import render_text

PREFIX = "/menotime"


class Console:
    def __init__(
        self, core: Core, *, user_id: str, out: TextIO | None = None, operator: str | None = None
    ) -> None:
        """``operator``: who sits at the terminal (the OS user); the audit trail then names every
        line ``console:<operator> as <Slack user>``, not the Slack user alone."""
        self.core = core
        self.user_id = user_id
        self.out = out or sys.stdout
        self.operator = operator

    def run(self, line: str, *, user_id: str | None = None, echo: bool = True) -> str:
        """Answer one line as ``user_id`` (default: the console's user); returns the text shown."""
        return render_text(self.handle(line, user_id=user_id, echo=echo).result)

    def handle(self, line: str, *, user_id: str | None = None, echo: bool = True) -> Reply:
        """Like :meth:`run`, returning the reply itself (the demo reads the buttons it offers)."""
        user = user_id or self.user_id
        text = line.strip()
        if text.lower().startswith(PREFIX):
            text = text[len(PREFIX) :].strip()
        if echo:
            self.out.write(f"[{user}] {PREFIX} {text}\n")
            self.out.flush()
        actor = f"console:{self.operator} as {user}" if self.operator else None
        reply = Dispatcher(core=self.core).handle(user_id=user, text=text, source="console", actor=actor)
        if echo:
            self.out.write(f"{_indent(render_text(reply.result))}\n")
            self.out.flush()
        return reply

    def interact(self, stdin: TextIO | None = None) -> None:
        """A prompt until EOF or `:quit`. `:as U…` changes who you are."""
        stdin = stdin or sys.stdin
        self.out.write(
            "Type /menotime commands (the prefix is optional). `:as <SlackUserID>` to switch user, "
            "`:quit` to leave.\n"
        )
        while True:
            self.out.write(f"{self.user_id}> ")
            self.out.flush()
            line = stdin.readline()
            if not line or line.strip() in (":quit", ":q", "exit", "quit"):
                self.out.write("\n")
                return
            if line.startswith(":as "):
                self.user_id = line[4:].strip() or self.user_id
                continue
            if line.strip():
                self.out.write(_indent(self.run(line, echo=False)) + "\n")


def _indent(text: str) -> str:
    return "\n".join(("  " + line) if line else line for line in text.rstrip("\n").split("\n"))
