"""``carepath up --workers N``: the extra serving processes are supervised (started again with a growing delay when
they die, stopped with ``up``, killed with it even by a kill -9), and a serving process that shares the work never
takes back the runs a live sibling holds.

Real processes throughout; stand-ins for ``python -m flows.serve`` (a sleeper, one that exits at once) where what is
tested is the supervision, and the session's real Prefect server for the catch-up rule. Three real serving
processes sharing real work are in ``test_scale_out.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.app import Settings
from engine.errors import CarepathError
from engine.orchestration.backoff import Backoff
from engine.orchestration.server import _alive
from engine.orchestration.workers import ServingWorkers, worker_env

ROOT = Path(__file__).resolve().parents[1]
#: A stand-in serving process: starts a "run process" in its own process group, says both pids, waits.
SLEEPER = """
import os, signal, subprocess, sys, time
if sys.argv[1:] == ["stubborn"]:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(os.getpid(), run.pid, flush=True)
time.sleep(600)
"""
#: A stand-in serving process that answers SIGINT as ``flows.serve`` does, and says how it stopped.
ANSWERS = """
import time
from engine.process import answer_interrupts
answer_interrupts()
print("serving", flush=True)
try:
    time.sleep(600)
except KeyboardInterrupt:
    print("stopped by SIGINT", flush=True)
