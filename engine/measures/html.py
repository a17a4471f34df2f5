"""A report as one self-contained HTML page: the scope, a few plots (PNG, embedded as data URIs, so the page needs
no network), one table per family, and the definitions.

matplotlib is imported here, inside :func:`render_html`, with the Agg backend (no display), so importing the
measures (and the CLI) stays fast. Suppressed cells are left out of the plots, as they are out of the tables.
"""

from __future__ import annotations

import base64
import io
from html import escape
from typing import Any

from engine.measures.render import scope_lines, show_value
from engine.measures.report import ALL, MeasureError, MeasureReport, Result

__all__ = ["PLOTS", "render_html"]

#: The plots: title, the measures drawn (one bar group each, or one per subject), and the unit of the axis.
PLOTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "Care and continuity (% of denominator)",
        (
            "follow-up.7d",
            "follow-up.30d",
            "initiation",
            "engagement",
            "moud.transitions",
            "moud.180d",
            "reentry.contact-72h",
            "reentry.fill-7d",
            "reentry.daily-14d",
        ),
        "%",
    ),
    ("Handoff loops closed, by receiving program (%)", ("handoffs.loop-closed",), "%"),
    ("Escalations per 100 episodes, by rung", ("escalations.per-100",), "per 100 episodes"),
    ("Median length of stay, by stage (days)", ("stays.median-days",), "days"),
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } .suppressed { color: #888; font-style: italic; }
img { max-width: 100%; } .plots { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
"""


def _bars(report: MeasureReport, measures: tuple[str, ...]) -> tuple[list[str], dict[str, list[float | None]]]:
    """Bar labels (a measure, or a measure's subjects) and, per stratum, the shown values (None: no bar); labels
    and strata with nothing shown are left out."""
    by_key = {(r.measure, r.subject, r.stratum): r for r in report.results}
    keys = [(r.measure, r.subject) for r in report.results if r.measure in measures and r.stratum == ALL]
    strata = [s.value for s in report.strata]
    keys = [k for k in keys if any(_plotted(by_key[(*k, s)]) is not None for s in strata)]
    series = {s: [_plotted(by_key[(*k, s)]) for k in keys] for s in strata}
    series = {s: values for s, values in series.items() if any(v is not None for v in values)}
    return [subject or m for m, subject in keys], series


def _plotted(r: Result) -> float | None:
    if r.suppressed or r.value is None:
        return None
    return 100 * r.value if r.unit == "rate" else r.value


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display), imported on the first HTML report only."""
    try:
        import matplotlib
    except ModuleNotFoundError as exc:  # a dependency of Carepath; missing only in a partial install
        raise MeasureError("the HTML report needs matplotlib (pip install matplotlib)") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot(title: str, labels: list[str], series: dict[str, list[float | None]], unit: str) -> str:
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=96)
    width = 0.8 / max(len(series), 1)
    for k, (stratum, values) in enumerate(series.items()):
        xs = [i + k * width for i, v in enumerate(values) if v is not None]
        ax.bar(xs, [v for v in values if v is not None], width, label=stratum)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))], labels, rotation=30, ha="right")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit)
    if unit == "%":
        ax.set_ylim(0, 100)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    data = base64.b64encode(png.getvalue()).decode("ascii")
    return f'<figure><img alt="{escape(title)}" src="data:image/png;base64,{data}"></figure>'


def _table(report: MeasureReport, family: str) -> str:
    strata = [s.value for s in report.strata]
    head = "".join(f"<th>{escape(s if s != ALL else 'all episodes')}</th>" for s in strata)
    by_key = {(r.measure, r.subject, r.stratum): r for r in report.results}
    rows = []
    for d in (d for d in report.definitions if d.family == family):
        for subject in dict.fromkeys(r.subject for r in report.results if r.measure == d.id):
            cells = []
            for s in strata:
                r = by_key[(d.id, subject, s)]
                css = ' class="suppressed"' if r.suppressed else ""
                cells.append(f"<td{css}>{escape(show_value(r, report.min_cell))}</td>")
            name = escape(d.title + (f": {subject}" if subject else ""))
            rows.append(f'<tr><td title="{escape(d.id)}">{name}</td>{"".join(cells)}</tr>')
    return f"<h2>{escape(family)}</h2><table><tr><th>measure</th>{head}</tr>{''.join(rows)}</table>"


def _definitions(report: MeasureReport) -> str:
    keys: tuple[str, ...] = ("numerator", "denominator", "exclusions", "source", "adaptation")
    rows = []
    for d in report.definitions:
        parts: dict[str, Any] = {k: getattr(d, k) for k in keys}
        body = "".join(f"<li><b>{k}</b>: {escape(str(v))}</li>" for k, v in parts.items())
        rows.append(f"<li><b>{escape(d.id)}</b>: {escape(d.title)}<ul>{body}</ul></li>")
    return f"<h2>Definitions</h2><ul>{''.join(rows)}</ul>"


def render_html(report: MeasureReport, title: str) -> str:
    """One page: scope, plots, a table per family, definitions. Opens offline; holds no person or episode id."""
    figures = []
    for plot_title, measures, unit in PLOTS:
        labels, series = _bars(report, measures)
        if labels and series:
            figures.append(_plot(plot_title, labels, series, unit))
    families = list(dict.fromkeys(d.family for d in report.definitions))
    scope = "".join(f"<li>{escape(line)}</li>" for line in scope_lines(report))
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1><ul>{scope}</ul>"
        f'<div class="plots">{"".join(figures)}</div>'
        + "".join(_table(report, f) for f in families)
        + _definitions(report)
        + "</body></html>\n"
    )
