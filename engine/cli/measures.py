"""``carepath measures``: the quality measures of the store's episodes, as a table, JSON, CSV or an HTML page.

A front-end only: it parses its arguments and calls :func:`engine.app.measures.measures`. A bad date, an unknown
pathway or fact is one line and writes nothing (the HTML file is written only once the report is computed).
"""

from __future__ import annotations

import argparse
import os
from datetime import date
from pathlib import Path

from engine.cli.registry import command, whole_number
from engine.errors import CarepathError, InvalidInput, one_line, quote
from engine.measures.compute import MIN_CELL

__all__ = ["parse_day"]


def parse_day(option: str, text: str | None) -> date | None:
    """``2026-03-01`` as a date; anything else one line naming the option."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(option, "is not a date (YYYY-MM-DD)", text) from None


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pathway", metavar="ID", help="only this pathway's episodes (default: every pathway)")
    p.add_argument("--from", dest="start", metavar="DATE", help="first day (UTC) whose index events count")
    p.add_argument("--to", dest="end", metavar="DATE", help="last day (UTC) whose index events count")
    p.add_argument("--by", metavar="FACT", help="stratify by an enrollment fact the pathway declares")
    p.add_argument(
        "--min-cell",
        default=str(MIN_CELL),
        metavar="N",
        help=f"suppress cells resting on fewer than N people (default {MIN_CELL}, for anything published; "
        "lower it only for internal review)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--csv", action="store_true", help="print the report as CSV (one row per cell)")
    out.add_argument("--html", metavar="FILE", help="write a one-page HTML report with plots to FILE")


def _check_writable(name: str) -> Path:
    """Refuse, before any work, an HTML file that could not be written (a missing folder, a folder, no right)."""
    path = Path(name)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InvalidInput("--html", "is a folder, not a file", name)
    if not folder.is_dir():
        raise InvalidInput("--html", f"cannot be written: no folder {quote(str(folder))}", name)
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InvalidInput("--html", "cannot be written: permission denied", name)
    return path


@command("measures", "quality measures of the store's episodes (table, --json, --csv or --html FILE)", _args)
def _measures(args: argparse.Namespace) -> int:
    from engine.app.measures import measures
    from engine.cli.episodes import cli_app
    from engine.measures import Period, render_csv, render_html, render_json, render_table

    start, end = parse_day("--from", args.start), parse_day("--to", args.end)
    target = _check_writable(args.html) if args.html else None
    period = Period(start, end) if start or end else None
    min_cell = whole_number("--min-cell", args.min_cell, 1, 1000)
    report = measures(cli_app(), pathway=args.pathway, period=period, stratify=args.by, min_cell=min_cell)
    if target is not None:
        title = f"Quality measures: {args.pathway or 'every pathway'}"
        try:
            page = render_html(report, title)
        except ImportError as exc:  # the plots need matplotlib, a dependency a partial install may lack
            raise CarepathError(f"--html needs {exc.name or 'matplotlib'} (pip install matplotlib)") from exc
        try:
            target.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise CarepathError(f"--html: {quote(args.html)} cannot be written: {one_line(str(exc))}") from exc
        print(f"wrote {target}")
    elif args.json:
        print(render_json(report))
    elif args.csv:
        print(render_csv(report), end="")
    else:
        print(render_table(report))
    return 0
