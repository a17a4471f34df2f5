"""Benchmark: Prefect API calls and CPU per unit of Carepath's work, counted at the server, for the README's sizing
estimate ("Running at scale").

A local Prefect server with its access log on (``PREFECT_SERVER_LOGGING_LEVEL=INFO``: one line per HTTP request,
whoever sent it) on a throwaway PostgreSQL database; a SQLite store; one serving process (``python -m
flows.serve``) on a 30x clock; the pathway of ``tests/data/scale-out-test.yaml`` (six rungs an episode, due 60-210
wall seconds after enrollment, all escalating). In order, each a window of the access log:

1. **idle**: ``--idle`` seconds (default 60) with the deployments served and nothing due: calls a second;
2. **enroll**: ``--episodes`` enrollments (default 5) in this process (the follow-up schedules each rung's run);
3. **events**: one ``care.completed`` per episode of a second group enrolled like the first, in this process (the
   episode ends: its runs are cancelled), counted apart from that group's enrollments;
4. **fired**: until every rung of the first group escalated and was delivered (to nobody: no roster): the
   calls of the deadline runs, their serving process and the sweep, less the idle rate; and the CPU seconds of the
   serving process and its children (the runs) over the same window, less its idle CPU, per fired rung.

Over windows 2-4: the server's CPU (API and services, less its idle CPU) per API call; how much its database grew
per enrollment or event (windows 2-3, with the second group's enrollments) and per fired rung (window 4).

Events go to the server over one websocket a process and are not counted. Run from the repository root::

    .venv/bin/python -m bench.bench_serving_calls
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import pg

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
PATHWAY_FILE = ROOT / "tests" / "data" / "scale-out-test.yaml"
PATHWAY = "scale-out-test"
RUNGS_PER_EPISODE = 6
#: Pathway seconds a wall second: the first rung is due a minute after enrollment, after the events window.
FACTOR = 30.0
_REQUEST = re.compile(r'"([A-Z]+) /api(\S*) HTTP/1\.1" (\d{3})')
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class AccessLog:
    """The server's access log, read from where the last window ended."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def window(self) -> Counter[str]:
        """``METHOD /path`` (ids as ``{id}``) -> requests since the last call."""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
            self.offset = log.tell()
        return Counter(f"{m[1]} {_ID.sub('{id}', m[2].split('?')[0])}" for m in _REQUEST.finditer(text))


