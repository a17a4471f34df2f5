"""Episode semantics on the seed pathways, with a manual clock: months of pathway time in milliseconds."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from engine.clock import ManualClock
from engine.episode.domain.consent import Consent, single_tpo_consent
from engine.episode.rules import EpisodeState, Event, Outcome, apply_event, enroll, fire_rung
from engine.errors import EventRejected
from engine.language.model import PathwaySpec
from engine.plan.build import compile_plan
from engine.plan.model import Plan

ROOT = Path(__file__).resolve().parents[1]


def tpo_consent(consent_id: str = "cn-1") -> Consent:
    """A synthetic single consent for treatment, payment and operations to all treating providers."""
    return single_tpo_consent(
        consent_id,
        "P-TEST-1",
        discloser="Carepath test program",
        information="SUD diagnosis, medications, referral details",
        signed_on=date(2026, 1, 1),
    )


def _plan(name: str) -> Plan:
    return compile_plan(PathwaySpec.model_validate(yaml.safe_load((ROOT / "pathways" / name).read_text())))


@pytest.fixture(scope="module")
def detox() -> Plan:
    return _plan("detox-to-aftercare.yaml")


@pytest.fixture(scope="module")
def reentry() -> Plan:
    return _plan("reentry.yaml")


class Driver:
    """Applies events and fires due rungs the way the service would, keeping the state between calls."""

    def __init__(self, plan: Plan, clock: ManualClock) -> None:
        self.plan, self.clock, self.n = plan, clock, 0
        self.state: EpisodeState = enroll(plan, "ep-test", clock.now()).state
        self.state.person, self.state.consents = "P-TEST-1", [tpo_consent()]

    def event(self, name: str, **data: object) -> Outcome:
        self.n += 1
        out = apply_event(
            self.plan, self.state, Event(id=f"e{self.n}", name=name, data=data, at=self.clock.now()), self.clock.now()
        )
        self.state = out.state
        return out

    def assess(self, **facts: object) -> Outcome:
        """Complete the three screenings and the assessment (the stage's before_leaving work)."""
        for name in ("medical", "psychiatric", "social-needs"):
            self.event(f"{name}-screening.completed")
        return self.event("assessment.completed", insurance="medicaid", needs_withdrawal_management=True, **facts)

    def fire_due(self) -> list[str]:
        """Fire every due rung, as the deadline runs would; returns the roles alerted."""
        roles: list[str] = []
        while True:
            due = [
                r for i in self.state.items for r in i.rungs if r.status == "pending" and r.due_at <= self.clock.now()
            ]
            if not due:
                return roles
            out = fire_rung(self.plan, self.state, min(due, key=lambda r: r.due_at).id, self.clock.now())
            self.state = out.state
            roles += [e.role for e in out.escalations]


def test_enroll_opens_entry_work_with_deterministic_ids(detox: Plan) -> None:
    clock = ManualClock()
    out = enroll(detox, "ep-1", clock.now())
    assert out.state.stage == "assessment"
    keys = {i.key for i in out.opened}
    assert {k.rsplit(".", 1)[-1] for k in keys} >= {"screen-medical", "screen-psychiatric", "screen-social-needs"}
    again = enroll(detox, "ep-1", clock.now())
    assert [i.id for i in again.opened] == [i.id for i in out.opened]
    assert all(i.due_at > clock.now() for i in out.opened)


def test_undeclared_and_unexpected_events_are_rejected_and_change_nothing(detox: Plan) -> None:
    d = Driver(detox, ManualClock())
    with pytest.raises(EventRejected, match=r"cannot leave 'assessment'.*before: screen-medical"):
        d.event("assessment.completed", insurance="medicaid", needs_withdrawal_management=True)
    before = d.state.model_copy(deep=True)
    with pytest.raises(EventRejected, match="not declared"):
        d.event("detox.finished")
    with pytest.raises(EventRejected, match=r"not expected in stage .assessment..*assessment.completed"):
        d.event("detox.completed")
    with pytest.raises(EventRejected, match="matches no open handoff"):
        d.event("handoff.accepted")
    assert d.state == before


def test_bad_payload_is_rejected(detox: Plan) -> None:
    d = Driver(detox, ManualClock())
    with pytest.raises(EventRejected, match="'insurance' must be one of"):
        d.event("assessment.completed", insurance="gold-plan", needs_withdrawal_management=True)
    with pytest.raises(EventRejected, match="unexpected field 'nickname'"):
        d.event("assessment.completed", insurance="medicaid", needs_withdrawal_management=True, nickname="x")


def test_transition_opens_handoff_and_cancels_the_left_stage(detox: Plan) -> None:
    d = Driver(detox, ManualClock())
    d.clock.advance(timedelta(hours=6))
    out = d.assess()
    assert out.moved == ("assessment", "withdrawal-management")
    assert len(out.handoffs_opened) == 1 and out.handoffs_opened[0].status == "requested"
    left = [i for i in out.closed if i.kind != "stay"]  # leaving meets the stay deadline (done)
    assert {i.status for i in left} <= {"cancelled"} and all(i.visit == 1 for i in out.closed)
    kinds = {i.kind for i in out.opened}
    assert {"handoff-step", "reconcile", "task"} <= kinds
    step = next(i for i in out.opened if i.done_on == "handoff.accepted")
    planned = next(w for w in detox.transitions[0].work if w.done_on == "handoff.accepted")
    assert step.due_at == d.clock.now() + planned.due
    assert [r.due_at for r in step.rungs] == [d.clock.now() + r.at for r in planned.ladder]
    accepted = d.event("handoff.accepted")
    assert accepted.handoffs_changed[0].business_status == "accepted"


def test_unmet_deadline_escalates_rung_by_rung_exactly_once(detox: Plan) -> None:
    d = Driver(detox, ManualClock())
    d.assess()
    step = next(i for i in d.state.items if i.done_on == "handoff.accepted")
    rungs = step.rungs
    assert len(rungs) >= 2
    d.clock.set(rungs[0].due_at - timedelta(minutes=1))
    assert fire_rung(d.plan, d.state, rungs[0].id, d.clock.now()).escalations == []  # not due yet
    d.clock.set(rungs[0].due_at)
    first = fire_rung(d.plan, d.state, rungs[0].id, d.clock.now())
    assert [e.role for e in first.escalations] == [rungs[0].role]
    assert fire_rung(d.plan, first.state, rungs[0].id, d.clock.now()).escalations == []  # once
    d.state = first.state
    d.clock.set(rungs[1].due_at)
    assert [e.role for e in fire_rung(d.plan, d.state, rungs[1].id, d.clock.now()).escalations] == [rungs[1].role]


def test_deadline_met_in_time_never_escalates(detox: Plan) -> None:
    d = Driver(detox, ManualClock())
    d.assess()
    step = next(i for i in d.state.items if i.done_on == "handoff.accepted")
    d.clock.advance(timedelta(hours=1))
    d.event("handoff.accepted")
    d.clock.set(step.rungs[-1].due_at + timedelta(hours=1))
    assert fire_rung(d.plan, d.state, step.rungs[0].id, d.clock.now()).escalations == []


def test_missed_check_in_closes_and_opens_the_next_occurrence(reentry: Plan) -> None:
    d = Driver(reentry, ManualClock())
    d.event("custody.released")
    assert d.state.stage == "community-care"
    first = next(i for i in d.state.items if i.kind == "check-in")
    assert (first.key, first.occurrence) == ("s.community-care.checkin.0", 0)
    d.clock.set(max(r.due_at for r in first.rungs))
    d.fire_due()
    nxt = next(i for i in d.state.items if i.kind == "check-in")
    assert nxt.occurrence == 1 and nxt.opened_at == first.opened_at + timedelta(days=1)


def test_reentry_daily_for_14_days_then_weekly(reentry: Plan) -> None:
    d = Driver(reentry, ManualClock())
    d.event("custody.released")
    released = d.clock.now()
    opened = []
    for _ in range(16):
        item = next(i for i in d.state.items if i.kind == "check-in")
        opened.append((item.key, item.opened_at - released))
        d.clock.set(item.opened_at)
        d.event("contact.made")
    assert [o for _, o in opened[:14]] == [timedelta(days=k) for k in range(14)]
    assert opened[14] == ("s.community-care.checkin.1", timedelta(days=14))
    assert opened[15][1] == timedelta(days=21)


def test_months_of_a_reentry_episode_run_in_milliseconds(reentry: Plan) -> None:
    d = Driver(reentry, ManualClock())
    d.event("custody.released")
    for _ in range(90):
        d.clock.advance(timedelta(days=1))
        d.fire_due()
    assert d.state.status == "active"
    assert sum(1 for i in d.state.items if i.kind == "check-in") == 1  # rolling: never more than one open


def test_terminal_stage_completes_and_closes_everything(reentry: Plan) -> None:
    d = Driver(reentry, ManualClock())
    d.event("custody.released")
    d.clock.advance(timedelta(days=90))
    with pytest.raises(EventRejected, match="no guard holds"):
        d.event("continuity.confirmed", days_on_moud=30)
    out = d.event("continuity.confirmed", days_on_moud=90)
    assert d.state.status == "completed" and d.state.items == [] and d.state.handoffs == []
    assert out.moved == ("community-care", "engaged")
    with pytest.raises(EventRejected, match="completed"):
        d.event("contact.made")
