"""The parts :mod:`bench.bench_caseload` runs beside the coordinators: ``carepath up`` as a child process (as
``tests/outage_harness.py``'s ``Up`` runs it), a Prefect server of the bench's own (for ``--postgres``: on
PostgreSQL, which ``up``'s embedded server is not), a loopback receiver standing for every role's contact, and the
reads of Prefect's runs afterwards. Nothing here depends on how Carepath shapes its runs: the server's deployments
and runs are read as they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.caseload_stats import RunRow

__all__ = [
    "ROOT",
    "HealthProbe",
    "Receiver",
    "UpChild",
    "flow_run_counts",
    "log_lines",
    "non_final_runs",
    "run_starts",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[1]
_NOT_FINAL = ("SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED")
_FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
_RUNG = re.compile(r"Escalation rung \d+ to [a-z0-9-]+ \(([^)\s]+)\)")


def wait_until(what: str, check: Any, timeout: float, every: float = 0.5) -> Any:
    """Poll ``check()`` until truthy (returned); raise RuntimeError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return value


@dataclass
class UpChild:
    """``python -m engine up --port N --speed F --no-api`` in data folder ``home``, in its own session."""

    home: Path
    port: int
    speed: float
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.home / "up.log"

    def start(self) -> None:
        argv = [sys.executable, "-m", "engine", "up", "--port", str(self.port), "--speed", f"{self.speed:g}"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*argv, "--no-api"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None and self.process.poll() is None else -1

    def server_pid(self) -> int | None:
        """The pid of the Prefect server ``up`` started (its pid file), None when it records none."""
        try:
            return int(json.loads((self.home / "prefect-server.pid").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def kill(self) -> None:
        """kill -9 of ``up`` alone: a crash (its server follows it, by the parent-death signal)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, grace: float = 60.0) -> None:
        """SIGTERM, as an operator stops it; what is left after ``grace`` s is killed with its group."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def cleanup(self) -> None:
        """Leave nothing behind: ``up``, then its server if it outlived it."""
        self.stop(grace=20)
        pid = self.server_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def wait_served(self, settings: Any, pathway_ids: list[str], since: datetime, timeout: float) -> None:
        """Until the server answers and every deployment on it was polled since ``since`` (this process serves),
        with at least one deployment per pathway (tagged or named for it)."""
        from engine.orchestration.adapters import prefect_api
        from engine.orchestration.prefect_api import run_sync
        from engine.orchestration.server import api_reachable

        def answering() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"`carepath up` exited; see {self.log}:\n{_tail(self.log)}")
            url = settings.api_url()
            return bool(url and api_reachable(url))

        wait_until("the Prefect server of `carepath up`", answering, timeout)

        async def served() -> bool:
            from prefect.client.orchestration import get_client

            async with get_client() as client:
                deployments = await client.read_deployments()
            if not deployments:
                return False
            covered = all(
                any(p == d.name or f"pathway:{p}" in (d.tags or []) for d in deployments) for p in pathway_ids
            )
            polled = all(d.last_polled is not None and d.last_polled >= since for d in deployments)
            return covered and polled

        def check() -> bool:
            answering()
            with prefect_api(settings):
                try:
                    return run_sync(served())
                except Exception:  # the server is still starting its services
                    return False

        wait_until("every deployment served", check, timeout, every=1.0)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def log_lines(path: Path, start: int = 0, end: int | None = None) -> list[str]:
    """The lines of ``path`` between byte offsets ``start`` and ``end`` ([] if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            data = f.read() if end is None else f.read(max(0, end - start))
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()


@dataclass
class Receiver:
    """Every role's contact: a loopback HTTP server counting messages per (rung, path); each answers after ``delay``
    seconds (a pager or webhook takes 50-300 ms)."""

    delay: float = 0.0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    received: int = 0
    unparsed: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._record(self.path, body.decode(errors="replace"))
                time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True).start()
        return self

    def url(self, path: str) -> str:
        assert self._server is not None
        return f"json://127.0.0.1:{self._server.server_address[1]}{path}"

    def roster(self, roles: list[str]) -> str:
        """A roster giving each role one contact here, at ``/<role>``."""
        return "roles:\n" + "".join(f"  {r}:\n    contacts:\n      - {self.url('/' + r)}\n" for r in roles)

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.counts)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _record(self, path: str, body: str) -> None:
        rungs = _RUNG.findall(body.replace("\\n", "\n"))
        with self._lock:
            self.received += 1
            if not rungs:
                self.unparsed += 1
            for rung in set(rungs):
                self.counts[(rung, path)] += 1


@dataclass
class HealthProbe:
    """Asks the Prefect server's ``/health`` every ``every`` s (``timeout`` s to answer) in a daemon thread, and
    keeps the spells it did not answer: a server wedged under load (seen: SQLite busy for minutes) shows here."""

    url: Any  # () -> the API URL, or None while none is known
    every: float = 2.0
    timeout: float = 5.0
    spells: list[tuple[float, float]] = field(default_factory=list)
    _down_since: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> HealthProbe:
        threading.Thread(target=self._loop, name="health-probe", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._close(time.time())

    def unanswered(self, since: float = 0.0) -> dict[str, float]:
        """Seconds without an answer since ``since``: in all, and the longest spell."""
        spells = [(max(a, since), b) for a, b in self.spells if b > since]
        if self._down_since is not None:
            spells.append((max(self._down_since, since), time.time()))
        lengths = [b - a for a, b in spells]
        return {"total_s": round(sum(lengths), 1), "longest_s": round(max(lengths, default=0.0), 1)}

    def _close(self, now: float) -> None:
        if self._down_since is not None:
            self.spells.append((self._down_since, now))
            self._down_since = None

    def _loop(self) -> None:
        from engine.orchestration.server import api_reachable

        while not self._stop.wait(self.every):
            url = self.url()
            asked = time.time()
            if url and api_reachable(url, timeout=self.timeout):
                self._close(asked)
            elif self._down_since is None:
                self._down_since = asked


def non_final_runs(settings: Any, before: float) -> tuple[list[RunRow], int]:
    """The flow runs on the server not in a final state that were to start by ``before`` (wall, epoch s), deployment
    runs and in-process ones alike; and how many more are to start after it (counted by the server: with
    thousands of episodes most runs wait for later rungs, and reading each would take minutes)."""
    import httpx

    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.prefect_api import run_sync

    cut = datetime.fromtimestamp(before, UTC)
    api = (settings.api_url() or "").rstrip("/")
    body = {
        "flow_runs": {
            "state": {"type": {"any_": list(_NOT_FINAL)}},
            "expected_start_time": {"after_": cut.isoformat()},
        }
    }
    later = httpx.post(f"{api}/flow_runs/count", json=body, timeout=120)
    later.raise_for_status()

    async def read() -> list[RunRow]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterExpectedStartTime,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        states = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in _NOT_FINAL]))
        by = FlowRunFilterExpectedStartTime(before_=cut)
        out: list[RunRow] = []
        async with get_client() as client:
            offset = 0
            while True:
                page = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(state=states, expected_start_time=by), limit=200, offset=offset
                )
                offset += len(page)
                for run in page:
                    state = run.state
                    scheduled = (state.state_details.scheduled_time if state else None) or run.expected_start_time
                    since = state.timestamp if state and state.timestamp else datetime.now(UTC)
                    out.append(
                        RunRow(
                            name=run.name,
                            state=state.type.value if state else "UNKNOWN",
                            scheduled=scheduled.timestamp() if scheduled else None,
                            since=since.timestamp(),
                            deployment=run.deployment_id is not None,
                        )
                    )
                if len(page) < 200:
                    return out

    with prefect_api(settings):
        return run_sync(read()), int(later.json())


def run_starts(settings: Any, tag: str) -> tuple[dict[str, float], list[float]]:
    """The runs tagged ``tag`` that went Running: run id -> when (wall, epoch s), and each one's start lag (seconds
    from its expected start to Running; a prefetched run that Prefect holds until its time starts at about 0)."""
    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.prefect_api import run_sync

    async def read() -> tuple[dict[str, float], list[float]]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime, FlowRunFilterTags

        started: dict[str, float] = {}
        lags: list[float] = []
        wanted = FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]), start_time=FlowRunFilterStartTime(is_null_=False))
        async with get_client() as client:
            offset = 0
            while True:
                page = await client.read_flow_runs(flow_run_filter=wanted, limit=200, offset=offset)
                offset += len(page)
                for run in page:
                    if run.start_time is None:
                        continue
                    started[str(run.id)] = run.start_time.timestamp()
                    if run.expected_start_time is not None:
                        lags.append((run.start_time - run.expected_start_time).total_seconds())
                if len(page) < 200:
                    return started, lags

    with prefect_api(settings):
        return run_sync(read())


def flow_run_counts(api_url: str) -> dict[str, dict[str, int]]:
    """Flow runs in each final state, of deployments (``deployment``: timers; a run that completed, failed or
    crashed had a process, a cancelled one mostly never started) and in-process ones (``in_process``:
    coordinators' requests, sweeps), read with the server's count endpoint."""
    import httpx

    out: dict[str, dict[str, int]] = {}
    for kind, is_null in (("deployment", False), ("in_process", True)):
        out[kind] = {}
        for state in _FINAL:
            body = {"flow_runs": {"deployment_id": {"is_null_": is_null}, "state": {"type": {"any_": [state]}}}}
            response = httpx.post(f"{api_url.rstrip('/')}/flow_runs/count", json=body, timeout=60)
            response.raise_for_status()
            out[kind][state.lower()] = int(response.json())
    return out
