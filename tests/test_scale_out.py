"""Issue 12's "beyond one machine", for real: three serving processes (``carepath up --workers 3``) against one
Prefect server (the session's) and one store (SQLite, then PostgreSQL) share the work, and no rung fires twice.

A pathway written for the test (``tests/data/scale-out-test.yaml``) gives each of six episodes six rungs, due 30
to 105 wall seconds after its enrollment on a 60x clock; episodes are enrolled seconds apart, so deadlines come a
few seconds apart for two wall minutes. Midway one of the extra serving processes is killed -9: ``up`` starts it
again, and the new one must not take back the runs its live siblings hold.

Which process ran a run is read from the machine and from Prefect's record of the run: a serving process runs the
deadline runs it claims itself and records its ``host:pid`` as the run's infrastructure pid (checked against the
live serving processes); a run Prefect's runner started instead is a child process of the serving process that
picked it up, with the run's id in its environment, which a sampler maps to its parent. What must hold, measured
on the store and at a real HTTP receiver on loopback:

- work is shared: runs of the pathway's deployments ran under more than one serving process;
- every rung (all are due, none met) escalated, each at most once (one EscalationRecord);
- each contact of the roster (two per role) received one message per escalation, and the store holds one
  delivery outcome per contact per escalation;
- ``up`` takes its serving processes with it when it is stopped with Ctrl-C (PostgreSQL) or killed -9 (SQLite).

Nothing here counts runs per rung or reads deadline runs' parameters: how rungs are grouped into runs may change.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

import pytest
from carepath_harness import LOAD_ALLOWANCE, tpo_consent
from http_receiver import HttpReceiver
from outage_harness import wait_until
from sqlmodel import Session, select
from store_fixtures import pg_admin_url, pg_unavailable_reason, temporary_pg_database

from engine.app import App, Settings, enroll
from engine.app.pathways import register_pathways
from engine.clock import CompressedClock, utc
from engine.orchestration.flows import dispatching_app
from engine.orchestration.server import _alive
from engine.store import DeliveryRecord, EscalationRecord, RungRecord

pytestmark = pytest.mark.prefect

ROOT = Path(__file__).resolve().parents[1]
PATHWAY = "scale-out-test"
PATHWAY_FILE = ROOT / "tests" / "data" / f"{PATHWAY}.yaml"
FACTOR = 60.0  # a pathway minute per wall second
EPISODES = 6
ENROLL_EVERY = 5.0  # wall seconds between enrollments
RUNGS_PER_EPISODE = 6
ROLES = ("coordinator", "supervisor", "lead")
CONTACTS = ("a", "b")  # two contacts per role
SERVING = 3


class RunProcesses:
    """Samples, every 0.1 s, the children of ``carepath up`` and of its serving processes: which serving process is
    the parent of each deployment run's process (Prefect gives it the run's id as ``PREFECT__FLOW_RUN_ID``)."""

    def __init__(self, up_pid: int) -> None:
        self.up_pid = up_pid
        self.parent_of: dict[str, int] = {}  # flow run id -> serving pid
        self.serving_seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-process-sampler", daemon=True)

    def __enter__(self) -> RunProcesses:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def serving(self) -> set[int]:
        """``up`` and its extra serving processes (its children running ``flows.serve``) alive now."""
        extra = {pid for pid in _children(self.up_pid) if "flows.serve" in _cmdline(pid)}
        return {self.up_pid, *extra} if _alive(self.up_pid) else extra

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            serving = self.serving()
            self.serving_seen |= serving
            for parent in serving:
                for child in _children(parent):
                    run_id = _environ(child).get("PREFECT__FLOW_RUN_ID")
                    if run_id:
                        self.parent_of.setdefault(run_id, parent)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            out += [int(p) for p in Path(path).read_text().split()]
        except (OSError, ValueError):
            continue
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
    except OSError:
        return ""


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return {}
    return dict(item.partition("=")[::2] for item in raw.split("\0") if "=" in item)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as rx:
        yield rx


@pytest.fixture(params=["sqlite", "postgresql"])
def carepath(
    request: pytest.FixtureRequest, prefect_server: str, tmp_path: Path, receiver: HttpReceiver
) -> Iterator[tuple[App, dict[str, str]]]:
    """A data folder with the test pathway, a roster of two loopback contacts per role, the 60x clock stored, on
    SQLite (the embedded default) or PostgreSQL (the scale-out store); the environment ``carepath up`` runs with
    (the session's Prefect server)."""
    if request.param == "postgresql" and pg_admin_url() is None:
        pytest.skip(pg_unavailable_reason())
    with temporary_pg_database("carepath_scale") if request.param == "postgresql" else nullcontext(None) as url:
        yield from _data_folder(tmp_path, receiver, {"CAREPATH_DATABASE_URL": url} if url else {})


def _data_folder(tmp_path: Path, receiver: HttpReceiver, store: dict[str, str]) -> Iterator[tuple[App, dict[str, str]]]:
    home, pathways = tmp_path / "home", tmp_path / "pathways"
    pathways.mkdir()
    shutil.copy(PATHWAY_FILE, pathways)
    home.mkdir()
    roster = "roles:\n" + "".join(
        f"  {role}:\n    contacts:\n" + "".join(f"      - {receiver.url('json', f'/{role}/{c}')}\n" for c in CONTACTS)
        for role in ROLES
    )
    (home / "roster.yaml").write_text(roster)
    env = {**os.environ, "CAREPATH_HOME": str(home), "CAREPATH_PATHWAYS": str(pathways), **store}
    app = dispatching_app(Settings.from_env(env))
    app.set_clock(CompressedClock.starting_now(FACTOR))  # stored: `up`, its workers and every run use it
    register_pathways(app, pathways)
    try:
        yield app, env
    finally:
        app.close()


def test_three_serving_processes_share_the_work_and_no_rung_fires_twice(
    carepath: tuple[App, dict[str, str]], receiver: HttpReceiver
) -> None:
    app, env = carepath
    crash = app.settings.database_url.startswith("sqlite")  # ended by a kill -9 on SQLite, by a stop on PostgreSQL
    log = app.settings.home / "up.log"
    since = datetime.now(UTC)
    with log.open("ab") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "engine", "up", "--no-api", "--workers", str(SERVING)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_as_from_a_terminal,
        )
    try:
        with RunProcesses(up.pid) as sampler:
            _wait_served(app, up, sampler, since)
            episodes = _enroll(app)
            killed = _kill_one_worker(up, sampler, log)
            rungs = _rungs(app, episodes)
            assert len(rungs) == EPISODES * RUNGS_PER_EPISODE
            last_due = max(app.clock.wall_time(utc(r.due_at)) for r in rungs)
            wait_until(
                "every rung escalated",
                lambda: len(_escalations(app, episodes)) >= len(rungs),
                (last_due - datetime.now(UTC)).total_seconds() + 60 + LOAD_ALLOWANCE,
                detail=lambda: f"{len(_escalations(app, episodes))} of {len(rungs)}",
            )
            wait_until(
                "every escalation delivered",
                lambda: all(e.delivery_done_at is not None for e in _escalations(app, episodes)),
                60 + LOAD_ALLOWANCE,
            )
            time.sleep(15)  # a sweep, and a run requeued after the kill, get their chance to double something
            ran = _runs_of_the_pathway(app, sampler.parent_of, {r.flow_run_id for r in _rungs(app, episodes)})
        _assert_nothing_doubled(app, receiver, episodes, rungs)
        _print_lateness(app, episodes, rungs)
        per_process = Counter(ran.values())
        print(f"\nruns per serving process: {dict(per_process)}; worker {killed} killed -9 and replaced")
        assert len(per_process) >= 2, f"one serving process ran every run: {dict(per_process)}"
        assert set(per_process) <= sampler.serving_seen

        serving = sampler.serving() - {up.pid}
        assert len(serving) == SERVING - 1
        if crash:  # kill -9 of `up`: its serving processes die with it
            up.kill()
        else:  # an operator stops it (Ctrl-C): it stops them
            up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60 + LOAD_ALLOWANCE) is not None
        wait_until("the serving processes to end with `up`", lambda: not any(map(_alive, serving)), 60)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGTERM)
            up.wait(timeout=60)
        _cancel_leftover_runs(app)


