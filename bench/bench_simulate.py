"""Benchmark: a synthetic cohort through the pure episode rules (``engine.simulate``), as ``carepath simulate`` runs it.

For each shipped pathway (or ``--pathway``), simulates ``--people`` people over ``--days`` days with the default
behaviour model on ``--workers`` processes, best of ``--runs``, and prints the wall time, the CPU time of this
process (one worker), people per second, the rule calls (events applied, rungs fired) per person, and what 10,000
people over 365 days would take at that rate. The issue's aim: 10,000 people over 365 days in under 10 s on 2 cores.
Exit status 1 when the aim is missed (judged on the ``--people``/``--days`` given, scaled to 10,000 people).

Run from the repository root::

    .venv/bin/python -m bench.bench_simulate                       # 1,000 people, 365 days, 2 workers
    .venv/bin/python -m bench.bench_simulate --people 10000 --runs 1
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from engine.language.loader import load_spec
from engine.plan.build import compile_plan
from engine.simulate import default_model, simulate

ROOT = Path(__file__).resolve().parents[1]
AIM_SECONDS, AIM_PEOPLE, AIM_DAYS = 10.0, 10_000, 365


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--pathway", action="append", help="a pathway file (default: every file in pathways/)")
    args = parser.parse_args(argv)
    paths = args.pathway or sorted(str(p) for p in (ROOT / "pathways").glob("*.yaml"))
    print(
        f"carepath bench: simulate {args.people:,} people x {args.days} days, {args.workers} worker(s), "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    ok = True
    for path in paths:
        plan = compile_plan(load_spec(path))
        model = default_model(plan)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        simulate(plan, model, 20, args.days, 0, start)  # warm-up: imports, caches
        best, cpu, result = float("inf"), 0.0, None
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            result = simulate(plan, model, args.people, args.days, 1, start, workers=args.workers)
            wall, used = time.perf_counter() - t0, time.process_time() - c0
            if wall < best:
                best, cpu = wall, used
        assert result is not None
        calls = sum(1 for p in result.people for a in p.script.actions if a.kind == "event")
        fired = sum(len(h.escalations) for h in result.histories)
        scaled = best * (AIM_PEOPLE / args.people) * (AIM_DAYS / args.days)
        ok &= scaled <= AIM_SECONDS
        print(
            f"{plan.pathway_id} v{plan.version}: {best:.2f} s ({args.people / best:,.0f} people/s; CPU here "
            f"{cpu:.2f} s), {calls / args.people:.0f} events and {fired / args.people:.0f} escalations per person; "
            f"10,000 x 365 d at this rate: {scaled:.0f} s (aim {AIM_SECONDS:g} s)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
