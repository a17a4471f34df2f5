"""Designer commands: ``validate``, ``plan``, ``graph``, ``schema``. None of them imports Prefect."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from typing import TYPE_CHECKING

from engine.cli.registry import command
from engine.errors import CarepathError, quote

if TYPE_CHECKING:
    from engine.errors import Diagnostic
    from engine.language.loader import LoadResult
    from engine.plan.model import Plan

__all__ = ["parse_params"]


def parse_params(pairs: list[str]) -> dict[str, timedelta]:
    """``["pre_release_window=60d"]`` -> ``{"pre_release_window": timedelta(days=60)}``."""
    from engine.language.durations import parse_duration
    from engine.language.fields import FACT_PATTERN

    out: dict[str, timedelta] = {}
    for pair in pairs:
        name, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or not name:
            raise CarepathError(f"--param: {quote(pair)} is not NAME=DURATION (e.g. pre_release_window=60d)")
        if not re.fullmatch(FACT_PATTERN, name):
            raise CarepathError(f"--param: {quote(name)} is not a parameter name (e.g. pre_release_window)")
        if name in out:
            raise CarepathError(f"--param: {quote(name)} is given twice")
        try:
            out[name] = parse_duration(value)
        except ValueError as exc:
            raise CarepathError(f"--param {quote(name)}: {exc}") from exc
    return out


def _validate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH", help="pathway files or folders (default: pathways/)")


def _running_episode_warnings(result: LoadResult) -> list[Diagnostic]:
    """Warnings about episodes already running on this pathway, when there is a store to ask."""
    import os
    from pathlib import Path

    from engine.language.versions import version_warnings
    from engine.store.running import running_on

    if not result.ok or result.spec is None or result.source_text is None:
        return []
    try:
        found = running_on(result.spec.id, Path(os.environ.get("CAREPATH_HOME") or ".carepath"), os.environ)
    except Exception:  # an unreachable or foreign store: validation itself does not depend on it
        return []
    return version_warnings(result.spec, result.source_text, result.path, *found) if found else []


@command("validate", "check pathway files; print every problem as file:line:col", _validate_args)
def _validate(args: argparse.Namespace) -> int:
    from engine.language.loader import discover, load_pathway
    from engine.language.programs import is_program_file, load_program

    paths, missing = discover(args.paths or ["pathways"])
    failed = bool(missing)
    for diagnostic in missing:
        print(diagnostic)
    for path in paths:
        if is_program_file(path):
            program, problems = load_program(path)
            for diagnostic in problems:
                print(diagnostic)
            if program is None:
                failed = True
            else:
                print(f"ok {path}: program ({len(program.roles)} roles, {len(program.ladders)} ladders)")
            continue
        result = load_pathway(path)
        for diagnostic in result.diagnostics + _running_episode_warnings(result):
            print(diagnostic)
        if result.ok and result.spec is not None:
            spec = result.spec
            print(f"ok {path}: {spec.id} v{spec.version} ({len(spec.stages)} stages)")
        else:
            failed = True
    return 1 if failed else 0


def _load_plan(args: argparse.Namespace) -> Plan | None:
    """The plan of ``args.file``, or None once its problems are printed. Every diagnostic goes to stderr once
    (stdout is the plan alone, e.g. for ``--json``)."""
    import sys

    from engine.language.loader import load_pathway
    from engine.plan.build import compile_plan

    params = parse_params(args.param)
    result = load_pathway(args.file)
    for diagnostic in result.diagnostics:
        print(diagnostic, file=sys.stderr)
    if not result.ok or result.spec is None:
        return None
    return compile_plan(result.spec, params)


def _plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a pathway file")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--param", action="append", default=[], metavar="NAME=DURATION", help="set a pathway parameter")


@command("plan", "show the compiled plan of a pathway: what each transition schedules and when", _plan_args)
def _plan(args: argparse.Namespace) -> int:
    from engine.plan.text import plan_json, plan_table

    plan = _load_plan(args)
    if plan is None:
        return 1
    print(plan_json(plan) if args.json else plan_table(plan))
    return 0


def _graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a pathway file")
    p.add_argument("--param", action="append", default=[], metavar="NAME=DURATION", help="set a pathway parameter")


@command("graph", "print a Mermaid flowchart of a pathway's stages, transitions, handoffs and escalations", _graph_args)
def _graph(args: argparse.Namespace) -> int:
    from engine.plan.mermaid import mermaid

    plan = _load_plan(args)
    if plan is None:
        return 1
    print(mermaid(plan))
    return 0


@command("schema", "print the pathway JSON Schema (for editors and other tools)")
def _schema(args: argparse.Namespace) -> int:
    from engine.language.schema import PACKAGED_SCHEMA

    print(PACKAGED_SCHEMA.read_text(encoding="utf-8"), end="")
    return 0
