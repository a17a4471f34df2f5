"""Benchmark: the sweep's due-deadline lookups with 100,000 episodes in the store.

It fills a fresh store (SQLite in a temporary folder; PostgreSQL in a throwaway database when the server at
127.0.0.1:5432 answers) with N synthetic episodes, each with a few work items of two or three escalation rungs,
dates spread over six months around "now", about a third of the rungs already fired or cancelled. Rows go in
through SQLAlchemy Core ``executemany`` in chunks, then ``ANALYZE``. It then times, each the median of
``--repeat`` calls in a fresh read transaction:

- ``episodes_with_due_rungs(now, limit=200)`` at mid-range "now" (hundreds of thousands of rungs overdue, as after
  an outage): which episodes the sweep follows up;
- the same at the start of the range (a handful due, the steady state of a sweep);
- ``due_pending_rungs(episode, now)``: what one follow-up fires;
- ``unscheduled_timers(limit=500)`` (the sweep's other lookup: the next rung of each item with no run yet).

Run from the repository root::

    .venv/bin/python -m bench.bench_due_lookup                  # 100,000 episodes, median of 20
    .venv/bin/python -m bench.bench_due_lookup --episodes 20000 --backend sqlite
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session

from bench import pg
from bench.timing import measure
from engine import store
from engine.store import EpisodeRecord, PathwayVersionRecord, RungRecord, WorkItemRecord

__all__ = ["fill", "main", "measure"]

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SPREAD = timedelta(days=182)
CHUNK = 5_000
AIM_MS = 50.0


def _rows(episodes: int, seed: int = 7) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(table, rows) chunks: parents before children, so the foreign keys hold chunk by chunk."""
    rng = random.Random(seed)
    start = NOW - SPREAD / 2
    for base in range(0, episodes, CHUNK // 10):
        eps, items, rungs = [], [], []
        for n in range(base, min(base + CHUNK // 10, episodes)):
            ep = f"ep-{n:08x}"
            enrolled = start + timedelta(seconds=rng.uniform(0, SPREAD.total_seconds()))
            eps.append(
                {
                    "id": ep,
                    "person_ref": f"P-{n:06d}",
                    "pathway_id": "reentry",
                    "pathway_version": 1,
                    "params": {},
                    "stage": rng.choice(("release", "community", "maintenance")),
                    "status": "active",
                    "facts": {},
                    "visit": 1,
                    "enrolled_at": enrolled,
                    "stage_entered_at": enrolled,
                    "updated_at": enrolled,
                    "revision": 1,
                }
            )
            for k in range(rng.randint(2, 4)):
                item = f"{ep}/1/work-{k}"
                due = enrolled + timedelta(hours=rng.uniform(1, 24 * 30))
                items.append(
                    {
                        "id": item,
                        "episode_id": ep,
                        "handoff_id": None,
                        "kind": "deadline",
                        "key": f"work-{k}",
                        "title": f"work {k}",
                        "owner": "care-coordinator",
                        "due_at": due,
                        "done_on": "handoff.accepted",
                        "match": {},
                        "consent_purpose": None,
                        "visit": 1,
                        "status": "open",
                        "opened_at": enrolled,
                        "closed_at": None,
                        "closed_by": None,
                        "occurrence": 0,
                    }
                )
                settled = rng.random() < 0.35
                for r in range(rng.randint(2, 3)):
                    rungs.append(
                        {
                            "id": f"{item}#r{r}",
                            "work_item_id": item,
                            "episode_id": ep,
                            "index": r,
                            "due_at": due + timedelta(hours=24 * r),
                            "role": ("care-coordinator", "supervisor", "medical-director")[r],
                            "status": rng.choice(("fired", "cancelled")) if settled else "pending",
                            "flow_run_id": None if rng.random() < 0.02 else secrets.token_hex(8),
                            "scheduled_at": enrolled,
                        }
                    )
        yield "episode", eps
        yield "work_item", items
        yield "rung", rungs


def fill(engine: Engine, episodes: int) -> dict[str, int]:
    """Insert ``episodes`` synthetic episodes with their work items and rungs; returns row counts per table."""
    tables = {
        "episode": EpisodeRecord.__table__,  # type: ignore[attr-defined]
        "work_item": WorkItemRecord.__table__,  # type: ignore[attr-defined]
        "rung": RungRecord.__table__,  # type: ignore[attr-defined]
    }
    counts = dict.fromkeys(tables, 0)
    with store.session_scope(engine) as s:
        s.add(
            PathwayVersionRecord(
                pathway_id="reentry", version=1, source_text="", source_sha256="0" * 64, registered_at=NOW
            )
        )
    with engine.begin() as conn:
        for name, rows in _rows(episodes):
            if rows:
                conn.execute(tables[name].insert(), rows)
                counts[name] += len(rows)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return counts


def _lookups(engine: Engine) -> dict[str, Callable[[], object]]:
    def due(now: datetime) -> Callable[[], object]:
        def run() -> object:
            with Session(engine) as s:
                rows = store.episodes_with_due_rungs(s, now, limit=200)
                assert rows, "the benchmark expects due rungs"
                return rows

        return run

    def unscheduled() -> object:
        with Session(engine) as s:
            return store.unscheduled_timers(s, limit=500)

    def one_episode() -> object:
        with Session(engine) as s:
            return store.due_pending_rungs(s, "ep-00000001", NOW)

    return {
        "episodes_with_due_rungs(limit=200), mid-range now": due(NOW),
        "episodes_with_due_rungs(limit=200), few due": due(NOW - SPREAD / 2 + timedelta(days=2)),
        "due_pending_rungs(one episode)": one_episode,
        "unscheduled_timers(limit=500)": unscheduled,
    }


def run_backend(label: str, url: str, episodes: int, repeat: int) -> bool:
    """Fill and time one backend; print its lines; True if the due lookup met the aim."""
    engine = store.make_engine(url)
    try:
        store.migrate(engine)
        t0 = time.perf_counter()
        counts = fill(engine, episodes)
        print(
            f"{label}: filled {counts['episode']:,} episodes, {counts['work_item']:,} work items, "
            f"{counts['rung']:,} rungs in {time.perf_counter() - t0:.1f} s"
        )
        ok = True
        for what, fn in _lookups(engine).items():
            ms = measure(fn, repeat)
            aim = ""
            if what.startswith("episodes_with_due_rungs"):
                ok = ok and ms < AIM_MS
                aim = f" (aim < {AIM_MS:.0f} ms: {'met' if ms < AIM_MS else 'MISSED'})"
            print(f"{label}: {what}: {ms:.2f} ms median of {repeat}{aim}")
        return ok
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_due_lookup", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000, help="episodes to insert (default 100,000)")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per lookup; the median is reported")
    parser.add_argument("--backend", choices=("all", "sqlite", "postgresql"), default="all")
    args = parser.parse_args(argv)
    print(
        f"carepath bench: due lookup, {args.episodes:,} episodes, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    ok = True
    if args.backend in ("all", "sqlite"):
        with tempfile.TemporaryDirectory(prefix="carepath-bench-") as folder:
            ok = run_backend("sqlite", f"sqlite:///{Path(folder) / 'carepath.db'}", args.episodes, args.repeat) and ok
    if args.backend in ("all", "postgresql"):
        with pg.throwaway_database() as url:
            if url is None:
                print("postgresql: skipped (no server answers at 127.0.0.1:5432; set CAREPATH_BENCH_PG_URL)")
            else:
                ok = run_backend("postgresql", url, args.episodes, args.repeat) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
