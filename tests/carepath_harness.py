"""A running Carepath for end-to-end tests: a store, a compressed clock, a serving process, in-process events.

``running_carepath`` is what the orchestration and safety suites share: one serving process (``python -m
flows.serve``) runs deadline and sweep deployments against the session's Prefect server, as in production, while
coordinator events run in the test process through the same use cases ``carepath event`` calls.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlmodel import Session, select
from store_fixtures import pg_admin_url, pg_unavailable_reason, temporary_pg_database

from engine.app import App, Settings, enroll, record_event
from engine.app.pathways import register_pathways
from engine.clock import CompressedClock, utc
from engine.episode.domain.consent import Consent, single_tpo_consent
from engine.orchestration.flows import dispatching_app
from engine.store import EpisodeRecord, EscalationRecord, RungRecord

if TYPE_CHECKING:
    from prefect_harness import ServeProcess, ServeProcessFactory

__all__ = ["DEPLOYMENTS", "FACTOR", "Harness", "assert_raised_on_time", "running_carepath", "tpo_consent"]

FACTOR = 1800.0  # pathway seconds per wall second
#: How long a wait on the store may take beyond the time it waits for: on a loaded 2-core machine a deadline run
#: can start a minute late. Only a failing test waits this long.
LOAD_ALLOWANCE = 180.0
ROOT = Path(__file__).resolve().parents[1]
PATHWAYS = ("detox-to-aftercare", "reentry")
DEPLOYMENTS = [f"{p}-{k}/{p}" for p in PATHWAYS for k in ("enroll", "event", "deadline")] + ["carepath-sweep/carepath"]


def tpo_consent(consent_id: str, person: str) -> Consent:
    """A synthetic single consent for treatment, payment and operations to all treating providers."""
    return single_tpo_consent(
        consent_id,
        person,
        discloser="Carepath test program",
        information="SUD diagnosis, medications and referral details",
        signed_on=date(2026, 1, 1),
    )


@dataclass
class Harness:
    app: App
    env: dict[str, str]
    start_serving: Callable[[], ServeProcess]
    serving: ServeProcess
    enrolled: list[str] = field(default_factory=list)

    def enroll(self, pathway: str, person: str, consent: bool = True) -> str:
        episode_id = enroll(self.app, pathway, person)
        if consent:
            self.app.service.add_consent(episode_id, tpo_consent(f"cn-{episode_id}", person))
        self.enrolled.append(episode_id)
        return episode_id

    def retire_all(self) -> None:
        """Close every episode a test left running (lost, then outreach closed), cancelling its timers.

        Deadline runs of forgotten episodes would otherwise keep firing, each a process start, and slow down
        every later test on a 2-core machine.
        """
        from engine.errors import CarepathError

        for episode_id in self.enrolled:
            for name in ("contact.lost", "outreach.closed"):
                if self.episode(episode_id).status != "active":
                    break
                try:
                    record_event(self.app, episode_id, name, {})
                except CarepathError:
                    break
        self.enrolled.clear()

    def event(self, episode_id: str, name: str, event_id: str | None = None, **data: Any) -> str:
        result = record_event(self.app, episode_id, name, data, event_id=event_id)
        return "duplicate event: nothing changed" if result.status == "duplicate" else "applied"

    def drive(self, episode_id: str, script: list[tuple[str, dict[str, Any]]]) -> None:
        for name, data in script:
            self.event(episode_id, name, **data)

    def episode(self, episode_id: str) -> EpisodeRecord:
        return self.app.service.episode(episode_id)

    def rows(self, model: Any, **where: Any) -> list[Any]:
        with Session(self.app.engine) as s:
            query = select(model)
            for key, value in where.items():
                query = query.where(getattr(model, key) == value)
            return list(s.exec(query))

    def wall_seconds_until(self, at: datetime) -> float:
        """Wall seconds from now until pathway time ``at``, plus :data:`LOAD_ALLOWANCE`: a bound for waiting on
        the store, never a measure of lateness (see :func:`assert_raised_on_time`)."""
        return (utc(at) - self.app.clock.now()).total_seconds() / FACTOR + LOAD_ALLOWANCE

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.25)


def assert_raised_on_time(h: Harness, rung: RungRecord, escalation: EscalationRecord) -> None:
    """Never before the deadline, and the rung's run (when it has one) was set to start by the deadline.

    How late after its deadline a rung escalates depends on the machine's load (how late Prefect starts a process on a
    busy 2-core machine): ``bench/bench_caseload.py`` measures that lateness; a test waits on the store instead.
    """
    from engine.orchestration.prefect_api import get_run_state, run_sync

    due, raised = utc(rung.due_at), utc(escalation.raised_at)
    assert due <= raised, f"{rung.id} escalated before its deadline"
    run = run_sync(get_run_state(rung.flow_run_id)) if rung.flow_run_id else None
    if run is not None and run.scheduled_time is not None:
        assert utc(run.scheduled_time) <= h.app.clock.wall_time(due) + timedelta(seconds=1), "its run starts late"


def _wait_served(since: datetime) -> None:
    from engine.orchestration.prefect_api import run_sync, wait_for_deployments

    run_sync(wait_for_deployments(DEPLOYMENTS, 120, polled_since=since))


@contextmanager
def running_carepath(
    database: str,
    prefect_server: str,
    serve_process: ServeProcessFactory,
    home: Path,
    *,
    setup: Callable[[Path], None] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Harness]:
    """Carepath on ``database`` (sqlite or postgresql) with ``home`` as its data folder; ``setup`` runs first;
    ``extra_env`` is added to the serving process's environment (and the harness's)."""
    with ExitStack() as stack:
        env = {"CAREPATH_HOME": str(home), "PREFECT_API_URL": prefect_server, **(extra_env or {})}
        if database == "postgresql":
            if pg_admin_url() is None:
                pytest.skip(pg_unavailable_reason())
            env["CAREPATH_DATABASE_URL"] = stack.enter_context(temporary_pg_database("carepath_e2e"))
        if setup is not None:
            setup(home)
        app = dispatching_app(Settings.from_env({**os.environ, **env}))
        app.set_clock(CompressedClock.starting_now(FACTOR))
        register_pathways(app, ROOT / "pathways")
        log = home / "serve.log"

        def start() -> ServeProcess:
            since = datetime.now(UTC)
            process = serve_process("flows.serve", log_path=log, env={**env, "PREFECT_LOGGING_LEVEL": "INFO"})
            _wait_served(since)
            return process

        harness = Harness(app, env, start, start())
        try:
            yield harness
        finally:
            from engine.orchestration.prefect_api import run_sync

            run_sync(_cancel_leftover_runs())
            harness.serving.stop()
            app.close()


async def _cancel_leftover_runs() -> None:
    """Cancel runs still waiting on the shared server, so the next module's serving process does not spend its
    first minutes starting processes for rungs of a store it does not have."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    waiting = FlowRunFilterStateType(any_=[StateType.SCHEDULED, StateType.PENDING])
    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=waiting)))
        for run in runs:
            await client.set_flow_run_state(run.id, Cancelled(message="test module finished"), force=True)
