"""Deadline runs run by the serving process itself (issue 12), on a real Prefect server.

A serving process claims the deadline runs about to come due (one ``Pending`` proposal, which Prefect grants
once) and runs each in its own interpreter instead of starting a process per run. What an operator and the
escalations rely on:

- two claimers racing for the same due runs (two serving processes) never both get one: each run runs once;
- a claimed run runs at its time, not before, as the same flow run, and records which process ran it;
- a claimed run whose deadlines were met while it waited (``Cancelling``) ends ``Met`` without running (one
  cancelled for another reason, ``Cancelled``);
- through a real serving process (``python -m flows.serve``), a due rung escalates from a run the serving process
  ran itself; with ``CAREPATH_DEADLINE_PROCESSES=1`` the run gets a process of its own, as before.

The claims are checked on a deployment nobody serves, so that only the test claims its runs.
"""

from __future__ import annotations

import contextvars
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from carepath_harness import Harness, running_carepath
from prefect import flow

from engine.orchestration.prefect_api import (
    cancel_flow_run,
    claim_due_runs,
    deployment_ids,
    get_run_state,
    run_claimed,
    run_sync,
    schedule_shared_run,
)
from engine.store import EscalationRecord, RungRecord, WorkItemRecord

if TYPE_CHECKING:
    from prefect_harness import ServeProcessFactory

pytest_plugins = ["prefect_harness"]
pytestmark = pytest.mark.prefect

#: What the unserved deployment's flow ran, by label (a run that ran twice would show twice).
RAN: list[str] = []
_RAN_LOCK = threading.Lock()


@flow(name="carepath-claim-test")
async def noted(label: str) -> str:
    with _RAN_LOCK:
        RAN.append(label)
    return label


@pytest.fixture(scope="module")
def unserved(prefect_server: str) -> str:
    """A deployment of :func:`noted` registered on the server and served by nobody; its full name."""

    async def register() -> str:
        deployment = await noted.ato_deployment(name="unserved", tags=["carepath-test"])
        await deployment.aapply()
        return deployment.full_name

    return run_sync(register())


def _schedule(name: str, label: str, at: datetime) -> str:
    return str(
        run_sync(
            schedule_shared_run(
                name,
                parameters={"label": label},
                at=at,
                idempotency_key=f"claim-test-{uuid.uuid4().hex}",
                flow_run_name=f"claim test {label}",
                tags=["carepath-test"],
            )
        )
    )


def test_racing_claimers_each_get_a_run_at_most_once_and_it_runs_once_at_its_time(unserved: str) -> None:
    at = datetime.now(UTC) + timedelta(seconds=3)
    labels = [f"race-{n}" for n in range(6)]
    run_ids = {_schedule(unserved, label, at) for label in labels}
    ids = list(run_sync(deployment_ids([unserved])).values())
    claims: list[list[Any]] = [[], []]

    def claim(slot: int) -> None:
        claims[slot] = run_sync(claim_due_runs(ids, at + timedelta(seconds=30), 10))

    # each thread in a copy of this context: the session's Prefect settings live in a context variable
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(claim, n)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = [str(run.id) for mine in claims for run in mine]
    assert sorted(got) == sorted(run_ids), "every due run is claimed once, by one of the two"

    ended = [run_sync(run_claimed(noted, run)) for mine in claims for run in mine]
    assert ended == ["Completed"] * len(labels)
    with _RAN_LOCK:
        assert sorted(label for label in RAN if label.startswith("race-")) == sorted(labels)
    for run_id in run_ids:
        state = run_sync(get_run_state(run_id))
        assert state is not None and state.state_type == "COMPLETED"
        assert state.start_time is not None and state.start_time >= at - timedelta(seconds=1), "never early"
        assert _infrastructure_pid(run_id) == f"{socket.gethostname()}:{os.getpid()}"


@pytest.mark.parametrize(("met", "ending"), [(True, ("COMPLETED", "Met")), (False, ("CANCELLED", "Cancelled"))])
def test_a_claimed_run_cancelled_while_it_waits_ends_without_running(
    unserved: str, met: bool, ending: tuple[str, str]
) -> None:
    """Met in time, it ends ``Met`` as a Scheduled run met in time does (not a grey Cancelled); cancelled for
    another reason (the episode ended), ``Cancelled``."""
    label = f"met-meanwhile-{met}"
    at = datetime.now(UTC) + timedelta(seconds=2)
    run_id = _schedule(unserved, label, at)
    ids = list(run_sync(deployment_ids([unserved])).values())
    [claimed] = [r for r in run_sync(claim_due_runs(ids, at + timedelta(seconds=30), 10)) if str(r.id) == run_id]

    assert run_sync(cancel_flow_run(run_id, met=met)), "what Carepath does to a picked-up run it no longer needs"
    assert run_sync(run_claimed(noted, claimed)) == ending[1]
    state = run_sync(get_run_state(run_id))
    assert state is not None and (state.state_type, state.state_name) == ending
    with _RAN_LOCK:
        assert label not in RAN


def _infrastructure_pid(run_id: str) -> str | None:
    from prefect.client.orchestration import get_client

    async def read() -> str | None:
        async with get_client() as client:
            return (await client.read_flow_run(uuid.UUID(run_id))).infrastructure_pid

    return run_sync(read())


# ----------------------------------------------------------------------------------- through a serving process


@pytest.fixture(scope="module", params=["in-process", "processes"])
def carepath(
    request: pytest.FixtureRequest,
    prefect_server: str,
    serve_process: ServeProcessFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Harness]:
    home = tmp_path_factory.mktemp(f"carepath-{request.param}")
    extra = {"CAREPATH_DEADLINE_PROCESSES": "1"} if request.param == "processes" else {}
    with running_carepath("sqlite", prefect_server, serve_process, home, extra_env=extra) as harness:
        yield harness
        harness.retire_all()


def test_a_due_rung_escalates_from_a_run_its_serving_process_ran_itself(carepath: Harness) -> None:
    h = carepath
    episode_id = h.enroll("detox-to-aftercare", "P-WARM-001")
    h.event(episode_id, "medical-screening.completed")
    h.event(episode_id, "assessment.completed", insurance="medicaid", needs_withdrawal_management=True)
    step = max(
        (i for i in h.rows(WorkItemRecord, episode_id=episode_id) if i.done_on == "handoff.accepted"),
        key=lambda i: i.opened_at,
    )
    first = min(h.rows(RungRecord, work_item_id=step.id), key=lambda r: r.index)
    h.wait_for(
        "the first rung to escalate",
        lambda: bool(h.rows(EscalationRecord, rung_id=first.id)),
        h.wall_seconds_until(first.due_at),
    )
    [rung] = h.rows(RungRecord, id=first.id)
    assert rung.flow_run_id is not None
    h.wait_for("its run to end", lambda: _final(rung.flow_run_id), 120)
    ran_by = _infrastructure_pid(rung.flow_run_id)
    if h.env.get("CAREPATH_DEADLINE_PROCESSES") == "1":
        assert ran_by is None, "Prefect's runner started it in a process of its own"
    else:
        assert ran_by == f"{socket.gethostname()}:{h.serving.process.pid}", "the serving process ran it itself"


def _final(run_id: str | None) -> bool:
    state = run_sync(get_run_state(run_id)) if run_id else None
    return state is not None and state.state_type in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