"""
#: A stand-in whose every start fails at once.
FAILS = "import sys; print('error: the store is not reachable'); sys.exit(3)"


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.05)
    return value


def pids_said(workers: ServingWorkers, slot: int) -> list[tuple[int, int]]:
    """(serving pid, run pid) for each start of ``slot``, as the stand-in wrote them in its log."""
    try:
        lines = workers.log_path(slot).read_text().splitlines()
    except OSError:
        return []
    pairs = [line.split() for line in lines]
    return [(int(p[0]), int(p[1])) for p in pairs if len(p) == 2 and p[0].isdigit() and p[1].isdigit()]


@pytest.fixture
def made(tmp_path: Path) -> Iterator[Callable[..., ServingWorkers]]:
    """Make ServingWorkers over a stand-in; whatever they leave is killed at the end."""
    made: list[ServingWorkers] = []

    def make(script: str, count: int, *args: str, **options: Any) -> ServingWorkers:
        lines: list[str] = options.pop("lines", [])
        workers = ServingWorkers(
            [sys.executable, "-c", script, *args], os.environ, count, tmp_path, say=lines.append, **options
        )
        made.append(workers)
        return workers

    yield make
    for workers in made:
        workers.stop()
        for slot in workers.slots:
            for pid in (p for pair in pids_said(workers, slot) for p in pair):
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_a_serving_process_that_keeps_failing_is_started_again_with_a_growing_delay(
    made: Callable[..., ServingWorkers],
) -> None:
    lines: list[str] = []
    workers = made(FAILS, 1, backoff=lambda: Backoff(first=0.1, most=0.4), lines=lines)
    workers.start()
    wait_until("five starts", lambda: workers.starts(2) >= 5)
    workers.stop()
    delays = [line.rsplit("again in ", 1)[1] for line in lines[:4]]
    assert delays == ["0.1 s", "0.2 s", "0.4 s", "0.4 s"]
    assert lines[0].startswith("serving process 2 (pid ")
    assert "exited with code 3 (serve-2.log: error: the store is not reachable)" in lines[0]


def test_a_killed_serving_process_is_replaced_and_stopping_ends_every_one_with_its_runs(
    made: Callable[..., ServingWorkers],
) -> None:
    lines: list[str] = []
    workers = made(SLEEPER, 2, backoff=lambda: Backoff(first=0.1), lines=lines)
    workers.start()
    wait_until("both serving", lambda: all(pids_said(workers, slot) for slot in (2, 3)))
    first = workers.pids()
    os.kill(first[3], signal.SIGKILL)
    wait_until("serving process 3 started again", lambda: len(pids_said(workers, 3)) == 2)
    assert workers.pids()[2] == first[2], "its sibling was left alone"
    assert workers.starts(3) == 2 and "was killed by signal 9" in lines[0] and "again in 0.1 s" in lines[0]

    workers.stop()
    assert workers.pids() == {}
    left = [pid for slot in (2, 3) for pid in pids_said(workers, slot)[-1]]
    wait_until("the serving processes and their runs gone", lambda: not any(_alive(pid) for pid in left), 5)


def test_a_serving_process_that_does_not_stop_when_asked_is_killed_after_the_grace(
    made: Callable[..., ServingWorkers],
) -> None:
    workers = made(SLEEPER, 1, "stubborn", grace=1.0)
    workers.start()
    wait_until("serving", lambda: pids_said(workers, 2))
    started = time.monotonic()
    workers.stop()
    assert time.monotonic() - started < 10
    leader, run = pids_said(workers, 2)[0]
    wait_until("the stubborn one and its run gone", lambda: not _alive(leader) and not _alive(run), 5)


def test_serving_processes_stop_when_asked_even_if_up_was_started_with_sigint_ignored(
    made: Callable[..., ServingWorkers],
) -> None:
    """A background launch (``nohup carepath up &``, a CI runner's script) hands ``up`` SIGINT ignored, and its
    serving processes inherit that: asked to stop by SIGINT they went on, and were killed after the grace with
    their runs in flight. They answer it whatever they inherited."""
    workers = made(ANSWERS, 1, grace=120.0)
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background command
    try:
        workers.start()
        wait_until("serving", lambda: "serving" in workers.log_path(2).read_text() if workers.pids() else False)
    finally:
        signal.signal(signal.SIGINT, inherited)
    workers.stop()
    assert workers.log_path(2).read_text().split() == ["serving", "stopped", "by", "SIGINT"]


def _sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background command


def test_the_real_serving_process_answers_sigint_it_inherited_ignored(tmp_path: Path) -> None:
    """``python -m flows.serve`` itself (the stand-in above only shows the helper works): started with SIGINT
    ignored, against a Prefect server that is not there (it serves on, waiting for it), it stops on SIGINT."""
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": f"http://127.0.0.1:{_closed_port()}/api",
        "CAREPATH_HOME": str(tmp_path / "home"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "DO_NOT_TRACK": "1",
    }
    with log.open("w") as out:
        serving = subprocess.Popen(
            [sys.executable, "-m", "flows.serve"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_sigint_ignored,
        )  # fmt: skip
    try:
        wait_until("serving, waiting for the server", lambda: "not answering" in log.read_text(), 120)
        serving.send_signal(signal.SIGINT)
        serving.wait(timeout=60)  # ignored, it would serve on
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.wait()
    assert "interrupted" in log.read_text()


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:  # bound, never listening, then closed: nothing answers on it
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: ``up`` stand-in: supervises two sleepers, says their pids, and waits to be killed.
SUPERVISOR = """
import os, sys, time
from pathlib import Path
from engine.orchestration.workers import ServingWorkers
workers = ServingWorkers([sys.executable, "-c", sys.argv[1]], os.environ, 2, Path(sys.argv[2]))
workers.start()
while len(workers.pids()) < 2:
    time.sleep(0.05)
print(*workers.pids().values(), flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_serving_processes_die_with_up_even_when_it_is_killed_9(tmp_path: Path) -> None:
    up = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, SLEEPER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert up.stdout is not None
    serving = [int(pid) for pid in up.stdout.readline().split()]
    assert len(serving) == 2 and all(_alive(pid) for pid in serving)
    up.kill()
    up.wait()
    try:
        wait_until("the serving processes to die with `up`", lambda: not any(_alive(pid) for pid in serving))
    finally:
        for pid in serving:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_extra_serving_processes_get_every_setting_up_resolved_and_share_the_work(tmp_path: Path) -> None:
    settings = Settings.from_env({"CAREPATH_HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")})
    settings = settings.with_changes(pathways=Path("pathways"), roster=Path("roster.yaml"))
    env = worker_env(settings, "http://127.0.0.1:4200/api")
    theirs = Settings.from_env(env)
    assert theirs.serving_shared and not settings.serving_shared
    assert theirs.prefect_api_url == "http://127.0.0.1:4200/api"
    assert (theirs.home, theirs.database_url) == (settings.home, settings.database_url)
    assert theirs.pathways == (Path.cwd() / "pathways") and theirs.pathways.is_absolute()
    assert theirs.roster == Path.cwd() / "roster.yaml"
    assert env["DO_NOT_TRACK"] == "1"


@pytest.mark.parametrize(("text", "shared"), [("1", True), ("true", True), ("0", False), ("", False), ("no", False)])
def test_the_shared_setting_reads_as_on_or_off(text: str, shared: bool) -> None:
    assert Settings.from_env({"CAREPATH_SERVING_SHARED": text}).serving_shared is shared


def test_a_shared_setting_that_is_neither_is_a_one_line_error() -> None:
    with pytest.raises(CarepathError, match=r"^CAREPATH_SERVING_SHARED: 'maybe' is not true or false \(use 1 or 0\)$"):
        Settings.from_env({"CAREPATH_SERVING_SHARED": "maybe"})


@pytest.mark.prefect
@pytest.mark.parametrize("shared", [True, False], ids=["beside-siblings", "alone"])
def test_a_restarting_serving_process_takes_back_runs_only_when_it_serves_alone(
    prefect_server: str, tmp_path: Path, shared: bool
) -> None:
    """A run a sibling picked up (Pending: its process waits for the run's time) or is running looks exactly like
    one a dead predecessor left. Alone, a restart takes them back (requeued, crashed); beside siblings it leaves
    them: the reconciler requeues a run stuck picked up past two minutes, whoever held it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Pending, Running
    from prefect_apps.echo import echo

    from engine.orchestration.flows import dispatching_app
    from engine.orchestration.prefect_api import cancel_flow_run, get_run_state, run_sync
    from engine.orchestration.up import catch_up, lease_holder_id

    async def held_runs() -> list[Any]:
        # the async spelling: a test before this one may leave this thread in an async context, where Prefect's
        # sync-compatible ``to_deployment`` would return a coroutine
        deployment = await echo.ato_deployment(name="held-by-a-sibling", tags=["carepath-test"])
        deployment_id = await deployment.aapply()
        async with get_client() as client:
            picked = await client.create_flow_run_from_deployment(
                deployment_id, parameters={"episode_id": "ep-held"}, state=Pending()
            )
            running = await client.create_flow_run_from_deployment(
                deployment_id, parameters={"episode_id": "ep-held"}, state=Pending()
            )
            await client.set_flow_run_state(running.id, Running())
        return [picked.id, running.id]

    settings = Settings.from_env(
        {"CAREPATH_HOME": str(tmp_path), "PREFECT_API_URL": prefect_server, "CAREPATH_SERVING_SHARED": str(int(shared))}
    )
    app = dispatching_app(settings)
    try:
        picked, running = run_sync(held_runs())
        catch_up(app, [f"{echo.name}/held-by-a-sibling"], lease_holder_id(), alone=not app.settings.serving_shared)
        states = [run_sync(get_run_state(run)).state_type for run in (picked, running)]
        run_sync(cancel_flow_run(picked))
    finally:
        app.close()
    if shared:
        assert states == [StateType.PENDING.value, StateType.RUNNING.value], "a live sibling's runs were taken"
    else:
        assert states == [StateType.SCHEDULED.value, StateType.CRASHED.value], "a dead predecessor's runs stay stuck"


@pytest.mark.postgres
def test_serving_processes_started_together_on_an_empty_store_each_register_the_pathways(tmp_path: Path) -> None:
    """Containers start at once (deploy/compose.yaml): each pins the same pathway versions; none may fail on the
    row another pinned a moment before (PostgreSQL answers that with a duplicate key)."""
    import threading

    from sqlmodel import Session, select
    from store_fixtures import pg_admin_url, pg_unavailable_reason, temporary_pg_database

    from engine.app.pathways import register_pathways
    from engine.orchestration.flows import dispatching_app
    from engine.store import PathwayVersionRecord

    if pg_admin_url() is None:
        pytest.skip(pg_unavailable_reason())
    with temporary_pg_database("carepath_together") as url:
        apps = [dispatching_app(Settings.from_env({"CAREPATH_HOME": str(tmp_path), "CAREPATH_DATABASE_URL": url}))]
        apps[0].engine  # noqa: B018 - the schema first: migrating is already safe when processes start at once
        apps += [dispatching_app(apps[0].settings) for _ in range(5)]
        start, failures = threading.Barrier(len(apps)), []

        def register(app: Any) -> None:
            app.engine  # noqa: B018
            start.wait()
            try:
                register_pathways(app, ROOT / "pathways")
            except Exception as exc:  # what a serving process would die of
                failures.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=register, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        try:
            assert failures == []
            with Session(apps[0].engine) as session:
                pinned = [(r.pathway_id, r.version) for r in session.exec(select(PathwayVersionRecord))]
            assert len(pinned) == len(set(pinned)) == len(list((ROOT / "pathways").glob("*.yaml")))
        finally:
            for app in apps:
                app.close()
