"""The safety core applied to episodes (pure): consent gating, handoff moves, decline, no-show, MOUD omission."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_episode import Driver, _plan, tpo_consent

from engine.clock import ManualClock
from engine.episode import fire_rung
from engine.errors import EventRejected
from engine.plan import Plan


@pytest.fixture(scope="module")
def detox() -> Plan:
    return _plan("detox-to-aftercare.yaml")


def _at_detox(plan: Plan, consented: bool = True) -> Driver:
    d = Driver(plan, ManualClock())
    if not consented:
        d.state.consents = []
    d.assess()
    return d


def _open(d: Driver, kind: str) -> list[str]:
    return [i.key for i in d.state.items if i.kind == kind]


def test_with_consent_the_referral_is_sent_and_disclosed_with_the_notice(detox: Plan) -> None:
    d = Driver(detox, ManualClock())
    out = d.assess()
    handoff = out.handoffs_opened[0]
    assert (handoff.status, handoff.business_status, handoff.consent_id) == ("requested", "created", "cn-1")
    [disclosure] = out.disclosures
    assert disclosure.recipient == handoff.program and disclosure.consent_id == "cn-1"
    assert "42 CFR part 2" in disclosure.notice
    assert _open(d, "handoff-step") and not _open(d, "consent")


def test_without_consent_the_handoff_waits_then_proceeds_when_consent_is_recorded(detox: Plan) -> None:
    d = _at_detox(detox, consented=False)
    handoff = d.state.handoffs[0]
    assert (handoff.status, handoff.status_reason) == ("draft", "consent-needed")
    assert _open(d, "consent") and not _open(d, "handoff-step"), "no step deadline runs before the referral is sent"
    with pytest.raises(EventRejected, match="not possible now"):
        d.event("handoff.accepted")
    d.clock.advance(timedelta(hours=3))
    d.state.consents = [tpo_consent("cn-late")]
    out = d.event("consent.recorded", consent="cn-late")
    assert d.state.handoffs[0].status == "requested" and [x.consent_id for x in out.disclosures] == ["cn-late"]
    steps = [i for i in d.state.items if i.kind == "handoff-step"]
    assert steps and all(i.opened_at == d.clock.now() for i in steps), "step deadlines count from sending"
    assert not _open(d, "consent")


def test_revoking_consent_mid_handoff_stops_it_and_escalates(detox: Plan) -> None:
    d = _at_detox(detox)
    d.event("handoff.accepted")
    d.state.consents = [tpo_consent().model_copy(update={"revoked_at": d.clock.now()})]
    out = d.event("consent.revoked", consent="cn-1")
    assert out.handoffs_changed[0].status == "cancelled"
    assert not _open(d, "handoff-step")
    assert any(i.kind == "alert" and "revoked" in i.title for i in d.state.items)
    assert out.disclosures == [], "nothing further is disclosed"


def test_illegal_moves_and_wrong_party_are_refused_and_change_nothing(detox: Plan) -> None:
    d = _at_detox(detox)
    before = d.state.model_copy(deep=True)
    with pytest.raises(EventRejected, match=r"only the receiver may 'accept' it \(you are the sender\)"):
        d.event("handoff.move", action="accept", party="sender")
    with pytest.raises(EventRejected, match="'return-outcome' is not possible now"):
        d.event("handoff.move", action="return-outcome", party="receiver")
    with pytest.raises(EventRejected, match="needs a reason"):
        d.event("handoff.move", action="decline", party="receiver")
    assert d.state == before


def test_the_loop_closes_only_with_the_visit_kept_and_the_outcome_back(detox: Plan) -> None:
    d = _at_detox(detox)
    d.event("handoff.accepted")
    d.event("handoff.visit-kept")
    assert d.state.handoffs and d.state.handoffs[0].status == "in-progress"
    out = d.event("handoff.move", action="return-outcome", party="receiver", outcome="admitted")
    assert out.handoffs_changed[0].status == "completed" and d.state.handoffs == []


def test_a_decline_falls_back_and_escalates(detox: Plan) -> None:
    d = Driver(detox, ManualClock())
    # assessment -> residential (no withdrawal management): that handoff's fallback is IOP
    for name in ("medical", "psychiatric", "social-needs"):
        d.event(f"{name}-screening.completed")
    d.event("assessment.completed", insurance="self-pay", needs_withdrawal_management=False)
    assert d.state.stage == "residential"
    out = d.event("handoff.move", action="decline", party="receiver", reason="no bed for 3 weeks")
    assert out.moved == ("residential", "iop")
    roles = [r.role for i in out.opened if i.kind == "alert" for r in i.rungs]
    assert roles, "a decline escalates at once"
    assert all(r.due_at == d.clock.now() for i in out.opened if i.kind == "alert" for r in i.rungs)


def test_a_no_show_opens_re_engagement_and_escalates(detox: Plan) -> None:
    d = Driver(detox, ManualClock())
    for name in ("medical", "psychiatric", "social-needs"):
        d.event(f"{name}-screening.completed")
    d.event("assessment.completed", insurance="self-pay", needs_withdrawal_management=False)
    d.event("handoff.accepted")
    d.clock.advance(timedelta(hours=30))
    out = d.event("handoff.move", action="no-show", party="receiver")
    [reengage] = [i for i in out.opened if i.kind == "re-engagement"]
    assert reengage.due_at == d.clock.now() + timedelta(hours=24)  # the seed's re_engage_within
    assert any(i.kind == "alert" for i in out.opened)
    d.event("handoff.move", action="schedule", party="receiver", appointment_at="2026-01-08T10:00:00+00:00")
    assert not _open(d, "re-engagement"), "re-booking meets the re-engagement"


def test_an_omitted_moud_escalates_at_once_to_the_critical_roles(detox: Plan) -> None:
    d = _at_detox(detox)
    d.event("medications.sending-list", medications=[{"name": "Suboxone", "dose": "16 mg"}, {"name": "sertraline"}])
    assert _open(d, "reconcile"), "one list is not a reconciliation"
    out = d.event("medications.receiving-list", medications=[{"name": "sertraline"}])
    assert [x.kind for x in out.discrepancies if x.critical] == ["omission"]
    [alarm] = [i for i in out.opened if i.kind == "alert"]
    assert [r.role for r in alarm.rungs] == ["prescriber", "supervisor"] and alarm.due_at == d.clock.now()
    assert not _open(d, "reconcile")
    fired = fire_rung(d.plan, d.state, alarm.rungs[0].id, d.clock.now())
    assert [e.role for e in fired.escalations] == ["prescriber"]


def test_a_reconciliation_not_done_by_its_deadline_escalates(detox: Plan) -> None:
    d = _at_detox(detox)
    [item] = [i for i in d.state.items if i.kind == "reconcile"]
    d.clock.set(item.rungs[0].due_at)
    assert d.fire_due()[:1] == [item.rungs[0].role]
