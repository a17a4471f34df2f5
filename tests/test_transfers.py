"""The safety core applied to episodes (pure): consent gating, handoff moves, decline, no-show, MOUD omission."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_episode import Driver, _plan, tpo_consent

from engine.clock import ManualClock
from engine.episode.domain.reconcile import mark_intentional
from engine.episode.rules import Event, apply_event, fire_rung
from engine.errors import EventRejected
from engine.language.loader import load_pathway_text
from engine.plan.build import compile_plan
from engine.plan.model import Plan


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


def test_what_people_type_never_reaches_an_alert_title_or_an_id(detox: Plan) -> None:
    """Titles and ids reach Prefect and alert recipients: the typed reason and the sender's event id stay out."""
    d = Driver(detox, ManualClock())
    for name in ("medical", "psychiatric", "social-needs"):
        d.event(f"{name}-screening.completed")
    d.event("assessment.completed", insurance="self-pay", needs_withdrawal_management=False)
    d.n = 0
    out = apply_event(
        detox,
        d.state,
        Event(
            id="PERSON-FREE9 msg",
            name="handoff.move",
            data={"action": "decline", "party": "receiver", "reason": "PERSON-FREE9 has no bed"},
            at=d.clock.now(),
        ),
        d.clock.now(),
    )
    [alert] = [i for i in out.opened if i.kind == "alert" and i.key.startswith("alert.handoff.")]
    assert alert.title.endswith(": referral declined") and alert.note == "PERSON-FREE9 has no bed"
    shown = [alert.id, alert.key, alert.title, *(r.id for i in out.opened for r in i.rungs)]
    assert not any("PERSON-FREE9" in text for text in shown)


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


SUBOXONE, SERTRALINE = {"name": "Suboxone", "dose": "16 mg"}, {"name": "sertraline"}


def _alerts(out: object) -> list[str]:
    return [i.title for i in out.opened if i.kind == "alert"]  # type: ignore[attr-defined]


def _statuses(out: object) -> dict[str, str]:
    return {d.key: d.status for d in out.discrepancies}  # type: ignore[attr-defined]


def test_a_list_sent_again_after_the_alert_fired_does_not_alert_twice(detox: Plan) -> None:
    d = _at_detox(detox)
    d.event("medications.sending-list", medications=[SUBOXONE, SERTRALINE])
    out = d.event("medications.receiving-list", medications=[SERTRALINE])
    [alarm] = [i for i in out.opened if i.kind == "alert"]
    assert alarm.severity == "critical"
    assert sorted(d.fire_due()) == ["prescriber", "supervisor"] and not _open(d, "alert")
    d.clock.advance(timedelta(minutes=30))
    again = d.event("medications.receiving-list", medications=[SERTRALINE])
    assert _alerts(again) == [] and again.escalations == []
    assert _statuses(again) == {"omission:buprenorphine": "unintentional"}, "the comparison ran again"


def test_a_marked_critical_omission_does_not_escalate_when_the_lists_are_compared_again(detox: Plan) -> None:
    d = _at_detox(detox)
    d.event("medications.sending-list", medications=[SUBOXONE, SERTRALINE])
    d.event("medications.receiving-list", medications=[SERTRALINE])
    d.fire_due()
    visit = d.state.visit
    d.state.discrepancies[visit] = mark_intentional(
        d.state.discrepancies[visit], "omission:buprenorphine", "taper agreed", by="CL-7"
    )
    d.state.raised_alerts.clear()  # even with no record of the alert, the mark alone stops it
    out = d.event("medications.sending-list", medications=[SUBOXONE, SERTRALINE])
    assert _alerts(out) == []
    [omission] = out.discrepancies
    assert (omission.status, omission.reason, omission.marked_by) == ("intentional-documented", "taper agreed", "CL-7")


def test_a_corrected_list_resolves_findings_and_a_new_critical_omission_alerts(detox: Plan) -> None:
    d = _at_detox(detox)
    d.event("medications.sending-list", medications=[SUBOXONE, SERTRALINE])
    d.event("medications.receiving-list", medications=[SERTRALINE])
    d.fire_due()
    corrected = d.event("medications.receiving-list", medications=[SERTRALINE, {"name": "buprenorphine"}])
    assert _statuses(corrected) == {"omission:buprenorphine": "resolved", "dose-change:buprenorphine": "unintentional"}
    assert ("discrepancy.resolved", {"visit": d.state.visit, "key": "omission:buprenorphine"}) in corrected.audit
    assert _alerts(corrected) == []
    methadone = d.event("medications.sending-list", medications=[SUBOXONE, SERTRALINE, {"name": "methadone"}])
    assert _alerts(methadone) == ["critical: MOUD omitted at transition"]
    assert next(i.note or "" for i in methadone.opened if i.kind == "alert").startswith("methadone:")
    emptied = d.event("medications.receiving-list", medications=[])
    assert _alerts(emptied) == ["critical: MOUD omitted at transition"], "omitted again after it was resolved"
    assert d.event("medications.receiving-list", medications=[]).opened == []


ROLES_PATHWAY = """id: two-moves
version: 1
title: Two moves
description: Two transitions whose reconciliations alert different roles.
asam_edition: 3
roles:
  prescriber: { title: Prescriber }
  supervisor: { title: Supervisor }
events:
  first.done: { description: First move. }
  second.done: { description: Second move. }
  care.ended: { description: Care ends. }
stages:
  - { id: a, name: A, level: 3.7-WM }
  - { id: b, name: B, level: "3.5" }
  - { id: c, name: C, level: "1" }
  - { id: done, name: Done, terminal: true }
transitions:
  - { from: a, to: b, event: first.done, reconcile: { within: 24h, critical_to: [prescriber] } }
  - { from: b, to: c, event: second.done, reconcile: { within: 24h, critical_to: [supervisor] } }
  - { from: c, to: done, event: care.ended }
medications:
  critical:
    - { name: buprenorphine, class: MOUD, aliases: [Suboxone] }
    - { name: methadone, class: MOUD }
"""


def test_a_list_sent_again_alerts_the_roles_of_the_move_into_this_stage() -> None:
    result = load_pathway_text(ROLES_PATHWAY, "two-moves.yaml")
    assert result.spec is not None, result.diagnostics
    d = Driver(compile_plan(result.spec), ManualClock())
    d.event("first.done")
    d.event("second.done")
    d.event("medications.sending-list", medications=[SUBOXONE, {"name": "methadone"}])
    d.event("medications.receiving-list", medications=[{"name": "methadone"}])
    assert d.fire_due() == ["supervisor"]
    out = d.event("medications.receiving-list", medications=[])  # the reconciliation item has closed by now
    [alarm] = [i for i in out.opened if i.kind == "alert"]
    assert "methadone" in (alarm.note or "") and [r.role for r in alarm.rungs] == ["supervisor"]


def test_a_reconciliation_not_done_by_its_deadline_escalates(detox: Plan) -> None:
    d = _at_detox(detox)
    [item] = [i for i in d.state.items if i.kind == "reconcile"]
    d.clock.set(item.rungs[0].due_at)
    assert d.fire_due()[:1] == [item.rungs[0].role]
