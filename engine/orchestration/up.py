"""``carepath up``: register the pathways, start a local Prefect server unless one is configured, and serve every
pathway's deployments from this process until it is stopped.

The local server runs in its own process group, dies with this process (even a kill -9: see
:mod:`engine.orchestration.server`) and is stopped on the way out; its address is recorded in the data folder for the
other commands, and its pid for a restart to take over. Deadline runs are started by Prefect as child processes
of this one; they find the server through Prefect's settings (passed down by Prefect) and the data folder through
the same environment. With ``--workers N``, N-1 more serving processes share the runs
(:mod:`engine.orchestration.workers`).

Surviving the crashes of other processes:

- **a restart catches up first**: before serving, runs the dead predecessor had picked up are put back (only by
  the one serving process, or ``up`` before it starts its workers: never a run a live sibling holds), and one
  sweep pass fires and delivers everything that came due during the outage (cancelling the runs it made
  redundant, so Prefect does not start a process for each late one);
- **the sweep is this process's timer** (every 10 s; a flow run only when a tick finds work; a store lease when
  several processes serve), not an interval schedule that would replay every missed interval at once;
- **the Prefect server going away does not end serving**: when it stops answering, this process restarts it (if
  it is the local one) or waits for it, then serves again; the timer keeps firing and delivering meanwhile;
- **a failure that keeps coming back is retried with a growing delay** (:class:`Backoff`: 1 s doubling to 60 s
  between failed attempts to serve or to restart the server, back to 1 s once serving lasted a minute), not in a
  tight loop.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from engine import store
from engine.app import App, Settings
from engine.app.pathways import register_pathways
from engine.app.ports import SweepReport
from engine.app.sweep import sweep_tick
from engine.clock import CompressedClock
from engine.errors import CarepathError, one_line
from engine.language.model import PathwaySpec
from engine.orchestration.backoff import Backoff
from engine.orchestration.flows import dispatching_app
from engine.orchestration.in_process import start_in_process_deadlines
from engine.orchestration.sweep_timer import SweepTimer, free_dead_lease, lease_holder_id
from engine.orchestration.wiring import production_app

if TYPE_CHECKING:
    from engine.api.serving import ApiServer
    from engine.orchestration.server import LocalServer

__all__ = [
    "PID_FILE",
    "Backoff",
    "SweepTimer",
    "catch_up",
    "check_roster",
    "free_dead_lease",
    "lease_holder_id",
    "serve_forever",
]

logger = logging.getLogger("carepath.serve")

#: Where ``carepath up`` records its Prefect server (in the data folder), for a restart to take over.
PID_FILE = "prefect-server.pid"
#: How often a process waiting for the Prefect server asks whether it answers again (a cheap health check).
_RETRY_SECONDS = 2.0
#: How long a serving process starting up waits for another one to finish checking Prefect's automations.
_SETUP_TTL = timedelta(seconds=60)


def check_roster(app: App) -> str:
    """Load the roster if there is one (a bad one stops start-up with its diagnostics); a one-line summary."""
    roster = app.notifier.roster() if hasattr(app.notifier, "roster") else None
    if roster is None:
        return "no roster: escalations are raised and recorded as reaching nobody; see `carepath status`"
    return f"roster {roster.file}: {len(roster.roles())} roles"


def catch_up(app: App, deployment_names: list[str], holder: str, *, alone: bool = True) -> SweepReport | None:
    """What a (re)starting serving process does before serving: when it is ``alone`` (the only process serving
    these deployments), take back runs a dead predecessor had picked up and drop the late runs of the sweep's old
    interval schedule and of the daily measures; make sure runs whose process dies get marked Crashed (an
    automation on heartbeats) and that the operators' automations exist; then one sweep pass over everything the
    outage left due.

    Not ``alone`` (one of several serving processes: ``Settings.serving_shared``), a run picked up or running may be
    a live sibling's, so none is touched: the sweep's reconciler requeues runs stuck picked up past
    :data:`~engine.app.reconcile.PICKED_UP_STUCK` whoever held them, the crashed-run automation ends runs whose
    process died, and the sweep fires any rung whose run is late meanwhile."""
    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.deployments import MEASURES_DEPLOYMENT, SWEEP_DEPLOYMENT
    from engine.orchestration.prefect_api import (
        cancel_auto_scheduled_runs,
        requeue_orphaned_runs,
        run_sync,
    )

    started = time.monotonic()
    try:
        with prefect_api(app.settings):
            wall_now = app.clock.wall_time(app.clock.now())
            if alone:
                run_sync(requeue_orphaned_runs(deployment_names, running_before=wall_now))
                run_sync(cancel_auto_scheduled_runs([SWEEP_DEPLOYMENT]))
                late = "missed during an outage: the next daily run reports (or run it now)"
                run_sync(cancel_auto_scheduled_runs([MEASURES_DEPLOYMENT], due_before=wall_now, message=late))
            _ensure_automations(app, holder)
    except CarepathError as exc:
        logger.warning("could not take back orphaned runs: %s", exc)
    if free_dead_lease(app):
        logger.info("took over the sweep lease of a process that died")
    report = sweep_tick(app, holder, thorough=True)
    if report is not None:
        from engine.orchestration.names import sweep_run_name

        print(f"caught up in {time.monotonic() - started:.1f} s: {sweep_run_name(report)}", flush=True)
    return report


#: The store lease under which one starting serving process at a time checks Prefect's automations: serving
#: processes started together (containers) would otherwise each find one missing and create it, twice.
SETUP_LEASE = "serving-setup"


def _ensure_automations(app: App, holder: str, wait: float = _SETUP_TTL.total_seconds()) -> None:
    """The crashed-run and operators' automations (found by name, created if missing), one process at a time."""
    from engine.orchestration.prefect_api import ensure_operator_automations, ensure_zombie_automation, run_sync

    deadline = time.monotonic() + wait
    now = lambda: app.clock.wall_time(app.clock.now())  # noqa: E731
    while not store.acquire_lease(app.engine, SETUP_LEASE, holder, now(), _SETUP_TTL):
        if time.monotonic() > deadline:  # its holder died mid-setup: the next start checks again
            return
        time.sleep(0.5)
    try:
        run_sync(ensure_zombie_automation())
        run_sync(ensure_operator_automations())
    finally:
        store.release_lease(app.engine, SETUP_LEASE, holder)


