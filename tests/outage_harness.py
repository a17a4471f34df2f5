"""What the crash tests share: ``carepath up`` as a real child process, and the checks that nothing was left behind.

- :class:`Up` runs ``python -m engine up --port N`` in its own data folder (a roster of loopback contacts, the
  compressed clock stored there), exactly as an operator starts it, so a test can kill -9 it, or its Prefect
  server, and start it again with the same command.
- :func:`runs_left_behind` lists the Prefect runs of some episodes that no process will finish and no timer
  needs (the issue's "no run left non-final"); :func:`unfinished_runs` lists every run of those episodes that is
  not final yet.
- :func:`messages_per_rung` counts what each contact received per rung, to show nothing was doubled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from http_receiver import HttpReceiver
from sqlmodel import Session, col, select

from engine import store
from engine.app import App
from engine.errors import OrchestrationError
from engine.orchestration.server import _alive
from engine.store import RungRecord

__all__ = [
    "ROOT",
    "Up",
    "messages_per_rung",
    "runs_left_behind",
    "runs_of",
    "unfinished_runs",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[1]
#: A run in flight this recently (picked up, or running) may belong to a live process.
IN_FLIGHT = timedelta(seconds=60)
_NOT_FINAL = ("SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED")


def wait_until(
    what: str, check: Callable[[], Any], timeout: float, every: float = 0.5, detail: Callable[[], Any] | None = None
) -> Any:
    """Poll ``check`` until it returns something truthy (returned); fail after ``timeout`` seconds, saying
    ``detail()`` (what is still wrong) when given. A Prefect server that does not answer one poll (a restarted or
    loaded one is slow to) is a state still to wait out, not a failure: the last such error is in the message."""
    deadline = time.monotonic() + timeout
    unanswered: list[OrchestrationError] = []

    def poll() -> Any:
        try:
            return check()
        except OrchestrationError as exc:
            unanswered[:] = [exc]
            return None

    while not (value := poll()):
        if time.monotonic() > deadline:
            still = f"; still: {detail()}" if detail else ""
            last = f"; last Prefect error: {unanswered[0]}" if unanswered else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{still}{last}")
        time.sleep(every)
    return value


def roster_for(receiver: HttpReceiver, roles: Iterable[str]) -> str:
    """A roster giving each role one loopback contact at ``/<role>``."""
    return "roles:\n" + "".join(f"  {r}:\n    contacts:\n      - {receiver.url('json', '/' + r)}\n" for r in roles)


@dataclass
class Up:
    """``carepath up`` on ``port`` with data folder ``home`` (and ``env``), as a child process in its own session."""

    home: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.home / "up.log"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "engine", "up", "--port", str(self.port), "--no-api"]

    def start(self) -> None:
        """Run the command; returns at once (wait with :meth:`wait_served`)."""
        self.starts.append(time.monotonic())
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_served(self, app: App, since: datetime, timeout: float) -> None:
        """Until every deployment was polled since ``since`` (the server answers and this process serves)."""
        from carepath_harness import DEPLOYMENTS

        from engine.orchestration.adapters import prefect_api
        from engine.orchestration.prefect_api import run_sync, wait_for_deployments
        from engine.orchestration.server import api_reachable

        def answering() -> bool:
            assert self.process is not None and self.process.poll() is None, f"up exited; see {self.log}"
            url = app.settings.api_url()
            return bool(url and api_reachable(url))

        wait_until("the Prefect server of `carepath up`", answering, timeout)
        with prefect_api(app.settings):
            run_sync(wait_for_deployments(DEPLOYMENTS, timeout, polled_since=since))

    def server_pid(self) -> int:
        return int(json.loads((self.home / "prefect-server.pid").read_text())["pid"])

    def kill(self) -> None:
        """kill -9 of ``carepath up`` alone (not its server, not its children): a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, grace: float = 60.0) -> int | None:
        """Ctrl-C as an operator stops it (SIGTERM); what is left after ``grace`` is killed."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def flush_events(self, app: App, timeout: float = 120.0) -> None:
        """Send what this (test) process's Prefect still queues for the server while it answers: otherwise Prefect
        retries it at interpreter exit, for minutes an event, against a server that is gone."""
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        from engine.orchestration.adapters import prefect_api

        with prefect_api(app.settings):
            EventsWorker.drain_all(timeout=timeout)
            APILogWorker.drain_all(timeout=timeout)

    def cleanup(self) -> None:
        """Leave no process behind whatever happened (the server, if a test failed before it died)."""
        self.stop(grace=20)
        try:
            pid = self.server_pid()
        except (OSError, ValueError, KeyError):
            return
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------- runs left behind


def unfinished_runs(app: App, episodes: Iterable[str]) -> list[Any]:
    """Every flow run of these episodes (see :func:`runs_of`) that is not final, on ``app``'s server."""
    return runs_of(app, episodes, _NOT_FINAL)


