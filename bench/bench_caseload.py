"""Benchmark: a real caseload. N synthetic episodes on the shipped pathways, driven on a compressed clock through a
real ``carepath up`` (a child process, its own data folder), measured from the store, the process tree and Prefect.

What it does, in order:

1. simulates N people over the shipped pathways (``engine.simulate``, the default behaviour model with a fixed
   seed: work done on time, late or never; consent for nine in ten; escalations acknowledged after a while);
2. stores a compressed clock (``--speed F``: pathway seconds per wall second) whose pathway start comes ``--lead``
   wall seconds later, writes a roster whose every role reaches a loopback receiver of this process, and starts
   ``carepath up --speed F --no-api`` in a temporary data folder: the embedded default (SQLite store, local Prefect
   server on SQLite), or with ``--postgres`` the store and a Prefect server of the bench's own on throwaway
   PostgreSQL databases (``up`` then uses that server, as in the scale-out topology);
3. records every person's actions when their pathway time comes, as coordinators do (``enroll``, ``record_consent``,
   ``record_event``, ``acknowledge``: what ``carepath event`` calls, each an in-process flow run), on
   ``--coordinators`` threads, for ``--days`` pathway days; with ``--kill`` / ``--kill-server``, kill -9 of ``up`` /
   of the Prefect server at ``--kill-at`` of the drive, ``--outage`` wall seconds down, the same command again;
4. waits for every rung that came due by the end to be escalated and delivered (or ``--bound`` to pass), then
   for Prefect's runs to settle, and appends one line of JSON to ``bench/results/caseload.jsonl`` and a plot of
   lateness over time to ``bench/results/caseload-<label>.png``.

How each figure is measured: ``bench/README.md`` (section ``bench_caseload``). Exit status 1 when an escalation was
lost or doubled or a Prefect run was left non-final.

Run from the repository root::

    .venv/bin/python -m bench.bench_caseload                              # 200 episodes, SQLite: 6-9 minutes
    .venv/bin/python -m bench.bench_caseload --postgres --kill --outage 60
    .venv/bin/python -m bench.bench_caseload --episodes 10000 --postgres --days 30 --speed 1440 --coordinators 8
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import pg
from bench.caseload_driver import GRACE, Coordinators, Done, caseload
from bench.caseload_procs import Sampler
from bench.caseload_stats import (
    Escalation,
    Reckoning,
    Rung,
    api_calls,
    leftover_runs,
    reckon,
    run_start_split,
    summary,
)
from bench.caseload_up import (
    ROOT,
    HealthProbe,
    Receiver,
    UpChild,
    flow_run_counts,
    log_lines,
    non_final_runs,
    run_starts,
    wait_until,
)
from bench.transition_support import Stopper
from engine.errors import CarepathError

__all__ = ["main"]

RESULTS = ROOT / "bench" / "results"
#: The pathway time the simulated caseload starts at (fixed, so a seed gives the same caseload every run).
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
#: The issue's targets (issue 12), checked and reported with each run.
TARGET_P99_S = 30.0
TARGET_ANSWER_P95_S = 1.0
TARGET_DRAIN_S = 120.0


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_caseload", description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=200, help="synthetic people, spread over the pathways (200)")
    p.add_argument("--days", type=float, default=3, help="pathway days driven (3)")
    p.add_argument("--speed", type=float, default=2880, help="pathway seconds per wall second (2880: a day in 30 s)")
    p.add_argument("--arrivals", type=float, default=1, help="people arrive within this many pathway days (1)")
    p.add_argument("--seed", type=int, default=12, help="the simulation's seed (12)")
    p.add_argument("--coordinators", type=int, default=4, help="threads recording actions at once (4)")
    p.add_argument("--postgres", action="store_true", help="the store and the Prefect server on PostgreSQL")
    p.add_argument("--kill", action="store_true", help="kill -9 `carepath up` mid-run, then start it again")
    p.add_argument("--kill-server", action="store_true", help="kill -9 the Prefect server mid-run")
    p.add_argument("--kill-at", type=float, default=0.4, help="when, as a fraction of the drive (0.4)")
    p.add_argument("--outage", type=float, default=60, help="wall seconds down before the restart (60)")
    p.add_argument(
        "--bound",
        type=float,
        help="a due rung not escalated this many wall s after due is lost (300; with a kill, the outage + 300)",
    )
    p.add_argument("--lead", type=float, default=30, help="wall seconds from starting `up` to pathway start (30)")
    p.add_argument("--settle", type=float, default=120, help="wall seconds to wait for runs to settle (120)")
    p.add_argument("--label", help="names the plot: caseload-<label>.png (default: <store>-<episodes>[-kill])")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the JSON line and the plot go")
    p.add_argument("--keep", action="store_true", help="keep the data folder (its logs) and say where")
    args = p.parse_args(argv)
    problems = [
        f"--{name}: {value:g} {why}"
        for name, value, bad, why in [
            ("episodes", args.episodes, args.episodes < 1, "is not a positive number"),
            ("days", args.days, args.days <= 0, "is not a positive number"),
            ("speed", args.speed, not 0 < args.speed <= 100_000, "is not between 0 and 100000"),
            ("coordinators", args.coordinators, args.coordinators < 1, "is not a positive number"),
            ("kill-at", args.kill_at, not 0 < args.kill_at < 1, "is not between 0 and 1"),
            ("outage", args.outage, args.outage < 0, "is negative"),
        ]
        if bad
    ]
    if problems:
        p.error("; ".join(problems))
    if args.bound is None:
        args.bound = 300.0 + (args.outage if args.kill or args.kill_server else 0.0)
    kill = "-kill" if args.kill else "-killserver" if args.kill_server else ""
    args.label = args.label or f"{'postgresql' if args.postgres else 'sqlite'}-{args.episodes}{kill}"
    return args


def _commit() -> dict[str, str]:
    """This checkout's commit (``+changes`` when ``engine/`` or ``flows/`` differ from it) and the last commit that
    changed ``engine/`` or ``flows/``: what was measured, whatever the bench's own commits."""

    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "unknown"

    dirty = "+changes" if git("status", "--porcelain", "--", "engine", "flows") else ""
    return {
        "head": git("rev-parse", "--short", "HEAD") + dirty,
        "engine": git("log", "-1", "--format=%h", "--", "engine", "flows"),
    }


