"""The SNS inbox into alarm threads: ``process_inbox`` takes the stored messages oldest first,
parses and routes each one, and records it (bot/alarms/threads.py).

Nothing is lost: an inbox row is marked processed only after its message is posted. When posting
fails (the notifier answers None or raises) the row stays pending and the run stops there, so a
later run retries it, and the messages after it keep their order.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError

from bot import watch
from bot.alarms.posting import PostFailed, _post, _safe
from bot.alarms.threads import record_event
from bot.answers import ChangeResult
from bot.events import Event, parse_message, route
from bot.store.db import stored_utc
from bot.store.inbox import Inbox

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.alarms")


def process_inbox(*, core: Core, limit: int = 100) -> int:
    """Posts the pending inbox messages, oldest first; the number processed (marked) this run."""
    inbox = Inbox(core.db)
    done = 0
    while done < limit:
        current: tuple[int, str, str] | None = None
        try:
            # One transaction per message: the thread row, the messages queued in the outbox and the
            # inbox mark commit together, so a crash in between cannot post a message twice.
            with core.db.transaction():
                row = inbox.claim_next()
                if row is None:
                    break
                current = (row.id, row.message_id, row.topic_arn)
                subject, message = _envelope(row.body, row.subject)
                event = parse_message(subject, message)
                env, channel = route(event, core.config, topic_arn=row.topic_arn)
                outcome = record_event(
                    core,
                    event,
                    env,
                    channel,
                    origin_at=stored_utc(row.sns_timestamp),
                    notification={"subject": subject, "message": message},
                )
                inbox.mark(id=row.id, outcome=outcome, processed_at=core.clock.now())
            if event.kind == "ecs_deployment" and env in core.config.environments:
                # Someone deployed (CI/CD, the console, the bot): record it from ECS, after the commit.
                def observe(env: str = env, event: Event = event) -> None:
                    watch.deployment_event(core, core.config.env(env), event)

                _safe(core, observe)
        except PostFailed as exc:
            log.warning("alarm_post_failed", key=event.key, channel=channel, error=str(exc))
            break  # later messages wait too: they may belong to the same thread, and order matters
        except (OperationalError, InterfaceError):
            raise  # the database itself: nothing was recorded; the worker tries again later
        except Exception as exc:
            if current is None:
                raise
            _set_aside(core, inbox, *current, error=exc)
        done += 1
    return done


def _set_aside(
    core: Core, inbox: Inbox, row_id: int, message_id: str, topic_arn: str, *, error: Exception
) -> None:
    """A message that cannot be processed is marked failed (kept in the inbox for a person to look
    at) and said so in the default alerts channel, so the messages behind it go on."""
    log.error(
        "alarm_processing_failed",
        inbox_id=row_id,
        message_id=message_id,
        error=type(error).__name__,
        exc_info=error,
    )
    with core.db.transaction():
        if inbox.mark(id=row_id, outcome="failed", processed_at=core.clock.now()):
            _post(
                core,
                channel=core.config.channels.default_alerts,
                result=ChangeResult(
                    headline=f"An AWS notification could not be turned into a thread ({type(error).__name__}); "
                    "it is kept in the inbox",
                    emoji=":warning:",
                    facts=(("MessageId", message_id[:100]), ("Topic", topic_arn[:256])),
                ),
            )


def _envelope(body: str, subject: str | None) -> tuple[str | None, str]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return subject, body
    if not isinstance(data, dict):
        return subject, body
    message = data.get("Message")
    return (
        data.get("Subject") if data.get("Subject") is not None else subject,
        message if isinstance(message, str) else json.dumps(message),
    )