def describe_runs(runs: Iterable[Any]) -> list[str]:
    """``name (STATE since HH:MM:SS)`` for each run, for a failure message."""
    return [f"{r.name} ({r.state.type.value if r.state else '?'} since {r.state.timestamp:%H:%M:%S})" for r in runs]


def runs_of(app: App, episodes: Iterable[str], states: Iterable[str]) -> list[Any]:
    """The flow runs of these episodes in these state types: by their ``episode_id`` parameter, and the deadline runs
    their rungs are linked to (a deadline run carries the rungs of every episode due in its minute)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.prefect_api import run_sync

    wanted, wanted_states = set(episodes), list(states)
    with Session(app.engine) as session:  # deadline runs carry no episode: they are the runs the rungs link to
        query = select(RungRecord.flow_run_id).where(col(RungRecord.episode_id).in_(wanted))
        linked = {str(run_id) for run_id in session.exec(query)}

    async def read() -> list[Any]:
        states = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in wanted_states]))
        out: list[Any] = []
        async with get_client() as client:
            while True:
                page = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(state=states), limit=200, offset=len(out)
                )
                out += page
                if len(page) < 200:
                    return [r for r in out if (r.parameters or {}).get("episode_id") in wanted or str(r.id) in linked]

    with prefect_api(app.settings):
        return run_sync(read())


def runs_left_behind(app: App, episodes: Iterable[str]) -> list[str]:
    """Runs of these episodes that no live process or timer accounts for, described; [] when there are none.

    Allowed: a run waiting for its time whose rung is pending and expects it; a run picked up or running for
    less than :data:`IN_FLIGHT` (a live serving process's). Anything else (a run waiting for a rung that is no
    longer pending, picked up or cancelling or running long after its time) was left behind by a crash.
    """
    runs = unfinished_runs(app, episodes)
    with Session(app.engine) as session:
        needs = store.run_needs(session, [str(r.id) for r in runs])
    now = datetime.now(UTC)
    left = []
    for run in runs:
        state = run.state
        live = needs.get(str(run.id), False)
        since = state.timestamp if state and state.timestamp else now
        due = (state.state_details.scheduled_time if state else None) or run.expected_start_time or since
        recent = now - max(since, due) < IN_FLIGHT
        kind = state.type.value if state else "UNKNOWN"
        if (kind == "SCHEDULED" and live) or (kind in ("PENDING", "RUNNING") and recent):
            continue
        left.append(f"{kind} {run.name} ({'a pending rung needs it' if live else 'no pending rung needs it'})")
    return left


def messages_per_rung(receiver: HttpReceiver, rung_ids: Iterable[str]) -> dict[str, int]:
    """How many messages the receiver got that name each rung (one contact per role: 1 means not doubled)."""
    bodies = [json.dumps(r.json) if r.json is not None else r.text for r in receiver.requests]
    return {rung: sum(f"({rung})" in body for body in bodies) for rung in rung_ids}
