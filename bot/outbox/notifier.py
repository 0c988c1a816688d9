"""``OutboxNotifier`` is the :class:`~bot.notify.Notifier` the bot uses when it talks to Slack. It
renders the message at once (what is sent is what was decided) and queues it in the caller's
transaction when there is one (an alarm's thread row and its message commit together). Slack has
not answered yet, so the reference it hands back names the queued row (``outbox:<id>``); later
replies and edits that name it are resolved to Slack's ``ts`` when they are sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.notify import MessageRef
from bot.outbox.queue import Outbox, placeholder
from bot.render import Renderable, render_slack, render_text


class OutboxNotifier:
    """A Notifier that queues instead of sending (see the module docstring)."""

    def __init__(self, outbox: Outbox, *, on_enqueue: Any = None) -> None:
        self._outbox = outbox
        self.on_enqueue = on_enqueue  # wakes the sender

    def post(
        self,
        *,
        channel: str,
        result: Renderable,
        thread: MessageRef | None = None,
        origin_at: datetime | None = None,
    ) -> MessageRef | None:
        row_id = self._outbox.enqueue(
            op="post", channel=channel, payload=_payload(result), parent=thread, origin_at=origin_at
        )
        self._poke()
        return MessageRef(channel, placeholder(row_id))

    def update(self, *, ref: MessageRef, result: Renderable) -> None:
        self._outbox.enqueue(op="update", channel=ref.channel, payload=_payload(result), target=ref)
        self._poke()

    def upload(self, *, ref: MessageRef, filename: str, content: bytes, title: str) -> None:
        import base64

        self._outbox.enqueue(
            op="upload",
            channel=ref.channel,
            target=ref,
            payload={"filename": filename, "title": title, "content_b64": base64.b64encode(content).decode()},
        )
        self._poke()

    def resolve(self, ref: MessageRef) -> MessageRef | None:
        return self._outbox.resolve(ref)

    def _poke(self) -> None:
        # Inside the caller's transaction the row is not visible to the sender until the commit:
        # waking it earlier would find nothing and leave the message for its next idle round.
        if self.on_enqueue is not None:
            self._outbox.after_commit(self.on_enqueue)


def _payload(result: Renderable) -> dict[str, Any]:
    message = render_slack(result)
    return {"text": message["text"], "blocks": message["blocks"], "console": render_text(result)}