def _as_from_a_terminal() -> None:
    """SIGINT at its default, as for a command an operator runs in a terminal (where Ctrl-C reaches it), whatever
    the test session inherited (a session started in the background has it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_served(app: App, up: subprocess.Popen[bytes], sampler: RunProcesses, since: datetime) -> None:
    """Until ``up`` and both extra serving processes poll the pathway's deployments."""
    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.prefect_api import run_sync, wait_for_deployments

    def three() -> bool:
        assert up.poll() is None, f"up exited; see {app.settings.home / 'up.log'}"
        return len(sampler.serving()) == SERVING

    wait_until("three serving processes", three, 120 + LOAD_ALLOWANCE)
    names = [f"{PATHWAY}-{kind}/{PATHWAY}" for kind in ("enroll", "event", "deadline")]
    with prefect_api(app.settings):
        run_sync(wait_for_deployments(names, 120 + LOAD_ALLOWANCE, polled_since=since))


def _enroll(app: App) -> list[str]:
    episodes = []
    for n in range(EPISODES):
        started = time.monotonic()
        person = f"P-SCALE-{n:03d}"
        episode_id = enroll(app, PATHWAY, person)
        app.service.add_consent(episode_id, tpo_consent(f"cn-{episode_id}", person))
        episodes.append(episode_id)
        time.sleep(max(0.0, ENROLL_EVERY - (time.monotonic() - started)))
    return episodes


