"""The monthly report's and the weekly digest's figures, from Cost Explorer lines and the budgets.

Pure arithmetic over :class:`bot.cost.explorer.Usage`: what Cost Explorer could not give is listed
in ``missing`` and never shown as a zero.
"""

from bot.cost.figures.monthly import CHART_MONTHS, monthly_report, report_window
from bot.cost.figures.scope import Scope, add_months, first_of_month, label_of
from bot.cost.figures.weekly import WEEK, Forecaster, digest_window, weekly_digest

__all__ = [
    "CHART_MONTHS",
    "WEEK",
    "Forecaster",
    "Scope",
    "add_months",
    "digest_window",
    "first_of_month",
    "label_of",
    "monthly_report",
    "report_window",
    "weekly_digest",
]
