"""What an operator sees in the Prefect UI, read back through Prefect's API from a running Carepath.

One module, one running Carepath (a serving process, in-process events, a compressed clock): a deadline run that
escalates ends ``Escalated`` with its tags, a critical alert's run ends ``Escalated: critical``, a met deadline's
run ends ``Met``, a refused event's run ends ``Rejected`` named for what was refused, the operators' automations
exist, and the program overview artifact holds its counts. Every wait is on a state, bounded by the harness's
allowance for a loaded machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from carepath_harness import LOAD_ALLOWANCE, Harness, running_carepath
from sqlmodel import Session

from engine import store
from engine.errors import EventRejected
from engine.store import RungRecord, WorkItemRecord

if TYPE_CHECKING:
    from prefect_harness import ServeProcessFactory

pytestmark = pytest.mark.prefect

ASSESSED = [
    ("medical-screening.completed", {}),
    ("assessment.completed", {"insurance": "medicaid", "needs_withdrawal_management": True}),
]


@pytest.fixture(scope="module")
def carepath(
    prefect_server: str, serve_process: ServeProcessFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    home: Path = tmp_path_factory.mktemp("carepath-operator")
    with running_carepath("sqlite", prefect_server, serve_process, home) as harness:
        yield harness
        harness.retire_all()


def _run(run_id: str) -> Any:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from engine.orchestration.prefect_api import run_sync

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_flow_run(UUID(run_id))

    return run_sync(read())


def _runs_named(prefix: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    from engine.orchestration.prefect_api import run_sync

    async def read() -> list[Any]:
        async with get_client() as client:
            wanted = FlowRunFilter(name=FlowRunFilterName(like_=prefix))
            return list(await client.read_flow_runs(flow_run_filter=wanted))

    return run_sync(read())


def _final(h: Harness, run_id: str, timeout: float) -> Any:
    found: list[Any] = []

    def done() -> bool:
        run = _run(run_id)
        found[:] = [run]
        return run.state is not None and run.state.is_final()

    h.wait_for(f"run {run_id} to end", done, timeout)
    return found[0]


def _step(h: Harness, episode_id: str, kind: str) -> tuple[WorkItemRecord, RungRecord]:
    [item] = [
        i
        for i in h.rows(WorkItemRecord, episode_id=episode_id, kind="handoff-step", status="open")
        if i.key.endswith(kind)
    ]
    first = min(h.rows(RungRecord, work_item_id=item.id), key=lambda r: r.index)
    return item, first


def test_an_escalating_deadline_run_ends_escalated_with_its_tags(carepath: Harness) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-OPS-001")
    h.drive(ep, ASSESSED)
    _item, rung = _step(h, ep, "accepted")
    assert rung.flow_run_id is not None
    run = _final(h, rung.flow_run_id, h.wall_seconds_until(rung.due_at))
    if run.state.type.value == "CANCELLED" and run.start_time is None:  # the sweep fired the rung before it started
        pytest.skip("the machine is too slow: the run had not started 20 s after the deadline")
    assert (run.state.type.value, run.state.name) == ("COMPLETED", "Escalated")
    assert {"escalated", "severity:normal", f"role:{rung.role}", "deadline"} <= set(run.tags)


def test_a_critical_alert_run_ends_escalated_critical_and_a_refused_event_ends_rejected(carepath: Harness) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-OPS-002")
    h.drive(ep, [*ASSESSED, ("handoff.accepted", {}), ("moud-plan.confirmed", {}), ("transfer-plan.completed", {})])
    h.event(ep, "detox.completed")
    h.event(ep, "medications.sending-list", medications=[{"name": "buprenorphine", "dose": "16 mg"}])
    h.event(ep, "medications.receiving-list", medications=[{"name": "sertraline", "dose": "50 mg"}])
    critical = [r for r in _runs_named(ep) if r.state and r.state.name == "Escalated: critical"]
    assert len(critical) == 1 and critical[0].state.type.value == "COMPLETED"
    assert {"escalated", "severity:critical"} <= set(critical[0].tags)
    assert "medications.receiving-list" in critical[0].name

    with pytest.raises(EventRejected):
        h.event(ep, "detox.completed")
    [refused] = _runs_named(f"{ep} · refused detox.completed")
    assert refused.name == f"{ep} · refused detox.completed (not-expected)"
    assert (refused.state.type.value, refused.state.name) == ("COMPLETED", "Rejected")
    assert "rejected" in refused.tags

    from prefect.client.orchestration import get_client

    from engine.orchestration.prefect_api import CRITICAL_AUTOMATION, LATE_AUTOMATION, run_sync

    async def overview() -> tuple[list[str], Any]:
        async with get_client() as client:
            names = [a.name for a in await client.read_automations()]
            from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

            [latest] = await client.read_latest_artifacts(
                artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=["program-overview"]))
            )
            return names, latest

    def counts(latest: Any) -> tuple[int, int, int]:
        assert "| active episodes | overdue work | open escalations | critical |" in latest.data
        row = latest.data.split("|---|---|---|---|---|\n")[1].splitlines()[0]
        active, _overdue, escalated, critical_count, _loops = (c.strip(" *") for c in row.strip("|").split("|"))
        return int(active), int(escalated), int(critical_count)

    def shows_both_episodes_and_the_critical_escalation() -> bool:  # rebuilt at most every 10 s (engine.app.throttle)
        active, escalated, critical_count = counts(run_sync(overview())[1])
        return active >= 2 and escalated >= 2 and critical_count >= 1

    h.wait_for(
        "the program overview to show the critical escalation", shows_both_episodes_and_the_critical_escalation, 60
    )
    names, latest = run_sync(overview())
    assert {CRITICAL_AUTOMATION, LATE_AUTOMATION} <= set(names)
    assert latest.description == latest.data, "the key's page renders the description"


def test_a_deadline_met_in_time_ends_met(carepath: Harness) -> None:
    h = carepath
    h.retire_all()  # a deadline run carries every rung due in its minute: no other episode's may share this one
    ep = h.enroll("detox-to-aftercare", "P-OPS-003")
    h.drive(ep, [*ASSESSED, ("handoff.accepted", {})])
    _item, rung = _step(h, ep, "visit-kept")
    assert rung.flow_run_id is not None
    h.event(ep, "handoff.visit-kept")
    [met] = h.rows(RungRecord, id=rung.id)
    if met.status == "fired":
        pytest.skip("the machine is too slow: the deadline came due before the event was recorded")
    with Session(h.app.engine) as session:  # the episode's other work due in the same minute shares the run
        others = store.run_needs(session, [rung.flow_run_id])[rung.flow_run_id]
    if others:  # meeting one deadline leaves the run the others wait for: not cancelled, not ended Met
        run = _run(rung.flow_run_id)
        assert run.state.type.value in ("SCHEDULED", "PENDING", "RUNNING"), (run.state.type.value, run.state.name)
        return
    # every deadline of the run met in time: it ends Met, not a grey Cancelled, however far it had got (waiting
    # to be picked up, claimed and waiting for its time, or running and waiting for the rung)
    run = _final(h, rung.flow_run_id, 90 + LOAD_ALLOWANCE)
    assert (run.state.type.value, run.state.name) == ("COMPLETED", "Met"), run.state.message


def test_the_daily_measures_deployment_publishes_counts_and_no_person(carepath: Harness) -> None:
    """``carepath-measures/carepath`` is served with its daily schedule; a run of it (started as the UI's "Run"
    does, in the serving process's child) publishes the ``quality-measures`` table: counts, never an id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    from engine.orchestration.deployments import MEASURES_CRON, MEASURES_DEPLOYMENT
    from engine.orchestration.flows import MEASURES_ARTIFACT
    from engine.orchestration.prefect_api import run_sync

    h = carepath
    episode = h.enroll("reentry", "P-OPS-MEASURES")

    async def start() -> tuple[Any, str]:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(MEASURES_DEPLOYMENT)
            run = await client.create_flow_run_from_deployment(deployment.id)
            return deployment, str(run.id)

    deployment, run_id = run_sync(start())
    assert [s.schedule.cron for s in deployment.schedules] == [MEASURES_CRON]

    async def upcoming() -> int:
        from prefect.client.schemas.filters import (
            DeploymentFilter,
            DeploymentFilterId,
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        async with get_client() as client:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                ),
            )
            return sum(1 for r in runs if r.auto_scheduled)

    # the server makes the daily runs ahead, three of them (SCHEDULED_RUNS_AHEAD), not Prefect's hundred
    h.wait_for("the daily measures runs to be scheduled", lambda: run_sync(upcoming()) > 0, 90 + LOAD_ALLOWANCE)
    assert 0 < run_sync(upcoming()) <= 3
    run = _final(h, run_id, 120 + LOAD_ALLOWANCE)
    assert run.state.type.value == "COMPLETED", run.state.message
    assert run.name.startswith("measures · ")

    async def artifact() -> Any:
        async with get_client() as client:
            wanted = ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[MEASURES_ARTIFACT]))
            [latest] = await client.read_latest_artifacts(artifact_filter=wanted)
            return latest

    latest = run_sync(artifact())
    rows = latest.data if isinstance(latest.data, list) else __import__("json").loads(latest.data)
    assert {r["measure"] for r in rows} >= {"follow-up.7d", "initiation", "reentry.contact-72h"}
    text = str(latest.data) + str(latest.description)
    assert episode not in text and "P-OPS" not in text
