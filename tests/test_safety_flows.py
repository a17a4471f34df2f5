"""The handoff safety core end to end: real flows, a real store, escalations delivered to a loopback receiver.

Each scenario of issue 4 runs on the detox-to-aftercare seed through ``carepath``'s own entry points (in-process
event flows, a serving process for deadlines), on a compressed clock (one pathway hour in two wall seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from carepath_harness import Harness, running_carepath, tpo_consent
from http_receiver import HttpReceiver

from engine.clock import utc
from engine.errors import CarepathError
from engine.store import (
    AuditRecord,
    DeliveryRecord,
    DisclosureRecord,
    EscalationRecord,
    HandoffRecord,
    ProcessedEventRecord,
    RungRecord,
    WorkItemRecord,
)

if TYPE_CHECKING:
    from prefect_harness import ServeProcessFactory

pytestmark = pytest.mark.prefect


@pytest.fixture(autouse=True)
def _retire(carepath: Harness) -> Iterator[None]:
    """Each test closes what it left running, so its timers do not load the next test."""
    yield
    carepath.retire_all()


ROLES = ("care-coordinator", "supervisor", "prescriber", "peer-recovery-coach", "detox-intake", "residential-intake")
ASSESSED = [
    ("medical-screening.completed", {}),
    ("assessment.completed", {"insurance": "medicaid", "needs_withdrawal_management": True}),
]
TO_RESIDENTIAL = [  # assessment -> residential directly, whose handoff falls back to IOP when declined
    ("medical-screening.completed", {}),
    ("assessment.completed", {"insurance": "self-pay", "needs_withdrawal_management": False}),
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def carepath(
    prefect_server: str,
    serve_process: ServeProcessFactory,
    tmp_path_factory: pytest.TempPathFactory,
    receiver: HttpReceiver,
) -> Iterator[Harness]:
    def roster(home: Path) -> None:
        lines = ["roles:"] + [f"  {r}:\n    contacts:\n      - {receiver.url('json', '/' + r)}" for r in ROLES]
        (home / "roster.yaml").write_text("\n".join(lines) + "\n")

    home = tmp_path_factory.mktemp("carepath-safety")
    with running_carepath("sqlite", prefect_server, serve_process, home, setup=roster) as harness:
        yield harness


def _handoff(h: Harness, episode_id: str) -> HandoffRecord:
    return max(h.rows(HandoffRecord, episode_id=episode_id), key=lambda r: r.opened_at)


def _items(h: Harness, episode_id: str, kind: str, status: str | None = None) -> list[WorkItemRecord]:
    rows = h.rows(WorkItemRecord, episode_id=episode_id, kind=kind)
    return [r for r in rows if status is None or r.status == status]


def _escalated(h: Harness, episode_id: str, kind: str) -> list[EscalationRecord]:
    ids = {i.id for i in _items(h, episode_id, kind)}
    return [e for e in h.rows(EscalationRecord, episode_id=episode_id) if e.work_item_id in ids]


def test_accepted_and_kept_closes_the_loop_without_escalation(carepath: Harness) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-SAFE-001")
    h.drive(ep, [*ASSESSED, ("handoff.accepted", {}), ("handoff.visit-kept", {})])
    h.event(ep, "handoff.move", action="return-outcome", party="receiver", outcome="admitted")
    handoff = _handoff(h, ep)
    assert (handoff.status, handoff.business_status) == ("completed", "fulfillment-completed")
    assert handoff.closed_at is not None
    assert _escalated(h, ep, "handoff-step") == []
    [disclosure] = h.rows(DisclosureRecord, episode_id=ep)
    assert disclosure.recipient == handoff.program and "42 CFR part 2" in disclosure.notice


def test_never_accepted_runs_the_ladder_and_reaches_people(carepath: Harness, receiver: HttpReceiver) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-SAFE-002")
    h.drive(ep, ASSESSED)
    [step] = [i for i in _items(h, ep, "handoff-step") if i.key.endswith("accepted")]
    rungs = sorted(h.rows(RungRecord, work_item_id=step.id), key=lambda r: r.index)
    wait = h.wall_seconds_until(rungs[-1].due_at)
    wanted = {r.id for r in rungs}

    def delivered() -> list[DeliveryRecord]:
        return [d for d in h.rows(DeliveryRecord, episode_id=ep) if d.rung_id in wanted]

    h.wait_for("every rung delivered", lambda: {d.rung_id for d in delivered()} == wanted, wait)
    assert all(d.status == "delivered" and d.attempts == 1 for d in delivered())
    bodies = [r for r in receiver.requests if ep in r.text]
    assert {r.path for r in bodies} >= {f"/{r.role}" for r in rungs}
    assert not any("P-SAFE-002" in r.text for r in receiver.requests), "the person's id never leaves"


def _delivered_now(h: Harness, ep: str, kind: str) -> set[str]:
    """Roles whose escalations of ``kind`` already have a delivery outcome (no waiting: the event's own run)."""
    rungs = {e.rung_id: e.role for e in _escalated(h, ep, kind)}
    return {rungs[d.rung_id] for d in h.rows(DeliveryRecord, episode_id=ep) if d.rung_id in rungs}


def test_declined_falls_back_and_escalates_at_once(carepath: Harness) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-SAFE-003")
    h.drive(ep, TO_RESIDENTIAL)
    assert h.episode(ep).stage == "residential"
    h.event(ep, "handoff.move", action="decline", party="receiver", reason="no bed for three weeks")
    assert h.episode(ep).stage == "iop"
    declined = [r for r in h.rows(HandoffRecord, episode_id=ep) if r.status == "rejected"]
    assert [(r.business_status, r.status_reason) for r in declined] == [("declined", "no bed for three weeks")]
    assert _delivered_now(h, ep, "alert"), "the decline is escalated and delivered by the event's own run"


def test_no_show_opens_re_engagement_and_escalates(carepath: Harness) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-SAFE-004")
    h.drive(ep, [*TO_RESIDENTIAL, ("handoff.accepted", {})])
    h.event(ep, "handoff.move", action="no-show", party="receiver")
    [reengage] = _items(h, ep, "re-engagement", "open")
    assert utc(reengage.due_at) > h.app.clock.now()
    assert _delivered_now(h, ep, "alert"), "the no-show is escalated and delivered by the event's own run"
    h.event(ep, "handoff.move", action="schedule", party="receiver", appointment_at="2027-01-04T10:00:00+00:00")
    assert _items(h, ep, "re-engagement", "open") == []


def test_consent_missing_then_given_waits_then_proceeds(carepath: Harness) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-SAFE-005", consent=False)
    h.drive(ep, ASSESSED)
    handoff = _handoff(h, ep)
    assert (handoff.status, handoff.status_reason) == ("draft", "consent-needed")
    assert _items(h, ep, "consent", "open") and _items(h, ep, "handoff-step") == []
    assert h.rows(DisclosureRecord, episode_id=ep) == []
    with pytest.raises(CarepathError, match="not possible now"):
        h.event(ep, "handoff.accepted")
    h.app.service.add_consent(ep, tpo_consent("cn-safe-005", "P-SAFE-005"))
    h.event(ep, "consent.recorded", consent="cn-safe-005")
    assert _handoff(h, ep).status == "requested" and _handoff(h, ep).consent_id == "cn-safe-005"
    assert _items(h, ep, "consent", "open") == [] and _items(h, ep, "handoff-step", "open")
    assert [d.consent_id for d in h.rows(DisclosureRecord, episode_id=ep)] == ["cn-safe-005"]
    h.event(ep, "handoff.accepted")


def test_consent_revoked_mid_handoff_stops_and_is_recorded(carepath: Harness) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-SAFE-006")
    h.drive(ep, [*ASSESSED, ("handoff.accepted", {})])
    consent = _handoff(h, ep).consent_id
    with pytest.raises(CarepathError, match="in writing"):
        h.app.service.revoke_consent(consent, written=False)
    for episode_id in h.app.service.revoke_consent(consent, written=True):
        h.event(episode_id, "consent.revoked", consent=consent)
    handoff = _handoff(h, ep)
    assert handoff.status == "cancelled" and _items(h, ep, "handoff-step", "open") == []
    actions = [a.action for a in h.rows(AuditRecord, episode_id=ep)]
    assert "consent.revoked" in actions and "handoff.stopped" in actions
    assert len(h.rows(DisclosureRecord, episode_id=ep)) == 1, "what was disclosed stays on record; nothing new"


def test_moud_omitted_at_detox_to_residential_escalates_within_seconds(carepath: Harness) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-SAFE-007")
    h.drive(
        ep,
        [
            *ASSESSED,
            ("handoff.accepted", {}),
            ("moud-plan.confirmed", {}),
            ("transfer-plan.completed", {}),
            ("detox.completed", {}),
        ],
    )
    assert h.episode(ep).stage == "residential"
    h.event(ep, "medications.sending-list", medications=[{"name": "buprenorphine", "dose": "16 mg", "rxnorm": "1819"}])
    assert _escalated(h, ep, "alert") == []
    h.event(ep, "medications.receiving-list", medications=[{"name": "sertraline", "dose": "50 mg"}])
    # no waiting: every critical_to role was alerted, concurrently, by the run that recorded the omission
    assert {e.role for e in _escalated(h, ep, "alert")} == {"prescriber", "supervisor"}
    assert _delivered_now(h, ep, "alert") == {"prescriber", "supervisor"}


def test_reconciliation_overdue_escalates(carepath: Harness) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-SAFE-008")
    h.drive(ep, ASSESSED)
    [item] = _items(h, ep, "reconcile", "open")
    first = min(h.rows(RungRecord, work_item_id=item.id), key=lambda r: r.index)
    wait = h.wall_seconds_until(first.due_at)
    h.wait_for("the reconciliation escalation", lambda: _escalated(h, ep, "reconcile") != [], wait)
    assert _escalated(h, ep, "reconcile")[0].role == first.role


def test_an_illegal_move_or_a_move_by_the_wrong_party_is_refused_and_changes_nothing(carepath: Harness) -> None:
    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-SAFE-009")
    h.drive(ep, ASSESSED)

    def snapshot() -> tuple[str, str, int, int]:
        handoff = _handoff(h, ep)
        moves = [a for a in h.rows(AuditRecord, episode_id=ep) if a.action in ("event", "handoff.move")]
        return handoff.status, handoff.business_status, len(moves), len(h.rows(ProcessedEventRecord, episode_id=ep))

    before = snapshot()  # (deadline runs may touch the episode meanwhile: compare what a move would change)
    with pytest.raises(CarepathError, match=r"only the receiver may 'accept' it \(you are the sender\)"):
        h.event(ep, "handoff.move", action="accept", party="sender")
    with pytest.raises(CarepathError, match="'keep' is not possible now"):
        h.event(ep, "handoff.move", action="keep", party="receiver")
    assert snapshot() == before


def test_a_lost_deadline_run_still_escalates_and_every_contact_gets_an_outcome(carepath: Harness) -> None:
    """The invariant against a real server: a run lost on purpose (deleted) is caught by the sweep, and the
    escalation it raises has a delivery outcome for every contact within 60 s of being raised."""
    from prefect.client.orchestration import get_client

    from engine.orchestration.prefect_api import run_sync

    h = carepath
    ep = h.enroll("detox-to-aftercare", "P-SAFE-010")
    h.drive(ep, ASSESSED)
    [step] = [i for i in _items(h, ep, "handoff-step", "open") if i.key.endswith("accepted")]
    first = min(h.rows(RungRecord, work_item_id=step.id), key=lambda r: r.index)
    assert first.flow_run_id

    async def lose(run_id: str) -> None:
        async with get_client() as client:
            await client.delete_flow_run(run_id)

    run_sync(lose(first.flow_run_id))
    wait = h.wall_seconds_until(first.due_at)

    def delivered() -> list[DeliveryRecord]:
        return [d for d in h.rows(DeliveryRecord, episode_id=ep) if d.rung_id == first.id]

    h.wait_for("the lost rung's escalation to be delivered", lambda: bool(delivered()), wait)
    [escalation] = h.rows(EscalationRecord, rung_id=first.id)
    [delivery] = delivered()  # one contact for this role in the roster
    assert delivery.status == "delivered"
    assert utc(delivery.updated_at) >= utc(escalation.raised_at) >= utc(first.due_at)
