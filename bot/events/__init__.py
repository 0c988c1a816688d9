"""Parse SNS messages into events and route them to a channel (DESIGN §6, steps 2 and 3).

Pure functions, no I/O. ``parse_message`` never raises and never drops a message: anything it
cannot read as a CloudWatch alarm, an EventBridge event (ECS, RDS, GuardDuty, AWS Health) or an RDS
event-subscription notification becomes a ``generic`` event that keeps the text as AWS sent it.

``bot.events.parse`` reads the message, with one module per family of AWS message
(``cloudwatch``, ``eventbridge``, ``rds``) and ``aws_fields`` for the values they share;
``bot.events.routing`` picks the channel.
"""

from bot.events.event import ALARM_STATES, KINDS, TEXT_LIMIT, Event, Metric
from bot.events.eventbridge import severity_band
from bot.events.parse import parse_message
from bot.events.routing import route

__all__ = [
    "ALARM_STATES",
    "KINDS",
    "TEXT_LIMIT",
    "Event",
    "Metric",
    "parse_message",
    "route",
    "severity_band",
]
