"""Every `/menotime` verb, declared once (bot/verbs/registry.py), and what each runs: the overview
(help, whoami, status, history, cost), the alarm verbs, the change verbs and `jobs`.

`help`, `whoami`, the parser and the permission check all read these declarations.
"""

from bot.verbs.registry import build_registry

__all__ = ["build_registry"]
