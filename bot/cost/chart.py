"""The monthly report's chart: six months of cost stacked by environment, with the budget lines.

matplotlib with the Agg backend (no display), through its object API so nothing global (pyplot's
current figure) is shared between threads.
"""

from __future__ import annotations

import io

from bot.cost.results import UNTAGGED, ChartData

_PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974")
_UNTAGGED_COLOUR = "#BBBBBB"


def render_chart(chart: ChartData, *, dpi: int = 100) -> bytes:
    """A PNG of ``chart``; a chart without data still renders (an empty frame that says so)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5.5), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    positions = list(range(len(chart.months)))
    colours: dict[str, str] = {}
    bottom = [0.0] * len(chart.months)
    for index, (label, amounts) in enumerate(chart.series):
        colour = _UNTAGGED_COLOUR if label == UNTAGGED else _PALETTE[index % len(_PALETTE)]
        colours[label] = colour
        axes.bar(positions, amounts, bottom=bottom, color=colour, label=label.replace("$", r"\$"), width=0.6)
        bottom = [b + a for b, a in zip(bottom, amounts, strict=True)]
    # Budget lines stacked in the same order as the bars: each environment's segment should end
    # at or below its own line, and the last line is the total budget.
    budgets = dict(chart.budgets)
    stacked = 0.0
    for label, _amounts in chart.series:
        if label not in budgets:
            continue
        stacked += budgets[label]
        axes.axhline(
            stacked,
            color=colours[label],
            linestyle="--",
            linewidth=1.2,
            label=rf"{label} budget \${budgets[label]:,.0f} (stacked: \${stacked:,.0f})",
        )
    top = max([stacked, *bottom, 1.0])
    axes.set_ylim(0, top * 1.12)
    if not chart.has_data:
        axes.text(
            0.5, 0.5, "no cost data", transform=axes.transAxes, ha="center", va="center", color="#666666"
        )
    axes.set_xticks(positions, [f"{m:%b %Y}" for m in chart.months])
    axes.set_ylabel("USD (unblended, estimated)")
    axes.set_title(chart.title)
    axes.yaxis.set_major_formatter("${x:,.0f}")
    axes.grid(axis="y", alpha=0.3)
    if chart.series or chart.budgets:
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), fontsize=8, ncols=3, frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