def _cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of its children it has waited for (the runs it started), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _db_size(url: str) -> int:
    """The Prefect database's size on disk (its tables, indexes and TOAST)."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def _table_sizes(url: str) -> Counter[str]:
    """Bytes of each of the Prefect database's tables (heap, indexes, TOAST)."""
    import psycopg

    query = "SELECT relname, pg_total_relation_size(relid) FROM pg_catalog.pg_statio_user_tables"
    with psycopg.connect(url) as conn:
        return Counter({str(name): int(size) for name, size in conn.execute(query).fetchall()})


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def run(folder: Path, prefect_db: str, episodes: int, idle: float) -> dict[str, Any]:
    from sqlmodel import Session, select

    from engine.app import Settings, enroll, record_event
    from engine.app.pathways import register_pathways
    from engine.clock import CompressedClock
    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.flows import dispatching_app
    from engine.orchestration.prefect_api import run_sync, wait_for_deployments
    from engine.orchestration.server import start_local_server, stop_process_group
    from engine.store import EscalationRecord

    pathways = folder / "pathways"
    pathways.mkdir()
    shutil.copy(PATHWAY_FILE, pathways)
    server = start_local_server(
        folder / "prefect",
        log_path=folder / "server.log",
        database_url=prefect_db.replace("postgresql://", "postgresql+asyncpg://", 1),
        extra_env={"PREFECT_SERVER_LOGGING_LEVEL": "INFO"},
    )
    serving: subprocess.Popen[bytes] | None = None
    env = {
        **os.environ,
        "CAREPATH_HOME": str(folder / "home"),
        "CAREPATH_PATHWAYS": str(pathways),
        "PREFECT_API_URL": server.api_url,
    }
    app = dispatching_app(Settings.from_env(env))
    try:
        app.set_clock(CompressedClock.starting_now(FACTOR))
        register_pathways(app, pathways)
        since = datetime.now(UTC)
        with (folder / "serve.log").open("ab") as log:
            serving = subprocess.Popen(
                [sys.executable, "-m", "flows.serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        names = [f"{PATHWAY}-{kind}/{PATHWAY}" for kind in ("enroll", "event", "deadline")]
        with prefect_api(app.settings):
            run_sync(wait_for_deployments(names, 300, polled_since=since))
        time.sleep(15)  # its catch-up and first sweep ticks are over
        log = AccessLog(server.log_path)
        log.window()
        cpu0, server0, t0 = _cpu(serving.pid), _cpu(server.process.pid), time.monotonic()
        time.sleep(idle)
        idle_calls, idle_seconds = log.window(), time.monotonic() - t0
        rate, idle_cpu = sum(idle_calls.values()) / idle_seconds, (_cpu(serving.pid) - cpu0) / idle_seconds
        idle_server = (_cpu(server.process.pid) - server0) / idle_seconds

        server0, size0, busy0 = _cpu(server.process.pid), _db_size(prefect_db), time.monotonic()
        tables0 = _table_sizes(prefect_db)
        t0 = time.monotonic()
        first = [enroll(app, PATHWAY, f"P-CALLS-{n:03d}") for n in range(episodes)]
        enrolled, enroll_seconds = log.window(), time.monotonic() - t0
        second = [enroll(app, PATHWAY, f"P-CALLS-{n:03d}") for n in range(episodes, 2 * episodes)]
        log.window()
        t0 = time.monotonic()
        for episode_id in second:
            record_event(app, episode_id, "care.completed", {})
        events, events_seconds = log.window(), time.monotonic() - t0
        size1 = _db_size(prefect_db)

        def escalated() -> list[EscalationRecord]:
            with Session(app.engine) as session:
                query = select(EscalationRecord).where(EscalationRecord.episode_id.in_(first))  # type: ignore[attr-defined]
                return list(session.exec(query))

        early = len(escalated())  # fired before the window opened: the machine was too slow for this clock
        cpu0, t0 = _cpu(serving.pid), time.monotonic()
        rows = episodes * RUNGS_PER_EPISODE
        _wait(
            "every rung escalated",
            lambda: len(found := escalated()) == rows and all(r.delivery_done_at for r in found),
            900,
        )
        time.sleep(10)  # the last runs end and report
        fired, fired_seconds = log.window(), time.monotonic() - t0
        cpu = _cpu(serving.pid) - cpu0 - idle_cpu * fired_seconds
        busy = time.monotonic() - busy0
        server_cpu = _cpu(server.process.pid) - server0 - idle_server * busy
        size2 = _db_size(prefect_db)
        grown = _table_sizes(prefect_db)
        grown.subtract(tables0)
    finally:
        app.close()
        if serving is not None:
            serving.send_signal(2)  # SIGINT: as Ctrl-C
            try:
                serving.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop_process_group(serving, grace=0)
        server.stop()
    rungs = episodes * RUNGS_PER_EPISODE - early
    calls = sum(enrolled.values()) + sum(events.values()) + sum(fired.values()) - rate * busy
    return {
        "bench": "serving_calls",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "load": os.getloadavg()[0],
        "idle_calls_per_second": round(rate, 2),
        "idle_calls": dict(idle_calls.most_common()),
        "calls_per_enrollment": round((sum(enrolled.values()) - rate * enroll_seconds) / episodes, 1),
        "calls_per_event": round((sum(events.values()) - rate * events_seconds) / episodes, 1),
        "calls_per_fired_rung": round((sum(fired.values()) - rate * fired_seconds) / rungs, 1),
        "fired_calls": dict(fired.most_common()),
        "cpu_seconds_per_fired_rung": round(cpu / rungs, 2),
        "idle_cpu_share_of_a_core": round(idle_cpu, 3),
        "server_idle_cpu_share_of_a_core": round(idle_server, 3),
        "server_cpu_ms_per_call": round(1000 * server_cpu / calls, 1),
        "prefect_db_bytes_per_enrollment_or_event": round((size1 - size0) / (3 * episodes)),
        "prefect_db_bytes_per_fired_rung": round((size2 - size1) / rungs),
        "prefect_db_growth_by_table": dict(grown.most_common(8)),
        "rungs_fired": rungs,
        "rungs_fired_before_the_window": early,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_serving_calls", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5, help="episodes a group (default 5; 6 rungs each)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the idle window (default 60)")
    args = parser.parse_args(argv)
    with pg.throwaway_database() as prefect_db, tempfile.TemporaryDirectory(prefix="carepath-bench-") as folder:
        if prefect_db is None:
            print("no PostgreSQL answers at 127.0.0.1:5432 (set CAREPATH_BENCH_PG_URL)", file=sys.stderr)
            return 1
        record = run(Path(folder), prefect_db, args.episodes, args.idle)
    print(
        f"carepath bench: Prefect API calls counted at the server (PostgreSQL), one serving process, load "
        f"{record['load']:.1f}\nidle: {record['idle_calls_per_second']} calls/s; an enrollment: "
        f"{record['calls_per_enrollment']}; an event: {record['calls_per_event']}; a fired rung: "
        f"{record['calls_per_fired_rung']} calls and {record['cpu_seconds_per_fired_rung']} CPU s; the server: "
        f"{record['server_cpu_ms_per_call']} CPU ms a call; its database grew "
        f"{record['prefect_db_bytes_per_enrollment_or_event']:,} bytes an enrollment or event, "
        f"{record['prefect_db_bytes_per_fired_rung']:,} a fired rung"
    )
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
