"""Cost: Cost Explorer (cached), budgets, the monthly report, the weekly digest, the chart.

The scheduled jobs (``jobs/cost.py``) and the `/menotime cost` verb both build on
:func:`bot.cost.reports.cost_report` and :func:`bot.cost.reports.cost_digest`.
"""
