"""Alarms into Slack threads (DESIGN §6, step 4): one thread per alarm, the root edited in place.

``process_inbox`` takes the stored SNS messages oldest first, parses and routes each one, and
records it: the first notification for a key posts the root message (state, reason, metric,
threshold, time in PT and UTC, region, console link, *Acknowledge*); each later state change is a
short reply in the thread ("OK — resolved after 17 min") and an edit of the root to the current
state; a repeat of the same state only refreshes the root. Generic events (anything the parser
cannot read) each get a message of their own.

The package: ``inbox`` (the inbox into threads, and why nothing is lost), ``threads`` (a
notification's new thread, reply or refresh), ``storms`` (many alarms at once grouped under one
message), ``messages`` (what the root and replies say), ``followups`` (acknowledge, snooze,
reminders), ``lookup`` (thread keys, finding threads), ``posting`` (how messages reach Slack),
``listing`` (what `/menotime alarms` lists). The threads' rows are read and written by
bot/store/alarm_threads.py.
"""

from bot.alarms.followups import acknowledge, redraw_root, remind_due, snooze
from bot.alarms.inbox import process_inbox
from bot.alarms.lookup import open_alarms, posted_ref, short_id, thread_by_short_id, thread_for
from bot.alarms.messages import (
    GENERIC_EMOJI,
    STATE_EMOJI,
    reply_message,
    root_message,
    state_emoji,
)
from bot.alarms.posting import POSTED, REFRESHED, STALE, THREADED, PostFailed
from bot.alarms.storms import storm_message
from bot.alarms.threads import record_event
from bot.store.alarm_threads import STORM_KIND, AlarmThreadView

__all__ = [
    "GENERIC_EMOJI",
    "POSTED",
    "REFRESHED",
    "STALE",
    "STATE_EMOJI",
    "STORM_KIND",
    "THREADED",
    "AlarmThreadView",
    "PostFailed",
    "acknowledge",
    "open_alarms",
    "posted_ref",
    "process_inbox",
    "record_event",
    "redraw_root",
    "remind_due",
    "reply_message",
    "root_message",
    "short_id",
    "snooze",
    "state_emoji",
    "storm_message",
    "thread_by_short_id",
    "thread_for",
]
