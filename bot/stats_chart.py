"""The /stats chart: questions, refusals and 👍/👎 votes per day as a PNG (matplotlib's Agg
backend: no display needed). It draws `StatsReport.daily` and nothing else, so what it shows is
exactly the figures a caller (and a test) can read from the report."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402  (after choosing the backend)
from matplotlib.figure import Figure  # noqa: E402

from bot.state.corrections import DayCounts  # noqa: E402

SERIES = (("questions", "questions", "#5865F2"), ("refused", "refused", "#ED4245"),
          ("up", "👍 votes", "#57F287"), ("down", "👎 votes", "#FEE75C"))


def chart_png(daily: Sequence[DayCounts], title: str = "Questions and feedback per day") -> bytes:
    """A line chart of the four daily series (one point per day, days without activity at 0)."""
    figure = Figure(figsize=(8, 3.6), dpi=100)  # not pyplot: no global state shared between threads
    axes = figure.subplots()
    days = [d.day for d in daily]
    for attribute, label, colour in SERIES:
        axes.plot(days, [getattr(d, attribute) for d in daily], marker="o", label=label.replace("👍 ", "up ")
                  .replace("👎 ", "down "), color=colour, linewidth=2)
    axes.set_title(title)
    axes.set_ylabel("per day")
    axes.set_ylim(bottom=0)
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    if not daily:
        axes.text(0.5, 0.5, "no questions in this period", ha="center", va="center", transform=axes.transAxes)
    figure.autofmt_xdate()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
