"""One self-contained HTML page of a simulated cohort: the report's tables, the Sankey of stage flows and the weekly
escalation load per role, all inline SVG and CSS (no script, nothing fetched: it opens from a file, offline)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from engine.simulate.report import Summary
from engine.simulate.sankey import sankey_svg

__all__ = ["render_html"]

_STYLE = """body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 20px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}th{background:#f3f3f3}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}.num{text-align:right}"""


def _cell(value: object) -> str:
    kind = "num" if isinstance(value, int | float) else ""
    return f'<td class="{kind}">{escape(str(value))}</td>'


def _table(head: list[str], rows: Sequence[Sequence[object]]) -> str:
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _load_svg(s: Summary, width: int = 1100, row: int = 90) -> str:
    """One bar chart per role: alerts in each week."""
    if not s.load:
        return "<p>No escalations.</p>"
    peak = max(max(w) for w in s.load.values()) or 1
    height = row * len(s.load) + 20
    bar = (width - 200) / max(s.weeks, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="11">'
    ]
    for n, (role, weeks) in enumerate(s.load.items()):
        top = n * row + 10
        parts.append(f'<text x="0" y="{top + row / 2:.0f}">{escape(role)}</text>')
        for k, count in enumerate(weeks):
            h = (row - 20) * count / peak
            parts.append(
                f'<rect x="{190 + k * bar:.1f}" y="{top + row - 20 - h:.1f}" width="{max(bar - 1, 0.5):.1f}" '
                f'height="{h:.1f}" fill="#4e79a7"><title>{escape(role)} week {k + 1}: {count}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _section(s: Summary, stage_order: list[str]) -> str:
    per100 = 100 * s.escalations["total"] / max(s.people, 1)
    stays = [[st, n, "" if m is None else m] for st, (n, m) in s.stays.items() if n]
    load = [[role, sum(w), round(sum(w) / max(len(w), 1), 1), max(w)] for role, w in s.load.items()]
    return "".join(
        [
            f"<h2>{escape(s.pathway_id)} v{s.version}: {s.people:,} people, {s.days} days, seed {s.seed}</h2>",
            _table(["ended in", "people"], [[k, v] for k, v in s.ended.items()]),
            "<h3>Stage flows (each column: the n-th stay of an episode)</h3>",
            sankey_svg(s.flows, stage_order),
            "<h3>Stays</h3>",
            _table(["stage", "stays ended", "median days"], stays),
            "<h3>Handoffs</h3>",
            _table(["", "handoffs"], [[k, v] for k, v in s.handoffs.items()]),
            f"<h3>Escalations: {s.escalations['total']:,} ({per100:.0f} per 100 episodes), "
            f"{s.escalations['critical']:,} critical, {s.escalations['acknowledged']:,} acknowledged</h3>",
            _table(["role", "alerts", "per week", "peak week"], load),
            _load_svg(s),
            "<h3>Where episodes stall (active at the end, with overdue work)</h3>",
            _table(["stage", "overdue work", "episodes"], [list(r) for r in s.stalls[:30]]),
            _table(["refused event", "times"], [[k, v] for k, v in s.refused.items()]) if s.refused else "",
        ]
    )


def render_html(summary: Summary, stage_order: list[str], against: Summary | None = None,
                against_order: list[str] | None = None, measures_html: str = "") -> str:  # fmt: skip
    """The whole page; with ``against``, the second version's section follows the first."""
    title = f"Simulated cohort: {summary.pathway_id} v{summary.version}"
    if against is not None:
        title += f" against v{against.version}"
    body = _section(summary, stage_order)
    if against is not None:
        body += _section(against, against_order or stage_order)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}{measures_html}</body></html>"
    )
