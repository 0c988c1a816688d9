"""The command service: parse → identify → decide → audit → run → result. One path for every adapter.

Typed errors become one user sentence here and nowhere else; anything unexpected becomes a
correlation id for the user and a traceback in the log.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bot.answers import ErrorResult, Reply
from bot.commands import OPEN, REQUEST, Command
from bot.errors import AccessDenied, BadInput, BotError
from bot.policy import Decision, Identity

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.command")


@dataclass(frozen=True)
class CommandContext:
    """What an operation receives: the core's parts, who asked, and the request's id."""

    core: Core
    identity: Identity
    request_id: str
    # The environments this command may touch: the one named, all of them for `all`, or (none
    # named) every one the user may use this verb on. Operations read only these.
    envs: tuple[str, ...]

    @property
    def user_id(self) -> str:
        return self.identity.user_id


def new_request_id() -> str:
    return uuid.uuid4().hex[:12]


class Dispatcher:
    def __init__(self, *, core: Core) -> None:
        self._core = core

    def handle(
        self, *, user_id: str, text: str, source: str, request_id: str | None = None, actor: str | None = None
    ) -> Reply:
        """The answer to ``text`` typed by ``user_id``. Never raises. ``actor`` is who the audit trail
        names (default: the user; the console says who typed as that user)."""
        request_id = request_id or new_request_id()
        started = time.perf_counter()
        at = self._core.clock.now()
        bound = log.bind(request_id=request_id, user=user_id, source=source)
        try:
            return self._handle(user_id, text, source, request_id, started, at, bound, actor or user_id)
        except SQLAlchemyError:
            # The audit record could not be written, so nothing ran: audit comes before action.
            bound.exception("store_unavailable")
            message = (
                f"The bot's database is not answering (reference `{request_id}`); nothing was changed. "
                "Try again in a minute."
            )
            return self._finish(
                bound,
                started,
                Reply(
                    ErrorResult("store_unavailable", message, request_id),
                    _first_word(text),
                    None,
                    "error",
                    at,
                ),
            )

    def _handle(
        self,
        user_id: str,
        text: str,
        source: str,
        request_id: str,
        started: float,
        at: Any,
        bound: Any,
        actor: str,
    ) -> Reply:
        core = self._core
        try:
            command = core.registry.parse(text, environments=core.config.env_names)
        except BadInput as exc:
            verb = _first_word(text)
            self._audit(
                actor, source, verb, None, {"text": text[:200]}, "parse", "invalid", exc.message, request_id
            )
            return self._finish(
                bound, started, Reply(ErrorResult(exc.kind, exc.message), verb, None, "invalid", at)
            )

        verb, env = command.verb.name, command.env
        args = {**command.args, **{f"--{k}": v for k, v in command.flags.items()}}
        identity = core.roles.identity(user_id)
        try:
            action, env = self._target(command)
        except BotError as exc:  # a request id that names nothing
            self._audit(actor, source, verb, None, args, "request", "invalid", exc.message, request_id)
            return self._finish(
                bound, started, Reply(ErrorResult(exc.kind, exc.message), verb, None, "invalid", at)
            )
        decision, envs = self._decide(identity, command, action, env)
        if not decision.allowed:
            message = decision.explain(verb=verb, env=env, identity=identity)
            self._audit(actor, source, verb, env, args, decision.rule, "denied", message, request_id)
            return self._finish(
                bound, started, Reply(ErrorResult(AccessDenied.kind, message), verb, env, "denied", at)
            )

        self._audit(actor, source, verb, env, args, decision.rule, "allowed", None, request_id)
        context = CommandContext(core=core, identity=identity, request_id=request_id, envs=envs)
        try:
            run = command.verb.run
            if run is None:  # a verb declared without its operation: a bug, answered as one below
                raise TypeError(f"verb {verb!r} has no operation")
            result = run(context, command)
        except BotError as exc:
            self._audit(actor, source, verb, env, args, decision.rule, "failed", exc.message, request_id)
            return self._finish(
                bound, started, Reply(ErrorResult(exc.kind, exc.message), verb, env, "failed", at)
            )
        except Exception:  # noqa: BLE001 - the one place where the unexpected is caught
            bound.exception("command_crashed", verb=verb, env=env)
            message = (
                f"Something went wrong on our side (reference `{request_id}`); nothing more was done. "
                "Quote the reference to the MenoTime Ops maintainers."
            )
            self._audit(
                actor,
                source,
                verb,
                env,
                args,
                decision.rule,
                "error",
                f"internal error {request_id}",
                request_id,
            )
            return self._finish(
                bound, started, Reply(ErrorResult("internal", message, request_id), verb, env, "error", at)
            )
        return self._finish(bound, started, Reply(result, verb, env, "ok", at))

    def _target(self, command: Command) -> tuple[str, str | None]:
        """The policy action and environment: the verb's, or those of the request it acts on."""
        if command.verb.action == REQUEST:
            resolve = command.verb.resolve
            if resolve is None:  # a request verb declared without it: a bug
                raise TypeError(f"request verb {command.verb.name!r} has no resolve")
            return resolve(self._core, command)
        return command.verb.action, command.env

    def _decide(
        self, identity: Identity, command: Command, action: str, env: str | None
    ) -> tuple[Decision, tuple[str, ...]]:
        """The decision, and the environments the command may touch.

        A named environment is decided alone; `all` needs every environment to be allowed (the
        first refusal decides); no environment means every one this user may use the verb on."""
        policy = self._core.policy
        every = self._core.config.env_names
        if env == "all":
            rules: list[str] = []
            for name in every:
                decision = policy.decide(identity, action, name)
                if not decision.allowed:
                    return decision, ()
                rules.append(decision.rule)
            return Decision(True, "; ".join(dict.fromkeys(rules))[:200]), every
        if env is not None:
            glass = command.verb.break_glass
            if glass and command.flags.get(glass):
                # Break-glass is its own permission (on-call's), whatever else the user may do.
                return policy.decide(identity, "emergency", env), (env,)
            return policy.decide(identity, action, env), (env,)
        decision = policy.decide(identity, action, None)
        return decision, (every if action == OPEN else policy.permitted_envs(identity, action))

    def _audit(
        self,
        actor: str,
        source: str,
        verb: str,
        env: str | None,
        args: dict[str, Any],
        rule: str,
        outcome: str,
        detail: str | None,
        request_id: str,
    ) -> None:
        self._core.audit.append(
            at=self._core.clock.now(),
            actor=actor,
            source=source,
            verb=verb,
            env=env,
            args=args,
            rule=rule,
            outcome=outcome,
            detail=detail,
            request_id=request_id,
        )

    def _finish(self, bound: Any, started: float, reply: Reply) -> Reply:
        elapsed = time.perf_counter() - started
        metrics = self._core.metrics
        # Unparsable input must not mint new label values: one series for all of it.
        label = reply.verb if reply.verb in self._core.registry else "(unknown)"
        metrics.commands.labels(verb=label, outcome=reply.outcome).inc()
        metrics.command_seconds.labels(verb=label).observe(elapsed)
        bound.info(
            "command",
            verb=reply.verb,
            env=reply.env,
            outcome=reply.outcome,
            latency_ms=round(elapsed * 1000, 1),
        )
        return reply


def _first_word(text: str) -> str:
    """The attempted verb, for the audit and metrics of an unparsable line (bounded, label-safe)."""
    word = (text or "").strip().split(maxsplit=1)[0:1]
    candidate = word[0].lower() if word else "help"
    return candidate[:30] if candidate.isascii() and candidate.isalpha() else "(invalid)"