def _configure(home: Path, port: int) -> dict[str, str]:
    """This process as ``carepath event`` is (set before Prefect is imported); the environment of ``up``."""
    from engine.orchestration.server import OFFLINE_ENV
    from engine.process import configure_process

    if "prefect" in sys.modules:
        raise RuntimeError("Prefect was imported before its settings were known")
    client = home.parent / "prefect-client"
    os.environ.update(
        {
            **OFFLINE_ENV,
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_HOME": str(client),
            "PREFECT_PROFILES_PATH": str(client / "profiles.toml"),
            "PREFECT_SERVER_LOGGING_LEVEL": "INFO",  # the server's access log: one line per API call, counted
            "CAREPATH_HOME": str(home),
            "CAREPATH_PATHWAYS": str(ROOT / "pathways"),
        }
    )
    for key in ("CAREPATH_DATABASE_URL", "CAREPATH_ROSTER", "PREFECT_API_KEY"):
        os.environ.pop(key, None)
    configure_process()
    return dict(os.environ)


class Run:
    """One benchmark run: its parts, its marks in time, what it measured."""

    def __init__(self, args: argparse.Namespace, stack: ExitStack, stopper: Stopper, folder: Path) -> None:
        from engine.orchestration.server import free_port

        self.args, self.stack, self.stopper = args, stack, stopper
        self.home = folder / "home"
        self.home.mkdir()
        self.port = free_port()
        self.env = _configure(self.home, self.port)
        self.marks: dict[str, float] = {}
        self.problems: list[str] = []
        self.server: Any = None  # the bench's own Prefect server (--postgres)
        self.server_log = self.home / "prefect-server.log"
        self.load_start = [round(x, 2) for x in os.getloadavg()]

    # ------------------------------------------------------------------------------------------- set up

    def databases(self) -> None:
        if not self.args.postgres:
            return
        store = self.stack.enter_context(pg.throwaway_database())
        prefect = self.stack.enter_context(pg.throwaway_database())
        if store is None or prefect is None:
            raise SystemExit("--postgres: no PostgreSQL answers at 127.0.0.1:5432 (set CAREPATH_BENCH_PG_URL)")
        self.env["CAREPATH_DATABASE_URL"] = store
        self.prefect_db = prefect.replace("postgresql://", "postgresql+asyncpg://", 1)

    def start_server(self) -> None:
        """--postgres: a Prefect server of the bench's own on PostgreSQL, on the port ``up`` is told about."""
        self.server = self._own_server()
        self.stopper.cleanups.append(lambda: self.server.stop())
        self.stack.callback(lambda: self.server.stop())

    def _own_server(self) -> Any:
        """The bench's own Prefect server on PostgreSQL (started anew after a kill), logging every request."""
        from engine.orchestration.server import start_local_server

        return start_local_server(
            self.home / "prefect-own",
            self.port,
            log_path=self.server_log,
            database_url=self.prefect_db,
            extra_env={"PREFECT_SERVER_LOGGING_LEVEL": "INFO"},
        )

    def prepare(self) -> None:
        from engine.app import Settings
        from engine.app.pathways import register_pathways
        from engine.clock import CompressedClock
        from engine.orchestration.flows import dispatching_app

        log = logging.FileHandler(self.home / "bench.log")  # Carepath's warnings in this process (outages)
        log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("carepath").addHandler(log)
        logging.getLogger("carepath").propagate = False
        self.databases()
        self.receiver = Receiver().start()
        self.stack.callback(self.receiver.stop)
        pathways = sorted((ROOT / "pathways").glob("*.yaml"))
        t0 = time.perf_counter()
        span = timedelta(days=self.args.days)
        self.people = caseload(
            pathways,
            self.args.episodes,
            int(-(-self.args.days // 1)),
            self.args.seed,
            START,
            timedelta(days=min(self.args.arrivals, self.args.days)),
        )
        for person in self.people:  # only what happens within the drive
            person.steps = [s for s in person.steps if s.at < START + span]
        self.people = [p for p in self.people if p.steps]
        steps = Counter(s.kind for p in self.people for s in p.steps)
        print(f"caseload: {len(self.people):,} people, {dict(steps)} in {time.perf_counter() - t0:.1f} s", flush=True)
        up_env = dict(self.env)
        if self.args.postgres:
            self.start_server()
        else:
            up_env.pop("PREFECT_API_URL")  # `up` starts its own server, on this port
        self.settings = Settings.from_env(self.env)
        self.app = dispatching_app(self.settings)
        specs = register_pathways(self.app, ROOT / "pathways")
        self.pathway_ids = [s.id for s in specs]
        roles = sorted({r for s in specs for r in s.roles})
        (self.home / "roster.yaml").write_text(self.receiver.roster(roles))
        self.marks["up_started"] = time.time()
        wall_origin = datetime.fromtimestamp(self.marks["up_started"] + self.args.lead, UTC)
        self.clock = CompressedClock(origin=START, wall_origin=wall_origin, factor=self.args.speed)
        self.app.set_clock(self.clock)
        self.up = UpChild(self.home, self.port, self.args.speed, up_env)
        self.stack.callback(self.up.cleanup)
        self.stopper.cleanups.append(self.up.cleanup)
        self.up.start()
        self.sampler = Sampler(self._roots).start()
        self.stack.callback(self.sampler.stop)
        self.probe = HealthProbe(self.settings.api_url).start()
        self.stack.callback(self.probe.stop)
        self.up.wait_served(self.settings, self.pathway_ids, datetime.now(UTC), timeout=300)
        self.marks["served"] = time.time()
        print(f"`carepath up` serving after {self.marks['served'] - self.marks['up_started']:.1f} s", flush=True)

    def _roots(self) -> list[int]:
        roots = [self.up.pid]
        if self.server is not None and self.server.running():
            roots.append(self.server.process.pid)
        return roots

    def _to_wall(self, at: datetime) -> float:
        return float(self.clock.wall_time(at).timestamp())

    # ------------------------------------------------------------------------------------------- drive

    def drive(self) -> Coordinators:
        from engine.app import Settings
        from engine.orchestration.flows import dispatching_app

        # the coordinators' desk is one long-lived process, as the API is: one App shared by the threads, answering
        # from the store and following up on its dispatcher's own thread (several requests per run when busy)
        desk = dispatching_app(Settings.from_env(self.env), deferred=True)
        _ = desk.engine, desk.clock, desk.service  # warmed before the threads start
        apps = [desk] * self.args.coordinators
        start = self._to_wall(START)
        end = self._to_wall(START + timedelta(days=self.args.days))
        if time.time() > start:
            self.problems.append(f"the drive started {time.time() - start:.0f} s late (`up` took long to serve)")
        else:
            time.sleep(start - time.time())
        self.marks["drive_start"], self.marks["drive_until"] = start, end
        self._window_open()
        coordinators = Coordinators(self.people, apps, end, self._to_wall)
        thread = threading.Thread(target=coordinators.run, name="coordinators", daemon=True)
        thread.start()
        kill_at = start + (end - start) * self.args.kill_at if (self.args.kill or self.args.kill_server) else None
        last = 0.0
        while thread.is_alive():
            thread.join(timeout=1.0)
            self.stopper.check()
            if kill_at is not None and time.time() >= kill_at:
                kill_at = None
                self.crash()
            if time.time() - last >= 10:
                last = time.time()
                self.progress(coordinators, start, end)
        self.marks["drive_end"] = time.time()
        self.horizon = START + timedelta(days=self.args.days)  # rungs due by the end of the drive are judged
        if not desk.dispatcher.flush(GRACE):
            self.problems.append(f"follow-ups still queued {GRACE:.0f} s after the drive (left to the sweep)")
        desk.close()
        return coordinators

    def progress(self, coordinators: Coordinators, start: float, end: float) -> None:
        done = coordinators.snapshot()
        total = sum(len(p.steps) for p in self.people)
        recent = [d.lag for d in done[-200:]]
        raised, fired = self._counts()
        sample = self.sampler.samples[-1] if self.sampler.samples else None
        kinds = self.sampler.kinds()
        elapsed = time.time() - start
        print(
            f"[{elapsed:6.0f}/{end - start:.0f} s] day {elapsed * self.args.speed / 86400:4.1f}"
            f" | actions {len(done):,}/{total:,} ({coordinators.behind()} due, not started; "
            f"failed {sum(d.outcome == 'failed' for d in done)}, "
            f"lag p95 {summary(recent)['p95'] or 0:.1f} s) | escalations {raised:,}, rungs fired {fired:,}"
            f" | up tree CPU {self.sampler.cpu():.0f} s, memory {(sample.rss if sample else 0) / 2**20:.0f} MB, "
            f"flow-run processes {kinds.get('flow-run', 0)} | load {os.getloadavg()[0]:.1f}"
            + (" | PREFECT NOT ANSWERING" if self.probe.unanswered(since=time.time() - 5)["total_s"] else ""),
            flush=True,
        )

    def _counts(self) -> tuple[int, int]:
        from sqlalchemy import func, select

        from engine.store import EscalationRecord, RungRecord

        with self.app.engine.connect() as conn:
            raised = conn.execute(select(func.count()).select_from(EscalationRecord)).scalar_one()
            fired = conn.execute(
                select(func.count()).select_from(RungRecord).where(RungRecord.status == "fired")  # type: ignore[arg-type]
            ).scalar_one()
        return int(raised), int(fired)

    def _window_open(self) -> None:
        self.cpu0 = self.sampler.cpu()
        self.bench_cpu0 = _own_cpu()
        self.machine_cpu0 = _machine_cpu()
        self.log0 = _size(self.server_log)

    def _window_close(self) -> None:
        """The end of what the per-unit figures divide: the drive and the drain that finished its work."""
        from sqlalchemy import func, select

        from engine.store import EpisodeRecord, InboundEventRecord

        self.sampler.sample()
        self.cpu1 = self.sampler.cpu()
        self.kinds1 = self.sampler.kinds()
        self.bench_cpu1 = _own_cpu()
        self.machine_cpu1 = _machine_cpu()
        self.log1 = _size(self.server_log)
        with self.app.engine.connect() as conn:
            self.episodes = int(conn.execute(select(func.count()).select_from(EpisodeRecord)).scalar_one())
            self.applied = int(
                conn.execute(
                    select(func.count()).select_from(InboundEventRecord).where(InboundEventRecord.status == "applied")  # type: ignore[arg-type]
                ).scalar_one()
            )
        _raised, self.fired = self._counts()

    # ------------------------------------------------------------------------------------------- crash

    def crash(self) -> None:
        """kill -9 of ``up`` and/or the Prefect server, ``--outage`` s down, the same command again."""
        from engine.orchestration.server import api_reachable

        args, kill = self.args, {}
        embedded_server = self.up.server_pid() if not args.postgres else None
        if args.kill:
            self.sampler.retire(self.up.pid)
        if args.kill_server and self.server is not None:
            self.sampler.retire(self.server.process.pid)
        self.marks["killed"] = time.time()
        if args.kill:
            self.up.kill()
            kill["up"] = True
        if args.kill_server:
            if self.server is not None:
                self.server.stop(grace=0)
            elif embedded_server is not None:
                _kill_group(embedded_server)
            kill["server"] = True
        print(
            f"killed {' and '.join(kill)} (kill -9) at {self.marks['killed'] - self.marks['drive_start']:.0f} s",
            flush=True,
        )
        outage = args.outage if (args.kill or self.server is not None) else 0.0
        time.sleep(outage)  # an embedded server killed alone is restarted by `up` itself: no outage of ours
        self.marks["restarted"] = time.time()
        if args.kill_server and self.server is not None:
            self.server = self._own_server()
        if args.kill:
            self.up.start()
            self.up.wait_served(self.settings, self.pathway_ids, datetime.now(UTC), timeout=600)
        else:
            wait_until("the Prefect server to answer again", lambda: api_reachable(self.settings.api_url() or ""), 600)
        self.marks["served_again"] = time.time()
        if self.marks["restarted"] > self._to_wall(START + timedelta(days=self.args.days)):
            self.problems.append("the restart came after the drive ended: the backlog counts rungs due by its end")
        print(
            f"restarted after {outage:.0f} s down; serving again "
            f"{self.marks['served_again'] - self.marks['restarted']:.1f} s later",
            flush=True,
        )

    # ------------------------------------------------------------------------------------------- after

    def rows(self) -> tuple[list[Rung], list[Escalation]]:
        """The store's rungs (with when each stopped being able to fire) and escalations, in wall seconds."""
        from sqlalchemy import select

        from engine.clock import utc
        from engine.store import EscalationRecord, RungRecord, WorkItemRecord

        r, w, e = RungRecord.__table__, WorkItemRecord.__table__, EscalationRecord.__table__  # type: ignore[attr-defined]
        with self.app.engine.connect() as conn:
            rung_rows = conn.execute(
                select(
                    r.c.id,
                    r.c.work_item_id,
                    r.c.index,
                    r.c.due_at,
                    r.c.scheduled_at,
                    r.c.flow_run_id,
                    w.c.kind,
                    w.c.closed_at,
                ).join(w, w.c.id == r.c.work_item_id)
            ).all()
            esc_rows = conn.execute(
                select(e.c.rung_id, e.c.work_item_id, e.c.raised_at, e.c.acknowledged_at, e.c.delivery_done_at)
            ).all()
        acked: dict[str, datetime] = {}
        for row in esc_rows:
            if row.acknowledged_at is not None:
                at = utc(row.acknowledged_at)
                acked[row.work_item_id] = min(at, acked.get(row.work_item_id, at))
        rungs = []
        for row in rung_rows:
            stops = [utc(t) for t in (row.closed_at, acked.get(row.work_item_id)) if t is not None]
            scheduled = self._to_wall(utc(row.scheduled_at)) if row.scheduled_at is not None else None
            stopped = self._to_wall(min(stops)) if stops else None
            due = self._to_wall(utc(row.due_at))
            rungs.append(Rung(row.id, row.kind, due, stopped, scheduled, row.flow_run_id, row.index))
        escalations = [
            Escalation(
                row.rung_id,
                self._to_wall(utc(row.raised_at)),
                utc(row.delivery_done_at).timestamp() if row.delivery_done_at is not None else None,
            )
            for row in esc_rows
        ]
        return rungs, escalations

    def artifacts_behind(self) -> dict[str, int]:
        """Episodes whose Prefect artifacts show an older revision than the store, and of those how many changed
        longer ago than the sweep takes to publish them again (REPUBLISH_AFTER and a minute for a tick and its pass;
        changed during a Prefect outage, they count from its end, which this does not know)."""
        from sqlalchemy import func, select, text

        from engine.app.sweep import REPUBLISH_AFTER
        from engine.store import EpisodeRecord
        from engine.store.records.core import UNPUBLISHED

        promised = REPUBLISH_AFTER + timedelta(minutes=1)
        before = self.app.clock.pathway_time(self.app.clock.wall_time(self.app.clock.now()) - promised)
        e = EpisodeRecord.__table__  # type: ignore[attr-defined]
        with self.app.engine.connect() as conn:
            behind = conn.execute(select(func.count()).select_from(e).where(text(UNPUBLISHED))).scalar_one()
            late = conn.execute(
                select(func.count()).select_from(e).where(text(UNPUBLISHED), e.c.updated_at <= before)
            ).scalar_one()
        return {"episodes": behind, "beyond_sweep": late}

    def judge(self) -> Reckoning:
        rungs, escalations = self.rows()
        horizon = self._to_wall(self.horizon)
        return reckon(
            rungs, escalations, self.receiver.snapshot(), horizon=horizon, now=time.time(), bound=self.args.bound
        )

    def drain(self) -> Reckoning:
        """Until every rung due by the end of the drive is escalated and delivered, stopped, or lost."""
        t0 = time.time()
        while True:
            found = self.judge()
            self.stopper.check()
            if found.pending == 0:
                self.marks["drained"] = time.time()
                self._window_close()
                print(
                    f"drained {time.time() - t0:.0f} s after the drive: {found.expected} due, {found.raised} "
                    f"escalated, {found.delivered} delivered, {len(found.lost)} lost",
                    flush=True,
                )
                return found
            print(f"draining: {found.pending} due rungs not escalated or delivered yet", flush=True)
            time.sleep(5)

    def flush(self) -> None:
        _flush(self.settings)

    def settle_runs(self) -> tuple[dict[str, list[str]], int]:
        """Wait (up to ``--settle``) for no Prefect run to be left non-final but the timers of later rungs (runs to
        start after the drive's end, or still ahead); also returns how many runs start after that (counted only)."""
        deadline = time.monotonic() + self.args.settle
        while True:
            now, end = time.time(), self._to_wall(self.horizon)
            try:
                rows, later = non_final_runs(self.settings, min(now, end))
            except (httpx.HTTPError, CarepathError) as exc:  # a stalled SQLite server answers 500: ask again
                if time.monotonic() > deadline:
                    self.problems.append(f"runs not read after the drain: {type(exc).__name__}")
                    return {"timers": [], "in_flight": [], "left": ["(not read: Prefect did not answer)"]}, 0
                print(f"settling: Prefect did not answer ({type(exc).__name__}); asking again", flush=True)
                time.sleep(10)
                continue
            found = leftover_runs(rows, now, horizon=end)
            if not found["left"] or time.monotonic() > deadline:
                return found, later
            print(f"settling: {len(found['left'])} runs left behind, {len(found['in_flight'])} in flight", flush=True)
            time.sleep(10)


def _flush(settings: Any) -> None:
    """Send what this process's Prefect still queues (events, logs) while the server answers: otherwise Prefect
    retries it at exit, for minutes, against a server that is gone."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    from engine.orchestration.adapters import prefect_api

    with prefect_api(settings):
        EventsWorker.drain_all(timeout=60)
        APILogWorker.drain_all(timeout=60)


def _machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (every process: PostgreSQL's backends, the Prefect server, `up`
    and this bench), from ``/proc/stat``; 0.0 where there is none. What bounds the caseload on one machine."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle and iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _backlog(run: Run, rungs: list[Rung], escalations: list[Escalation]) -> dict[str, Any] | None:
    """After a restart: the rungs that came due (unmet) before it, and how long until the last was delivered. Only
    rungs due by the end of the drive count (what the drain waited for), should the restart come after it."""
    if "restarted" not in run.marks:
        return None
    restart = run.marks["restarted"]
    cut = min(restart, run._to_wall(run.horizon))
    by_rung = {e.rung_id: e for e in escalations}
    due = [r for r in rungs if r.kind != "timeout" and r.due <= cut and (r.stopped is None or r.stopped >= r.due)]
    # a rung the restart found due is done when its escalation was delivered, or when a late event met its item
    # before the catch-up reached it (nothing was left to escalate: counted apart, as ``met_before_escalated``)
    met = [r for r in due if r.id not in by_rung and r.stopped is not None and r.stopped > restart]
    missed = [r for r in due if r.id not in by_rung and r.stopped is None]
    done = [by_rung[r.id].delivered or by_rung[r.id].raised for r in due if r.id in by_rung]
    done += [r.stopped for r in met if r.stopped is not None]
    during = [r for r in due if r.due >= run.marks["killed"]]
    return {
        "killed_at_s": round(run.marks["killed"] - run.marks["drive_start"], 1),
        "outage_s": round(restart - run.marks["killed"], 1),
        "served_after_restart_s": round(run.marks["served_again"] - restart, 1),
        "came_due_while_down": len(during),
        "drain_s": round(max(max(done) - restart, 0.0), 1) if done and not missed else None,
        "not_escalated": len(missed),
        "met_before_escalated": len(met),
    }


def _outside(run: Run, rungs: list[Rung], found: Reckoning) -> list[float]:
    """Lateness of the rungs that did not come due while Carepath was down (between the kill and the restart)."""
    due = {r.id: r.due for r in rungs}
    down = (run.marks["killed"], run.marks["restarted"])
    return [v for k, v in found.lateness.items() if not down[0] <= due.get(k, 0.0) <= down[1]]


def _locked(run: Run, coordinators: Coordinators) -> dict[str, int]:
    """``database is locked`` errors: of the Carepath store (in ``up``'s log, its flow runs' included, and in the
    coordinators' failed attempts) and of the Prefect server's own database (each error once: the server logs the
    driver's error and SQLAlchemy's)."""

    def errors(lines: list[str]) -> int:
        return sum("database is locked" in line and not line.startswith("sqlite3.") for line in lines)

    store = errors(log_lines(run.up.log)) + sum(n for r, n in coordinators.reasons.items() if "locked" in r)
    return {"store": store, "prefect_server": errors(log_lines(run.server_log))}


def report(
    run: Run, coordinators: Coordinators, found: Reckoning, runs: dict[str, list[str]], later: int
) -> dict[str, Any]:
    args, marks = run.args, run.marks
    rungs, escalations = run.rows()
    done: list[Done] = coordinators.snapshot()
    answered = [d for d in done if d.outcome in ("ok", "refused")]
    drive = marks["drive_until"] - marks["drive_start"]  # as planned; a crash's restart or late answers add to it
    calls = api_calls(log_lines(run.server_log, run.log0, run.log1))
    transitions = run.episodes + run.applied + run.fired
    up_cpu, bench_cpu = run.cpu1 - run.cpu0, run.bench_cpu1 - run.bench_cpu0
    machine_cpu = run.machine_cpu1 - run.machine_cpu0
    kinds = run.sampler.kinds()
    total_calls = sum(n for k, n in calls.items() if not k.startswith("("))
    lateness = list(found.lateness.values())
    backlog = _backlog(run, rungs, escalations)
    answer = summary([d.took for d in answered if d.kind in ("event", "consent")], 2)
    counts = flow_run_counts(run.settings.api_url() or "")
    started, start_lags = run_starts(run.settings, "deadline")
    made_late = [rung for rung in rungs if rung.id in found.timer_after_due]
    record: dict[str, Any] = {
        "label": args.label,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {
            "cores": os.cpu_count(),
            "load_start": run.load_start,
            "load_end": list(os.getloadavg()),
            "python": platform.python_version(),
        },
        "store": "postgresql" if args.postgres else "sqlite",
        "prefect_db": "postgresql" if args.postgres else "sqlite",
        "episodes": args.episodes,
        "speed": args.speed,
        "days": args.days,
        "seed": args.seed,
        "coordinators": args.coordinators,
        "wall_s": {
            "serve": round(marks["served"] - marks["up_started"], 1),
            "drive": round(drive, 1),
            "drive_overrun": round(marks["drive_end"] - marks["drive_until"], 1),
            "drain": round(marks["drained"] - marks["drive_end"], 1),
            "total": round(time.time() - marks["up_started"], 1),
        },
        "actions": {
            "planned": sum(len(p.steps) for p in run.people),
            "ok": sum(d.outcome == "ok" for d in done),
            "refused": sum(d.outcome == "refused" for d in done),
            "attempts_failed": sum(d.outcome == "failed" for d in done),
            "not_started": coordinators.not_started,
            "unanswered_at_end": coordinators.unanswered,
            "reasons": dict(coordinators.reasons.most_common(8)),
        },
        "events_per_s": round(len(answered) / drive, 2),
        "lag_s": summary([d.lag for d in done]),
        "event_answer_s": answer,
        "enroll_answer_s": summary([d.took for d in answered if d.kind == "enroll"], 2),
        "escalations": {
            "expected": found.expected,
            "raised": found.raised,
            "delivered": found.delivered,
            "met_late_before_escalating": found.raced,
            "lost": len(found.lost),
            "doubled": len(found.doubled),
            "lost_examples": dict(list(found.lost.items())[:5]),
            "doubled_examples": dict(list(found.doubled.items())[:5]),
            "messages_received": run.receiver.received,
        },
        "lateness_s": summary(lateness),
        "lateness_by_timer_s": {  # a follow-up that scheduled the rung's run late, or a run that fired it late
            "run_made_after_due": summary([v for r, v in found.lateness.items() if r in found.timer_after_due]),
            # of those, a first rung (its run is the request's to schedule) or a later one (scheduled when the rung
            # before it fired)
            "run_made_after_due_first_rung": summary([found.lateness[r.id] for r in made_late if r.index == 0]),
            "run_made_after_due_by_kind": dict(Counter(f"{r.kind} #{r.index + 1}" for r in made_late)),
            "run_waiting_in_time": summary([v for r, v in found.lateness.items() if r not in found.timer_after_due]),
        },
        "lateness_by_run_start_s": {k: summary(v) for k, v in run_start_split(rungs, found.lateness, started).items()},
        "deadline_run_start_lag_s": summary(start_lags),
        "lateness_outside_outage_s": None if backlog is None else summary(_outside(run, rungs, found)),
        "delivery_lateness_s": summary(list(found.delivery_lateness.values())),
        "transitions": {"enrolled": run.episodes, "events_applied": run.applied, "rungs_fired": run.fired},
        "cpu_s": {
            "up_tree": round(up_cpu, 1),
            "bench": round(bench_cpu, 1),
            "per_event": round((up_cpu + bench_cpu) / run.applied, 3) if run.applied else None,
            "per_fired_rung": round(up_cpu / run.fired, 3) if run.fired else None,
            "machine": round(machine_cpu, 1),
            "machine_per_transition": round(machine_cpu / transitions, 4) if transitions else None,
        },
        "processes": dict(kinds),
        "flow_run_processes_per_fired_rung": (
            round(run.kinds1.get("flow-run", 0) / run.fired, 2) if run.fired else None
        ),
        "peak_memory_mb": round(run.sampler.peak_rss / 2**20),
        "prefect_api": {
            "calls": total_calls,
            "per_transition": round(total_calls / max(transitions, 1), 1),
            "http_5xx": calls.get("(5xx)", 0),
            "top": dict(Counter({k: n for k, n in calls.items() if not k.startswith("(")}).most_common(8)),
        },
        "flow_runs_ended": counts,
        "kill": backlog,
        "prefect_unanswered": run.probe.unanswered(since=marks["served"]),
        "database_locked": _locked(run, coordinators),
        "runs_non_final": {
            "timers": len(runs["timers"]) + later,
            "in_flight": len(runs["in_flight"]),
            "left": len(runs["left"]),
        },
        "runs_left_examples": runs["left"][:5],
        "problems": run.problems,
    }
    p99 = record["lateness_s"]["p99"]
    record["targets"] = {  # None: this run could not tell (nothing escalated, no event answered, no kill)
        "lateness_p99_le_30s": None if p99 is None else p99 <= TARGET_P99_S,
        "none_lost": not found.lost,
        "none_doubled": not found.doubled,
        "no_run_left": not runs["left"],
        "event_answer_p95_le_1s": None if answer["p95"] is None else answer["p95"] <= TARGET_ANSWER_P95_S,
        "drain_le_120s": None if backlog is None else (backlog["drain_s"] or 1e9) <= TARGET_DRAIN_S,
        "no_store_lock_errors": record["database_locked"]["store"] == 0,
    }
    return record


def plot(run: Run, found: Reckoning, path: Path) -> None:
    """Lateness of each escalation against when its rung came due; the kill and the restart as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rungs = {r.id: r for r in run.rows()[0]}
    t0 = run.marks["drive_start"]
    points = sorted((rungs[k].due - t0, v) for k, v in found.lateness.items() if k in rungs)
    delivered = sorted((rungs[k].due - t0, v) for k, v in found.delivery_lateness.items() if k in rungs)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    if delivered:
        ax.scatter(
            [x for x, _ in delivered], [y for _, y in delivered], s=6, color="tab:orange", alpha=0.5, label="delivered"
        )
    if points:
        ax.scatter([x for x, _ in points], [y for _, y in points], s=6, color="tab:blue", alpha=0.7, label="escalated")
    lost = [rungs[k].due - t0 for k in found.lost if k in rungs]
    if lost:
        top = max([run.args.bound] + [y for _, y in points + delivered])
        ax.scatter(
            lost, [top] * len(lost), s=30, marker="x", color="red", label=f"lost ({len(lost)}; drawn at the bound)"
        )
    served = run.marks["served"]
    spells = [(max(a, served), b) for a, b in run.probe.spells if b > served]
    for n, (a, b) in enumerate(spells):
        ax.axvspan(a - t0, b - t0, color="grey", alpha=0.15, label="Prefect not answering" if n == 0 else None)
    ax.axhline(TARGET_P99_S, color="grey", linestyle=":", linewidth=1, label=f"target p99 ({TARGET_P99_S:.0f} s)")
    ax.axvline(run._to_wall(run.horizon) - t0, color="black", linewidth=1, label="drive ends")
    for mark, colour in (("killed", "red"), ("restarted", "green")):
        if mark in run.marks:
            ax.axvline(run.marks[mark] - t0, color=colour, linestyle="--", linewidth=1, label=mark)
    ax.set_xlabel("rung due (wall s after the drive started)")
    ax.set_ylabel("wall s after due")
    store = "PostgreSQL" if run.args.postgres else "SQLite"
    ax.set_title(
        f"carepath caseload: {run.args.episodes:,} episodes, {run.args.days:g} days at {run.args.speed:g}x, {store}",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = _args(argv)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1 <pid>: where is every thread?
    load = [round(x, 2) for x in os.getloadavg()]
    print(
        f"carepath bench: caseload of {args.episodes:,} episodes, {args.days:g} pathway days at {args.speed:g}x "
        f"({args.days * 86400 / args.speed:.0f} s of drive), {'PostgreSQL' if args.postgres else 'SQLite'}, "
        f"{os.cpu_count()} CPUs, load {load[0]}",
        flush=True,
    )
    with Stopper() as stopper, ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="carepath-caseload-"))
        if not args.keep:
            stack.callback(_remove, folder)
        run = Run(args, stack, stopper, folder)
        run.prepare()
        coordinators = run.drive()
        found = run.drain()
        runs, later = run.settle_runs()
        record = report(run, coordinators, found, runs, later)
        run.flush()
        record["artifacts_behind"] = run.artifacts_behind()  # once Prefect's queued events and logs are sent
        args.results.mkdir(parents=True, exist_ok=True)
        with (args.results / "caseload.jsonl").open("a") as out:
            out.write(json.dumps(record) + "\n")
        picture = args.results / f"caseload-{args.label}.png"
        plot(run, found, picture)
        print(json.dumps(record))
        print(f"wrote {args.results / 'caseload.jsonl'} and {picture}" + (f"; data in {folder}" if args.keep else ""))
        bad = [k for k in ("lost", "doubled") if record["escalations"][k]] + (["runs left"] if runs["left"] else [])
        for name, met in record["targets"].items():
            if met is False:
                print(f"target missed: {name}")
        if bad:
            print(
                "!" * 72
                + f"\nFAILED: {', '.join(bad)}: "
                + json.dumps({**record["escalations"], "runs_left": runs["left"][:5]})
                + "\n"
                + "!" * 72
            )
            return 1
    return 0


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