def serve_forever(
    settings: Settings,
    *,
    port: int | None,
    speed: float | None = None,
    ready: Callable[[list[PathwaySpec], str], None] | None = None,
    api: tuple[str, int] | None = None,
    workers: int = 1,
) -> None:
    """Register, start Prefect if needed, catch up, and serve until interrupted; ``ready(specs, ui_url)`` once
    serving. ``speed`` keeps a compressed clock already stored with the same factor (a restart continues it).
    ``api`` (host, port): also serve the HTTP API there, on its own App (its requests run as in-process flow
    runs, like the CLI's). ``workers``: serving processes in all, this one included (the others are started
    once this one has caught up, see :mod:`engine.orchestration.workers`)."""
    from engine.api.serving import ApiServer
    from engine.orchestration.server import spawn_local_server

    local = _Local()
    if not settings.prefect_api_url:  # it boots while the pathways and the roster are checked
        local.server = spawn_local_server(
            settings.home / "prefect", port, log_path=settings.home / "prefect-server.log", pid_file=_pid_file(settings)
        )
    app = production_app(settings)
    serving = api_server = None
    try:
        specs = register_pathways(app, settings.pathways)
        print(check_roster(app))
        if speed is not None:
            _use_speed(app, speed)
        if local.server is not None:
            _ready(settings, local.server)
            settings = settings.with_changes(prefect_api_url=local.server.api_url)
        serving = dispatching_app(settings)
        if api is not None:
            api_server = _start_api(ApiServer(dispatching_app(settings, deferred=True), *api))
        _serve(serving, specs, ready, local, workers)
    finally:
        if api_server is not None:
            api_server.stop()
        if local.server is not None:
            settings.api_url_file.unlink(missing_ok=True)
            local.server.stop()
        if serving is not None:
            serving.close()
        app.close()


def _start_api(server: ApiServer) -> ApiServer | None:
    """The API beside the serving: a port in use is a warning, not the end of serving (deadlines come first)."""
    try:
        server.start()
    except CarepathError as exc:
        logger.warning("%s; serving without it", one_line(str(exc)))
        print(f"warning: {one_line(str(exc))}; serving without it", flush=True)
        return None
    return server


@dataclass
class _Local:
    """The local Prefect server this process started (None: a server someone else runs); replaced on restart."""

    server: LocalServer | None = None


def _use_speed(app: App, speed: float) -> None:
    stored = app.clock
    if not (isinstance(stored, CompressedClock) and stored.factor == speed):
        app.set_clock(CompressedClock.starting_now(speed))


def _pid_file(settings: Settings) -> Path:
    return settings.home / PID_FILE


def _start_local(settings: Settings, port: int | None) -> LocalServer:
    from engine.orchestration.server import spawn_local_server

    server = spawn_local_server(
        settings.home / "prefect", port, log_path=settings.home / "prefect-server.log", pid_file=_pid_file(settings)
    )
    _ready(settings, server)
    return server


