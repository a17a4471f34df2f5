"""Both seed pathways on a real Prefect server and a real store (SQLite, then PostgreSQL), on a compressed clock.

One serving process (``python -m flows.serve``) runs the deadline and sweep deployments, as in production;
coordinator events run in this process, as ``carepath event`` does. One pathway hour passes in two wall seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from carepath_harness import FACTOR, Harness, assert_raised_on_time, running_carepath
from sqlmodel import Session

from engine import store
from engine.clock import utc
from engine.errors import CarepathError
from engine.store import AuditRecord, EscalationRecord, RungRecord, StageVisitRecord, WorkItemRecord

if TYPE_CHECKING:
    from prefect_harness import ServeProcessFactory

pytestmark = pytest.mark.prefect


@pytest.fixture(autouse=True)
def _retire(carepath: Harness) -> Iterator[None]:
    """Each test closes what it left running, so its timers do not load the next test."""
    yield
    carepath.retire_all()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def carepath(
    request: pytest.FixtureRequest,
    prefect_server: str,
    serve_process: ServeProcessFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Harness]:
    home = tmp_path_factory.mktemp(f"carepath-{request.param}")
    with running_carepath(request.param, prefect_server, serve_process, home) as harness:
        yield harness


DETOX_MAIN = [
    ("medical-screening.completed", {}),
    ("assessment.completed", {"insurance": "medicaid", "needs_withdrawal_management": True}),
    ("handoff.accepted", {}),
    ("handoff.visit-kept", {}),
    ("medications.reconciled", {}),
    ("moud-plan.confirmed", {}),
    ("transfer-plan.completed", {}),
    ("detox.completed", {}),
    ("authorization.approved", {}),
    ("handoff.accepted", {}),
    ("residential.completed", {}),
    ("iop.completed", {}),
    ("relapse.reported", {"needs_withdrawal_management": False}),
    ("residential.completed", {}),
    ("iop.completed", {}),
    ("aftercare.completed", {}),
]
DETOX_OUTREACH = [
    ("contact.lost", {}),
    ("contact.re-established", {}),
    ("contact.lost", {}),
    ("outreach.closed", {}),
]
REENTRY_PATHS = [
    [
        ("custody.released", {}),
        ("contact.lost", {}),
        ("contact.re-established", {}),
        ("continuity.confirmed", {"days_on_moud": 120}),
    ],
    [("custody.released", {}), ("custody.booked", {})],
    [("custody.released", {}), ("contact.lost", {}), ("outreach.closed", {})],
]


def _visited(h: Harness, episodes: list[str]) -> set[str]:
    return {v.stage for e in episodes for v in h.rows(StageVisitRecord, episode_id=e)}


def _assert_nothing_left_scheduled(h: Harness, episodes: list[str]) -> None:
    from engine.orchestration.prefect_api import get_run_state, run_sync

    for episode_id in episodes:
        rungs = h.rows(RungRecord, episode_id=episode_id)
        assert not [r.id for r in rungs if r.status == "pending"], "a finished episode still has pending rungs"
        for rung in rungs:
            if rung.status == "cancelled" and rung.flow_run_id:
                state = run_sync(get_run_state(rung.flow_run_id))
                # a run still waiting must be waiting for some other pending rung (a deadline run carries every rung
                # of its minute); one under way (running, or being cancelled) ends by itself
                waiting = state is not None and state.state_type in ("SCHEDULED", "PENDING")
                with Session(h.app.engine) as session:
                    needed = store.run_needs(session, [rung.flow_run_id]).get(rung.flow_run_id, False)
                assert not waiting or needed, f"run of cancelled rung {rung.id} is still {state}, for nothing"


def test_detox_to_aftercare_is_driven_through_every_stage(carepath: Harness) -> None:
    h = carepath
    main, outreach = h.enroll("detox-to-aftercare", "P-ORCH-001"), h.enroll("detox-to-aftercare", "P-ORCH-002")
    h.drive(main, DETOX_MAIN)
    h.drive(outreach, DETOX_OUTREACH)
    assert (h.episode(main).stage, h.episode(main).status) == ("completed", "completed")
    assert (h.episode(outreach).stage, h.episode(outreach).status) == ("closed", "completed")
    stages = {s.id for s in h.app.service.plan_for(main).stages.values()}
    assert _visited(h, [main, outreach]) == stages
    _assert_nothing_left_scheduled(h, [main, outreach])


def test_reentry_is_driven_through_every_stage(carepath: Harness) -> None:
    h = carepath
    episodes = [h.enroll("reentry", f"P-ORCH-01{n}") for n in range(len(REENTRY_PATHS))]
    for episode_id, script in zip(episodes, REENTRY_PATHS, strict=True):
        h.drive(episode_id, script)
    assert [h.episode(e).stage for e in episodes] == ["engaged", "reincarcerated", "closed"]
    stages = {s.id for s in h.app.service.plan_for(episodes[0]).stages.values()}
    assert _visited(h, episodes) == stages
    _assert_nothing_left_scheduled(h, episodes)


def _accept_step(h: Harness, episode_id: str) -> WorkItemRecord:
    items = [i for i in h.rows(WorkItemRecord, episode_id=episode_id) if i.done_on == "handoff.accepted"]
    return max(items, key=lambda i: i.opened_at)


def _escalations(h: Harness, item_id: str) -> list[EscalationRecord]:
    return sorted(h.rows(EscalationRecord, work_item_id=item_id), key=lambda e: e.rung_id)


def _to_detox(h: Harness, person: str) -> str:
    episode_id = h.enroll("detox-to-aftercare", person)
    h.drive(episode_id, DETOX_MAIN[:2])
    return episode_id


def test_a_handoff_never_accepted_escalates_rung_by_rung_and_one_accepted_in_time_does_not(carepath: Harness) -> None:
    h = carepath
    ignored, accepted = _to_detox(h, "P-ORCH-020"), _to_detox(h, "P-ORCH-021")
    h.event(accepted, "handoff.accepted")
    step = _accept_step(h, ignored)
    rungs = sorted(h.rows(RungRecord, work_item_id=step.id), key=lambda r: r.index)
    assert len(rungs) >= 2 and rungs[0].flow_run_id, "the next rung has a scheduled Prefect run"
    wall_wait = h.wall_seconds_until(rungs[-1].due_at)
    h.wait_for("every rung to escalate", lambda: len(_escalations(h, step.id)) == len(rungs), wall_wait)
    escalations = _escalations(h, step.id)
    for rung, escalation in zip(rungs, escalations, strict=True):
        assert escalation.rung_id == rung.id and escalation.role == rung.role
        assert_raised_on_time(h, rung, escalation)
    assert [e.role for e in escalations] == [r.role for r in rungs]  # in ladder order
    assert _escalations(h, _accept_step(h, accepted).id) == []
    assert [r.status for r in h.rows(RungRecord, work_item_id=_accept_step(h, accepted).id)] == ["cancelled"] * len(
        rungs
    )


@pytest.mark.parametrize("carepath", ["sqlite"], indirect=True)  # a dead serving process: the store plays no part
def test_a_deadline_due_while_the_serving_process_is_dead_escalates_once_after_restart(carepath: Harness) -> None:
    h = carepath
    episode_id = _to_detox(h, "P-ORCH-030")
    # the MOUD plan is due 24 h (48 wall seconds) after the move: time enough to crash before it is due
    [step] = [i for i in h.rows(WorkItemRecord, episode_id=episode_id) if i.key.endswith(".task.moud-plan")]
    rungs = sorted(h.rows(RungRecord, work_item_id=step.id), key=lambda r: r.index)
    assert rungs[0].flow_run_id, "the first rung is scheduled before the crash"
    assert utc(rungs[0].due_at) > h.app.clock.now(), "the test drove too slowly to crash before the deadline"
    h.serving.kill()  # SIGKILL: no cleanup, exactly like a crash
    past_due = (utc(rungs[-1].due_at) - h.app.clock.now()).total_seconds() / FACTOR + 3
    time.sleep(max(past_due, 0))
    assert _escalations(h, step.id) == [], "nothing escalates while nothing serves"
    h.serving = h.start_serving()
    h.wait_for("the late rungs to escalate", lambda: len(_escalations(h, step.id)) == len(rungs), 300)
    time.sleep(12)  # a sweep and any late duplicate run get their chance to double it
    assert len(_escalations(h, step.id)) == len(rungs)
    assert len({e.rung_id for e in _escalations(h, step.id)}) == len(rungs)


def _applied(h: Harness, episode_id: str) -> list[str]:
    """Events the audit trail says were applied to the episode (deadline runs write other lines)."""
    return [str(a.detail["event"]) for a in h.rows(AuditRecord, episode_id=episode_id) if a.action == "event"]


def test_the_same_event_twice_is_applied_once(carepath: Harness) -> None:
    h = carepath
    episode_id = h.enroll("detox-to-aftercare", "P-ORCH-040")
    assert h.event(episode_id, "medical-screening.completed", event_id="evt-dup-1") == "applied"
    before = _applied(h, episode_id)
    assert "duplicate" in h.event(episode_id, "medical-screening.completed", event_id="evt-dup-1")
    assert _applied(h, episode_id) == before == ["medical-screening.completed"]


def test_racing_events_on_one_episode_lose_no_update(carepath: Harness) -> None:
    h = carepath
    episode_id = h.enroll("detox-to-aftercare", "P-ORCH-050")
    names = ["medical-screening.completed", "psychiatric-screening.completed", "social-needs-screening.completed"]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(names) + 1)

    def send(name: str, event_id: str) -> None:
        barrier.wait()
        try:
            h.app.service.record_event(episode_id, name, {}, event_id=event_id)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n, f"race-{n}")) for n in names]
    threads += [threading.Thread(target=send, args=(names[0], f"race-{names[0]}"))]  # same id, concurrently
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(_applied(h, episode_id)) == sorted(names), "each event applied once, none lost"
    done = {i.done_on for i in h.rows(WorkItemRecord, episode_id=episode_id) if i.status == "done"}
    assert set(names) <= done


def test_an_event_the_stage_does_not_allow_is_refused_and_changes_nothing(carepath: Harness) -> None:
    h = carepath
    episode_id = h.enroll("reentry", "P-ORCH-060")
    before = h.episode(episode_id)
    with pytest.raises(CarepathError, match=r"'continuity.confirmed' is not expected in stage 'pre-release'"):
        h.event(episode_id, "continuity.confirmed", days_on_moud=10)
    after = h.episode(episode_id)
    assert (after.stage, after.facts, _applied(h, episode_id)) == (before.stage, before.facts, [])
