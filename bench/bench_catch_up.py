"""Benchmark: a restart's catch-up, one sweep pass over an outage's backlog, one episode at a time against side by
side (:data:`engine.app.sweep.FOLLOW_UPS_AT_ONCE`).

``--episodes`` people are enrolled on the seed detox pathway on a real store (a SQLite file, or PostgreSQL with
``--postgres``); their timers are lost (the outage: no run will start), the clock jumps ``--hours`` ahead, and one
sweep pass fires every overdue rung and delivers it through the real roster notifier (apprise, JSON over HTTP) to a
loopback receiver whose contacts answer after ``--contact-ms`` (a pager or webhook answers in 50-300 ms). That is
what ``carepath up`` does after a restart before it serves again (:func:`engine.orchestration.up.catch_up`), less
Prefect's cancels. Each setting runs on a fresh store with the same enrollments; one JSON line each.

Run from the repository root::

    .venv/bin/python -m bench.bench_catch_up                        # 300 episodes, SQLite, 1 and 4 at a time
    .venv/bin/python -m bench.bench_catch_up --postgres --episodes 1000
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import pg
from bench.caseload_up import Receiver

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROLES = ("care-coordinator", "supervisor", "prescriber", "peer-recovery-coach", "detox-intake", "residential-intake")


@contextlib.contextmanager
def database(postgres: bool, folder: Path) -> Iterator[str]:
    """A fresh, migrated store: a SQLite file in ``folder`` or a throwaway PostgreSQL database."""
    from engine import store

    if not postgres:
        url = f"sqlite:///{folder / 'carepath.db'}"
        store.migrate(store.make_engine(url))
        yield url
        return
    with pg.throwaway_database() as url:
        if url is None:
            raise SystemExit("PostgreSQL is not answering on 127.0.0.1:5432")
        store.migrate(store.make_engine(url))
        yield url


def one(episodes: int, hours: float, at_once: int, contact_ms: float, postgres: bool) -> dict[str, Any]:
    """One catch-up on a fresh store: enroll, lose the timers, jump the clock, time one sweep pass."""
    from engine.app import Settings, enroll, sweep
    from engine.app.inline import inline_app
    from engine.app.pathways import register_pathways
    from engine.clock import ManualClock
    from engine.notify.delivery import RosterNotifier

    receiver = Receiver(delay=contact_ms / 1000).start()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "roster.yaml").write_text(receiver.roster(list(ROLES)))
        with database(postgres, folder) as url:
            env = {"CAREPATH_HOME": str(folder), "CAREPATH_DATABASE_URL": url}
            clock = ManualClock(T0)
            app = inline_app(Settings.from_env(env), clock, notifier=RosterNotifier(folder / "roster.yaml", env))
            register_pathways(app, ROOT / "pathways")
            for n in range(episodes):
                enroll(app, "detox-to-aftercare", f"P-CATCH-{n:05}")
            assert app.scheduler.lose() > 0  # type: ignore[attr-defined]
            clock.advance(timedelta(hours=hours))
            # the module, not the package's `sweep`, which is the function
            importlib.import_module("engine.app.sweep").FOLLOW_UPS_AT_ONCE = at_once
            sent_before = receiver.received  # what enrolling sent (rungs due at once)
            cpu, started = time.process_time(), time.perf_counter()
            report = sweep(app, reconcile=False)
            wall = time.perf_counter() - started
            app.close()
    receiver.stop()
    return {
        "bench": "catch_up",
        "store": "postgresql" if postgres else "sqlite",
        "episodes": episodes,
        "hours_down": hours,
        "contact_ms": contact_ms,
        "at_once": at_once,
        "fired": report.fired,
        "messages": receiver.received - sent_before,
        "problems": len(report.problems),
        "wall_s": round(wall, 2),
        "rungs_per_s": round(report.fired / wall, 1) if wall else None,
        "cpu_s": round(time.process_time() - cpu, 2),
        "machine": {"cores": os.cpu_count(), "load": [round(x, 2) for x in os.getloadavg()]},
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--hours", type=float, default=30.0, help="how long Carepath was down (pathway hours)")
    parser.add_argument("--contact-ms", type=float, default=100.0, help="how long a contact takes to answer")
    parser.add_argument("--at-once", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--results", type=Path, help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    for at_once in args.at_once:
        line = json.dumps(one(args.episodes, args.hours, at_once, args.contact_ms, args.postgres))
        print(line, flush=True)
        if args.results:
            with args.results.open("a") as out:
                out.write(line + "\n")


if __name__ == "__main__":
    main()