def _ready(settings: Settings, server: LocalServer) -> None:
    """Wait for the server, then tell the other commands where it is."""
    server.wait_ready()
    _write_atomically(settings.api_url_file, server.api_url)
    print(f"Prefect server answering on port {server.port} after {server.startup_seconds:.1f} s", flush=True)


def _write_atomically(path: Path, text: str) -> None:
    """Other commands read this file at any moment: they must see the old content or the new, never an empty one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)


def _serve(
    app: App,
    specs: list[PathwaySpec],
    ready: Callable[[list[PathwaySpec], str], None] | None,
    local: _Local,
    workers: int = 1,
) -> None:
    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.workers import start_workers

    with prefect_api(app.settings) as url:
        # Prefect is imported only now that its API address is set
        from engine.orchestration.deployments import compile_deployments, measures_deployment, sweep_deployment
        from engine.orchestration.prefect_api import serve_deployments
        from engine.orchestration.server import api_reachable

        shared = [sweep_deployment(), measures_deployment()]
        deployments = [d for spec in specs for d in compile_deployments(spec)] + shared
        timer = SweepTimer(app)
        # the extra serving processes start once this one has caught up: until then no sibling holds a run
        catch_up(app, [d.full_name for d in deployments], timer.holder, alone=not app.settings.serving_shared)
        alone = workers == 1 and not app.settings.serving_shared
        timer.start()
        warm = None if app.settings.deadline_processes else start_in_process_deadlines(app, specs)
        # the deadline deployments' runs are run here (in_process), not by Prefect's runner: registered, not served
        ours = set(warm.flows) if warm is not None else set()
        claimed = [d for d in deployments if d.full_name in ours]
        served = [d for d in deployments if d.full_name not in ours]
        extra = None
        try:
            extra = start_workers(app.settings, workers - 1, url)
            if ready is not None:
                ready(specs, url.removesuffix("/api"))
            backoff = Backoff()

            def serve(first: bool) -> None:  # after the first time, runs the stopped runner picked up are orphans
                serve_deployments(
                    *served,
                    requeue_orphans=not first and alone,  # with siblings, the reconciler takes them back
                    healthy=lambda: api_reachable(url),
                    gone=lambda: local.server is not None and not local.server.running(),
                    registered=claimed,
                )

            _serve_with_retries(serve, lambda: _wait_for_server(app.settings, local, backoff), backoff)
        finally:
            if extra is not None:
                extra.stop()
            if warm is not None:
                warm.stop()
            timer.stop()


def _serve_with_retries(serve: Callable[[bool], None], recover: Callable[[], None], backoff: Backoff) -> None:
    """``serve(first)`` until it returns (stopped). When it raises (the server went away, or serving fails at once
    again and again), wait ``backoff``'s next delay, ``recover()`` (until the server answers), and serve again."""
    first = True
    while True:
        started = backoff.clock()
        try:
            serve(first)
            return
        except Exception as exc:  # the server went away, or serving itself fails
            logger.warning("serving stopped (%s: %s)", type(exc).__name__, one_line(str(exc), 200))
        first = False
        backoff.ran_for(backoff.clock() - started)
        print(f"serving again in {backoff.next_delay():g} s", flush=True)
        backoff.wait()
        recover()


def _wait_for_server(
    settings: Settings,
    local: _Local,
    backoff: Backoff,
    *,
    start: Callable[[Settings, int | None], LocalServer] | None = None,
    reachable: Callable[[str], bool] | None = None,
) -> None:
    """Block until the Prefect API answers again, restarting the local server (from this, the main thread: the
    parent-death signal follows the thread that starts the server) if it died; a failed restart waits
    ``backoff``'s next delay before the next one. ``start`` and ``reachable`` are injected for tests."""
    if start is None:
        start = _start_local
    if reachable is None:
        from engine.orchestration.server import api_reachable

        reachable = api_reachable
    told = False
    while True:
        failed = False
        if local.server is not None and not local.server.running():
            try:
                local.server = start(settings, local.server.port)
                print(f"restarted the Prefect server ({local.server.startup_seconds:.1f} s)", flush=True)
            except CarepathError as exc:
                logger.warning("could not restart the Prefect server: %s", exc)
                failed = True
        url = settings.api_url()
        if url and reachable(url):
            return
        if not told:
            print("the Prefect server is not answering; serving resumes when it does", flush=True)
            told = True
        if failed:
            print(f"restarting the Prefect server again in {backoff.next_delay():g} s", flush=True)
            backoff.wait()
        else:
            backoff.sleep(_RETRY_SECONDS)
