"""The evaluation report's charts, drawn by matplotlib as inline SVG (``pip install
'qa-cite[eval]'``).

Each function returns one ``<svg>`` element to put straight into the HTML page: text stays text
(searchable, escaped by matplotlib), and nothing refers outside the page. Without matplotlib
each chart is a one-line notice saying how to get it; the rest of the report is unaffected.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from typing import Any

PALETTE = ["#1f5fa8", "#d1495b", "#2a9d8f", "#e09f3e", "#6a4c93", "#8d6e63", "#3d5a80"]
_SIZE = (4.6, 2.6)  # inches; the page scales the SVG to its column
_NO_MATPLOTLIB = ("{title}: the charts need matplotlib, which is not installed "
                  "(pip install 'qa-cite[eval]').")


def _figure() -> tuple[Any, Any] | None:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        return None
    matplotlib.rcParams.update({
        "svg.fonttype": "none",  # keep text as <text>, not outlines
        "svg.hashsalt": "qa-report",  # stable ids, so one run's report is byte-stable
        "font.size": 8,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#eef0f3",
        "axes.axisbelow": True,
    })
    fig = Figure(figsize=_SIZE, layout="constrained")
    return fig, fig.subplots()


def _svg(fig: Any, title: str) -> str:
    """The figure as an ``<svg>`` element for an HTML page: no XML prolog, no namespace URLs
    (HTML knows SVG), labelled for screen readers."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg",
                metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)
    label = html.escape(title, quote=True)
    return svg.replace("<svg", f'<svg class="plot" role="img" aria-label="{label}"', 1)


def _marks(ax: Any, marks: Sequence[tuple[float, str]], lo: float, hi: float, gid: str) -> None:
    """Dashed vertical lines with their labels (ids ``{gid}-mark-N`` for finding them)."""
    for n, (value, label) in enumerate(marks):
        if lo <= value <= hi:
            ax.axvline(value, color="#111111", linestyle="--", linewidth=1,
                       gid=f"{gid}-mark-{n}")
            ax.annotate(label, (value, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(3, -8), textcoords="offset points", fontsize=7)


def histogram(title: str, series: list[tuple[str, list[float], str]], lo: float, hi: float,
              xlabel: str, *, gid: str, bins: int = 20,
              marks: Sequence[tuple[float, str]] = ()) -> str:
    """Side-by-side histogram bars of each series over ``[lo, hi]``, with dashed markers."""
    if not any(vals for _, vals, _ in series):
        return f'<p class="muted">{html.escape(title)}: no data.</p>'
    made = _figure()
    if made is None:
        return f'<p class="muted">{html.escape(_NO_MATPLOTLIB.format(title=title))}</p>'
    fig, ax = made
    if hi <= lo:
        hi = lo + 1.0
    shown = [(f"{name} ({len(vals)})", vals, color) for name, vals, color in series]
    ax.hist([vals for _, vals, _ in shown], bins=bins, range=(lo, hi),
            color=[c for _, _, c in shown], label=[n for n, _, _ in shown])
    _marks(ax, marks, lo, hi, gid)
    ax.set_xlim(lo, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("questions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(0, 1.18), ncols=len(shown))
    return _svg(fig, title)


def hit_curve(groups: dict[str, dict[str, Any]]) -> str:
    """hit@j for j = 1..k: one line per question language (and ``all``)."""
    title = "hit@j: answerable questions whose document is in the top j"
    curves = []
    for i, (name, s) in enumerate(groups.items()):
        curve = s.get("hit_curve") or {}
        pts = sorted((int(j), v) for j, v in curve.items() if v is not None)
        if pts:
            color = "#333333" if name == "all" else PALETTE[(i - 1) % len(PALETTE)]
            curves.append((name, pts, color))
    if not curves:
        return '<p class="muted">hit@k curve: no answerable questions.</p>'
    made = _figure()
    if made is None:
        return f'<p class="muted">{html.escape(_NO_MATPLOTLIB.format(title=title))}</p>'
    fig, ax = made
    for name, pts, color in curves:
        ax.plot([j for j, _ in pts], [v for _, v in pts], marker="o", markersize=3.5,
                linewidth=2, color=color, label=name)
    kmax = max(j for _, pts, _ in curves for j, _ in pts)
    lowest = min(v for _, pts, _ in curves for _, v in pts)
    ax.set_ylim(max(0.0, math.floor((lowest - 0.05) * 10) / 10), 1.02)  # room for a line at 1
    ax.set_xticks(range(1, kmax + 1))
    ax.set_xlabel("j (document rank)")
    ax.set_ylabel("hit rate")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(0, 1.18), ncols=len(curves))
    return _svg(fig, title)
