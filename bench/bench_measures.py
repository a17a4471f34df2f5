"""Benchmark: every quality measure over N synthetic episode histories (default 10,000), plain and stratified.

Histories are built directly (no store, no rules) on the shipped ``detox-to-aftercare`` and ``reentry`` pathways,
with random but plausible content: the stages in order with random stays, kept visits, handoffs with their steps,
escalations (some acknowledged), MOUD lists and fills, critical findings. The numbers they give mean nothing; only
the time does. Times are the median of ``--repeat`` runs of ``compute_measures`` (and of each render once).

Run from the repository root::

    .venv/bin/python -m bench.bench_measures                     # 10,000 histories, median of 3
    .venv/bin/python -m bench.bench_measures --histories 50000 --repeat 1
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.episode.history import EpisodeHistory, Finding, HandoffTrack, Happening, MedList, Raised, Stay
from engine.language.loader import load_spec
from engine.measures import compute_measures, render_csv, render_html, render_json, render_table
from engine.plan.build import compile_plan
from engine.plan.model import Plan

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def _history(n: int, plan: Plan, rnd: random.Random) -> EpisodeHistory:
    start = T0 + timedelta(days=rnd.uniform(0, 300))
    stages = [s for s in plan.stages if not plan.stages[s].terminal][: rnd.randint(1, 5)]
    at, stays, events, handoffs, lists, raised, findings = start, [], [], [], [], [], []
    for visit, stage in enumerate(stages, start=1):
        left = at + timedelta(days=rnd.uniform(1, 40)) if visit < len(stages) else None
        stays.append(Stay(stage, visit, at, left, entered_by=None if visit == 1 else "moved"))
        if visit > 1:
            steps = {
                k: at + timedelta(hours=rnd.uniform(1, 24) * (i + 1)) for i, k in enumerate(("accepted", "visit-kept"))
            }
            steps = {k: v for k, v in steps.items() if rnd.random() < 0.8}
            handoffs.append(
                HandoffTrack(f"H{n}-{visit}", f"Program {visit}", "intake", visit, at, "accepted", "3.0", steps)
            )
            lists.append(
                MedList(visit, "sending", at, ("buprenorphine 8 mg",) if rnd.random() < 0.6 else ("clonidine",))
            )
            if rnd.random() < 0.7:
                lists.append(MedList(visit, "receiving", at + timedelta(days=rnd.uniform(0, 9)), ("Suboxone",)))
            if rnd.random() < 0.2:
                findings.append(
                    Finding(
                        visit,
                        f"omission:{visit}",
                        "omission",
                        True,
                        rnd.choice(["resolved", "unintentional", "intentional-documented"]),
                    )
                )
        for k in range(rnd.randint(0, 8)):
            raised_at = at + timedelta(days=rnd.uniform(0, 10))
            ack = raised_at + timedelta(hours=rnd.uniform(0.1, 48)) if rnd.random() < 0.8 else None
            raised.append(
                Raised(
                    f"w{visit}{k}#r{k % 3}", f"w{visit}{k}", "task", k % 3, "care-coordinator", "normal", raised_at, ack
                )
            )
        if left is not None:
            at = left
    for name in (*plan.measures.visits, *plan.measures.contacts, *plan.measures.moud_fills, *plan.measures.moud_events):
        events += [Happening(name, start + timedelta(days=rnd.uniform(0, 200))) for _ in range(rnd.randint(0, 12))]
    for name in (plan.measures.start, plan.measures.release):
        if name and rnd.random() < 0.9:
            events.append(Happening(name, start + timedelta(days=rnd.uniform(0, 5))))
    return EpisodeHistory(
        id=f"E-BENCH-{n:06d}",
        pathway_id=plan.pathway_id,
        pathway_version=plan.version,
        enrolled_at=start,
        status="active",
        facts={"insurance": rnd.choice(["commercial", "medicaid", "self-pay", "uninsured"])},
        stays=tuple(stays),
        events=tuple(sorted(events, key=lambda e: e.at)),
        handoffs=tuple(handoffs),
        escalations=tuple(sorted(raised, key=lambda r: r.raised_at)),
        findings=tuple(findings),
        medication_lists=tuple(sorted(lists, key=lambda m: m.at)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    plans = [compile_plan(load_spec(ROOT / "pathways" / f"{name}.yaml")) for name in ("detox-to-aftercare", "reentry")]
    rnd = random.Random(args.seed)
    histories = [_history(n, plans[n % 2], rnd) for n in range(args.histories)]
    keyed = {(p.pathway_id, p.version): p for p in plans}
    for stratify in (None, "insurance"):
        times = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            report = compute_measures(histories, keyed, stratify=stratify)
            times.append(time.perf_counter() - began)
        print(f"compute_measures, {args.histories} histories, stratify={stratify}: {statistics.median(times):.2f} s")
    for render in (render_table, render_csv, render_json):
        began = time.perf_counter()
        render(report)
        print(f"{render.__name__}: {1000 * (time.perf_counter() - began):.0f} ms")
    began = time.perf_counter()
    render_html(report, "bench")
    print(f"render_html (matplotlib imported, 4 plots): {time.perf_counter() - began:.2f} s")


if __name__ == "__main__":
    main()