def _kill_one_worker(up: subprocess.Popen[bytes], sampler: RunProcesses, log: Path) -> int:
    """kill -9 one extra serving process while deadlines keep coming; wait until ``up`` has replaced it."""
    before = sampler.serving() - {up.pid}
    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        now = sampler.serving() - {up.pid}
        return victim not in now and len(now) == SERVING - 1

    wait_until("up to start the killed serving process again", replaced, 60 + LOAD_ALLOWANCE)
    assert f"(pid {victim}) was killed by signal 9" in log.read_text()
    return victim


def _rungs(app: App, episodes: list[str]) -> list[RungRecord]:
    with Session(app.engine) as s:
        return list(s.exec(select(RungRecord).where(RungRecord.episode_id.in_(episodes))))  # type: ignore[attr-defined]


def _escalations(app: App, episodes: list[str]) -> list[EscalationRecord]:
    with Session(app.engine) as s:
        query = select(EscalationRecord).where(EscalationRecord.episode_id.in_(episodes))  # type: ignore[attr-defined]
        return list(s.exec(query))


def _assert_nothing_doubled(app: App, receiver: HttpReceiver, episodes: list[str], rungs: list[RungRecord]) -> None:
    escalations = _escalations(app, episodes)
    per_rung = Counter(e.rung_id for e in escalations)
    assert [r for r, n in per_rung.items() if n > 1] == [], "a rung escalated twice"
    assert set(per_rung) == {r.id for r in rungs}, "every rung due and unmet escalated"
    with Session(app.engine) as s:
        deliveries = list(s.exec(select(DeliveryRecord).where(DeliveryRecord.episode_id.in_(episodes))))  # type: ignore[attr-defined]
    outcomes = Counter((d.rung_id, d.status) for d in deliveries)
    assert outcomes == {(e.rung_id, "delivered"): len(CONTACTS) for e in escalations}
    received = Counter(
        (request.path, rung)
        for request in receiver.requests
        for rung in per_rung
        if f"({rung})" in (request.text or "")
    )
    expected = {(f"/{e.role}/{c}", e.rung_id): 1 for e in escalations for c in CONTACTS}
    assert received == expected, {k: n for k, n in received.items() if n != 1}
    assert len(receiver.requests) == len(expected), "a message that names no escalation of these episodes"


def _print_lateness(app: App, episodes: list[str], rungs: list[RungRecord]) -> None:
    """How late the escalations came (wall seconds after due): for the record, not a bound (the machine's load)."""
    due = {r.id: app.clock.wall_time(utc(r.due_at)) for r in rungs}
    late = sorted(
        (app.clock.wall_time(utc(e.raised_at)) - due[e.rung_id]).total_seconds() for e in _escalations(app, episodes)
    )
    print(f"\nlateness (wall s): p50 {late[len(late) // 2]:.1f}, max {late[-1]:.1f}, over {len(late)} escalations")


def _runs_of_the_pathway(app: App, parent_of: dict[str, int], linked: set[str | None]) -> dict[str, int]:
    """This test's runs of the pathway's deployments (a run process the sampler saw, or a run the store links a
    rung to: the server is the session's) that finished, each with the serving process that ran it: id -> pid."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.prefect_api import run_sync

    async def read() -> dict[str, int]:
        async with get_client() as client:
            everything = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[PATHWAY]))
            )
        print(f"\nthe pathway's runs by state: {dict(Counter(r.state_name for r in everything))}")
        host = f"{socket.gethostname()}:"
        out = {}
        for run in everything:
            if run.state is None or not run.state.is_final():
                continue
            if str(run.id) not in parent_of and str(run.id) not in linked:  # an earlier test's run
                continue
            if str(run.id) in parent_of:  # started in a process of its own
                out[str(run.id)] = parent_of[str(run.id)]
            elif run.infrastructure_pid and run.infrastructure_pid.startswith(host):  # run by a serving process
                out[str(run.id)] = int(run.infrastructure_pid.removeprefix(host))
        return out

    with prefect_api(app.settings):
        return run_sync(read())


def _cancel_leftover_runs(app: App) -> None:
    """Cancel this pathway's runs still waiting on the shared server (none, when the test passed)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.prefect_api import run_sync

    async def cancel() -> None:
        waiting = FlowRunFilterStateType(any_=[StateType.SCHEDULED, StateType.PENDING])
        async with get_client() as client:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[PATHWAY])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=waiting)),
            )
            for run in runs:
                await client.set_flow_run_state(run.id, Cancelled(message="test finished"), force=True)

    with prefect_api(app.settings):
        run_sync(cancel())
