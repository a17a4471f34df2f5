"""A report as plain text (a table to read), CSV (one row per measure x subject x stratum) and JSON (stable keys).

Suppressed cells read ``suppressed (<11)``, never a number; a cell with nothing to count reads ``none``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

from engine.measures.report import ALL, MeasureReport, Result

__all__ = [
    "FORMAT",
    "render_csv",
    "render_json",
    "render_table",
    "report_data",
    "scope_lines",
    "show_value",
    "suppression_note",
]

#: The JSON document's ``format``: raise the number when a key changes meaning or goes away.
FORMAT = "carepath-measures/1"
CSV_COLUMNS = (
    "measure",
    "family",
    "title",
    "subject",
    "stratum",
    "unit",
    "numerator",
    "denominator",
    "value",
    "suppressed",
)


def show_value(r: Result, min_cell: int) -> str:
    """``72.7% (8/11)``, ``18.5 h (n=12)``, ``35.0 per 100 (14/40)``, ``suppressed (<11)``, ``none``."""
    if r.suppressed:
        return f"suppressed (<{min_cell})"
    if r.value is None:
        return "none"
    if r.unit == "rate":
        return f"{100 * r.value:.1f}% ({r.numerator}/{r.denominator})"
    if r.unit == "per-100-episodes":
        return f"{r.value:.1f} per 100 ({r.numerator}/{r.denominator})"
    suffix = "h" if r.unit.endswith("hours") else "d"
    return f"{r.value:.1f} {suffix} (n={r.denominator})"


def scope_lines(report: MeasureReport) -> list[str]:
    """What the report covers, one line each: pathways, period, horizon, strata, the suppression rule."""
    period = report.period
    lines = [
        "Pathways: " + (", ".join(report.pathways) or "none"),
        "Period: "
        + (f"{period.start or '...'} to {period.end or '...'}" if period and (period.start or period.end) else "all"),
        "Data up to: " + (report.as_of.strftime("%Y-%m-%d %H:%M UTC") if report.as_of else "no data"),
    ]
    strata = ", ".join(
        f"{s.value}: " + (f"suppressed (<{report.min_cell})" if s.suppressed else f"{s.episodes} episodes")
        for s in report.strata
    )
    lines.append(f"Episodes ({'by ' + report.stratify if report.stratify else 'total'}): {strata}")
    lines.append(suppression_note(report))
    return lines


def render_table(report: MeasureReport) -> str:
    """A plain-text table: one block per family, one line per measure and subject, one column per stratum."""
    strata = [s.value for s in report.strata]
    by_key = {(r.measure, r.subject, r.stratum): r for r in report.results}
    rows: list[list[str]] = []
    family = None
    for d in report.definitions:
        subjects = list(dict.fromkeys(r.subject for r in report.results if r.measure == d.id))
        for subject in subjects:
            if d.family != family:
                family = d.family
                rows.append([f"[{family}]"] + [""] * len(strata))
            name = f"  {d.title}" + (f": {subject}" if subject else "")
            rows.append([name] + [show_value(by_key[(d.id, subject, s)], report.min_cell) for s in strata])
    header = ["measure"] + [s if s != ALL else "all episodes" for s in strata]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    text = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    text.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join([*scope_lines(report), "", *text]) + "\n"


def render_csv(report: MeasureReport) -> str:
    """One row per measure x subject x stratum; suppressed cells have empty numbers and ``suppressed`` true."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in report.results:
        d = report.definition(r.measure)
        numbers = ["" if x is None else str(x) for x in (r.numerator, r.denominator, r.value)]
        writer.writerow(
            [r.measure, d.family, d.title, r.subject, r.stratum, r.unit, *numbers, str(r.suppressed).lower()]
        )
    return out.getvalue()


def report_data(report: MeasureReport) -> dict[str, Any]:
    """The report as plain JSON values (the JSON render's document)."""
    period = report.period
    return {
        "format": FORMAT,
        "pathways": list(report.pathways),
        "period": {
            "start": period.start.isoformat() if period and period.start else None,
            "end": period.end.isoformat() if period and period.end else None,
        },
        "as_of": report.as_of.isoformat() if report.as_of else None,
        "stratify": report.stratify,
        "min_cell": report.min_cell,
        "strata": [asdict(s) for s in report.strata],
        "definitions": [asdict(d) for d in report.definitions],
        "results": [asdict(r) for r in report.results],
    }


def render_json(report: MeasureReport) -> str:
    """The report as JSON: keys sorted, two-space indent, so two runs on the same data are byte-identical."""
    return json.dumps(report_data(report), indent=2, sort_keys=True) + "\n"


def suppression_note(report: MeasureReport) -> str:
    """What the report hides: cells under ``min_cell`` people, or nothing (``min_cell`` 1: internal review or a
    simulated cohort, where nobody is real)."""
    if report.min_cell <= 1:
        return "Nothing is suppressed (minimum cell 1): not for publication."
    return f"Cells resting on fewer than {report.min_cell} people are suppressed."
