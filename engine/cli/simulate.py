"""``carepath simulate PATHWAY``: a synthetic cohort through the pathway's pure rules, and what it shows.

No store, no Prefect, no clock: the simulation starts at ``--start`` (default 2026-01-01, so the same seed gives the
same report on any day). Bad input (a number out of range, a model or pathway file with problems) is refused before
anything runs: one line per problem, ``file:line:col: error: $.path: message``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cli.registry import command, whole_number
from engine.errors import CarepathError, Diagnostic, quote

if TYPE_CHECKING:
    from engine.plan.model import Plan
    from engine.simulate import BehaviourModel

__all__: list[str] = []

#: Largest cohort and longest run accepted (a typo of a zero too many should not run for an hour).
MAX_PEOPLE, MAX_DAYS = 1_000_000, 3650


def _count(text: str, name: str, low: int, high: int) -> int:
    return whole_number(f"--{name}", text, low, high)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pathway", metavar="PATHWAY", help="a pathway file (or the id of one in pathways/)")
    p.add_argument("--people", default="1000", help="how many people (default 1000)")
    p.add_argument("--days", default="365", help="how many days to simulate (default 365)")
    p.add_argument("--seed", default="1", help="the random seed: the same seed gives the same cohort (default 1)")
    p.add_argument("--model", metavar="FILE", help="the behaviour model (YAML; default: the documented defaults)")
    p.add_argument("--against", metavar="OTHER", help="another version of the pathway, simulated on the same seed")
    p.add_argument("--start", default="2026-01-01", help="when the simulation starts (UTC date, default 2026-01-01)")
    p.add_argument("--html", metavar="OUT", help="also write the report as one self-contained HTML page")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--by", "--stratify", dest="stratify", metavar="FACT", help="the measures per value of a fact")
    p.add_argument(
        "--min-cell",
        default="1",
        metavar="N",
        help="suppress measure cells resting on fewer than N simulated people (default 1: nobody to protect; "
        "11 shows what a published report of such a cohort would hide)",
    )
    p.add_argument("--no-measures", action="store_true", help="leave the quality measures out (faster)")
    p.add_argument("--workers", default=None, help="processes to use (default: the machine's cores, at most 2)")


def _plan(path: str) -> Plan | None:
    from engine.language.loader import load_pathway
    from engine.plan.build import compile_plan

    if not Path(path).exists() and "/" not in path and (Path("pathways") / f"{path}.yaml").exists():
        path = str(Path("pathways") / f"{path}.yaml")
    result = load_pathway(path)
    problems = [d for d in result.diagnostics if d.severity == "error"]
    for diagnostic in problems:
        print(diagnostic, file=sys.stderr)
    if not result.ok or result.spec is None:
        return None
    return compile_plan(result.spec)


def _model(path: str | None, plan: Plan) -> BehaviourModel | None:
    from engine import files
    from engine.language.source import MAX_BYTES
    from engine.simulate import ModelError, default_model, parse_model

    if path is None:
        return default_model(plan)
    try:
        data = files.read_bounded(path, MAX_BYTES)
        return parse_model(data, plan, file=path)
    except (OSError, TimeoutError) as exc:
        why = "not a regular file" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
        print(Diagnostic(path, 1, 1, "$", f"cannot read the model: {why}"), file=sys.stderr)
    except ModelError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
    return None


def _start(text: str) -> datetime:
    try:
        day = datetime.fromisoformat(text)
    except ValueError:
        raise CarepathError(f"--start: {quote(text)} is not a date (e.g. 2026-01-01)") from None
    if not 2000 <= day.year <= 2100:
        raise CarepathError(f"--start: {quote(text)} is outside the years 2000..2100")
    return day.replace(tzinfo=UTC) if day.tzinfo is None else day.astimezone(UTC)


@command("simulate", "simulate a synthetic cohort on a pathway: flows, stalls, escalation load", _args)
def _simulate(args: argparse.Namespace) -> int:
    from engine.measures import MeasureError, render_table
    from engine.measures import render_json as measures_json
    from engine.simulate import simulate
    from engine.simulate.model import for_plan
    from engine.simulate.page import render_html
    from engine.simulate.report import cohort_measures, measures_section, render_json, render_text, summarize

    people = _count(args.people, "people", 1, MAX_PEOPLE)
    days = _count(args.days, "days", 1, MAX_DAYS)
    seed = _count(args.seed, "seed", 0, 2**63)
    cores = min(os.cpu_count() or 1, 2)
    workers = _count(args.workers, "workers", 1, 64) if args.workers is not None else cores
    start = _start(args.start)
    if args.html and not Path(args.html).resolve().parent.is_dir():
        raise CarepathError(f"--html: cannot write {quote(args.html)}: no such folder")
    plan = _plan(args.pathway)
    if plan is None:
        return 1
    model = _model(args.model, plan)
    if model is None:
        return 1
    other = _plan(args.against) if args.against else None
    if args.against and other is None:
        return 1
    if args.stratify is not None and args.stratify not in plan.facts:
        raise MeasureError(f"--by: {quote(args.stratify)} is not a fact of pathway {quote(plan.pathway_id)}")
    result = simulate(plan, model, people, days, seed, start, workers=workers)
    second = simulate(other, for_plan(model, other), people, days, seed, start, workers=workers) if other else None
    summary, against = summarize(result), summarize(second) if second else None
    min_cell = _count(args.min_cell, "min-cell", 1, 1000)
    measured = [] if args.no_measures else [cohort_measures(r, args.stratify, min_cell) for r in (result, second) if r]
    if args.json:
        found = [json.loads(measures_json(m)) for m in measured]
        print(render_json(summary, against, found or None))
    else:
        print(render_text(summary, against))
        for r, report in zip((result, second), measured, strict=False):
            assert r is not None
            print(f"\nquality measures: {r.plan.pathway_id} v{r.plan.version}\n{render_table(report)}", end="")
    if args.html:
        sections = "".join(
            measures_section(m, f"Quality measures: {r.plan.pathway_id} v{r.plan.version}")
            for r, m in zip((result, second), measured, strict=False)
            if r is not None
        )
        order = list(plan.stages)
        page = render_html(summary, order, against, list(other.stages) if other else None, sections)
        try:
            Path(args.html).write_text(page, encoding="utf-8")
        except OSError as exc:
            raise CarepathError(f"--html: cannot write {quote(args.html)}: {exc.strerror or exc}") from None
        if not args.json:
            print(f"\nwrote {args.html}")
    return 0
