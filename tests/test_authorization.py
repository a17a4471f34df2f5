"""Insurance authorization in episodes (pure, manual clock): requested, approved or denied, held admission.

Issue 7, defect 3: a denial was refused as "not expected", a denial escalated nowhere, an admission could be kept
while the authorization was open, and the request could not start before the move. The rules are those of
:mod:`engine.episode.domain.handoff` (``authorization_move``, ``precondition_met``), applied to an episode's work.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_episode import Driver

from engine.clock import ManualClock
from engine.episode.rules import fire_rung
from engine.errors import EventRejected
from engine.language.loader import load_pathway_text
from engine.plan.build import compile_plan
from engine.plan.model import Plan

H = timedelta(hours=1)

PATHWAY = """\
id: auth-test
version: 1
title: Authorization test
description: Withdrawal management, then a residential program behind an insurance authorization.
asam_edition: 3
roles:
  care-coordinator: { title: Care coordinator }
  supervisor: { title: Supervisor }
  residential-intake: { title: Residential intake }
facts:
  insurance: { type: enum, values: [medicaid, self-pay] }
events:
  detox.completed:
    description: The detox unit discharges the person.
    payload:
      insurance: { type: enum, values: [medicaid, self-pay], required: false }
  residential.completed: { description: The residential program discharges the person. }
  contact.lost: { description: The person cannot be reached. }
stages:
  - { id: detox, name: Withdrawal management }
  - { id: residential, name: Residential program }
  - { id: iop, name: Intensive outpatient, terminal: true }
  - { id: lost, name: Lost to follow-up, terminal: true }
transitions:
  - from: detox
    to: residential
    event: detox.completed
    handoff:
      receiver: { program: Residential program, role: residential-intake }
      mode: warm
      introduced_by: care-coordinator
      consent_purpose: treatment
      authorization:
        required: true
        within: 72h
        unless: { fact: insurance, equals: self-pay }
        escalate: [{ after: 0h, to: care-coordinator }, { after: 24h, to: supervisor }]
      steps:
        - { kind: accepted, within: 24h }
        - { kind: visit-kept, within: 72h }
      fallback: iop
  - { from: residential, to: iop, event: residential.completed }
  - { from: [detox, residential], to: lost, event: contact.lost }
"""


def plan_of(text: str) -> Plan:
    result = load_pathway_text(text, "test.yaml")
    assert result.ok and result.spec is not None, [str(d) for d in result.diagnostics]
    return compile_plan(result.spec)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_of(PATHWAY)


def _auth_items(d: Driver) -> list[str]:
    return [i.id for i in d.state.items if i.kind == "authorization"]


def _moved(plan: Plan, insurance: str = "medicaid") -> Driver:
    d = Driver(plan, ManualClock())
    d.event("detox.completed", insurance=insurance)
    assert d.state.stage == "residential"
    return d


def test_a_denial_is_taken_with_its_reason_and_escalates_at_once_to_the_owner(plan: Plan) -> None:
    d = _moved(plan)
    [item_id] = _auth_items(d)
    d.clock.advance(20 * H)
    out = d.event("authorization.denied", reason="not medically necessary")
    [alert] = [i for i in out.opened if i.kind == "alert"]
    assert alert.title == "Insurance authorization for Residential program denied"
    assert "medically" not in alert.title, "free text never reaches Prefect or the recipients"
    assert (alert.severity, alert.note) == ("high", "not medically necessary")
    assert [(r.role, r.due_at) for r in alert.rungs] == [("care-coordinator", d.clock.now())]
    assert item_id in {i.id for i in out.closed} and not _auth_items(d), "the decision deadline is over"
    [auth] = d.state.authorizations
    assert (auth.status, auth.reason) == ("denied", "not medically necessary")


def test_a_denial_needs_a_reason(plan: Plan) -> None:
    d = _moved(plan)
    before = d.state.model_copy(deep=True)
    with pytest.raises(EventRejected, match=r"^event 'authorization.denied': missing field 'reason'$"):
        d.event("authorization.denied")
    assert d.state == before


def test_the_admission_is_held_until_the_authorization_is_approved(plan: Plan) -> None:
    d = _moved(plan)
    d.event("handoff.accepted")
    before = d.state.model_copy(deep=True)
    for name, data in (("handoff.visit-kept", {}), ("handoff.move", {"action": "keep", "party": "receiver"})):
        with pytest.raises(EventRejected) as refused:
            d.event(name, **data)
        message = str(refused.value)
        assert "\n" not in message and "held" in message and "'requested'" in message
        assert d.state == before, "a refused admission changes nothing"
    d.clock.advance(30 * H)
    out = d.event("authorization.approved")
    assert [i.kind for i in out.closed] == ["authorization"] and out.closed[0].status == "done"
    d.event("handoff.visit-kept")
    assert d.state.handoffs[0].status == "in-progress"


def test_a_denied_authorization_is_requested_again_with_a_new_deadline(plan: Plan) -> None:
    d = _moved(plan)
    d.event("handoff.accepted")
    d.clock.advance(10 * H)
    d.event("authorization.denied", reason="missing records")
    with pytest.raises(EventRejected, match="held"):
        d.event("handoff.visit-kept")
    d.clock.advance(14 * H)
    out = d.event("authorization.requested")
    [again] = [i for i in out.opened if i.kind == "authorization"]
    assert again.due_at == d.clock.now() + 72 * H, "the deadline starts over"
    assert [(r.due_at, r.role) for r in again.rungs] == [
        (d.clock.now() + 72 * H, "care-coordinator"),
        (d.clock.now() + 96 * H, "supervisor"),
    ]
    with pytest.raises(EventRejected, match="'request' is not possible now"):
        d.event("authorization.requested")
    d.event("authorization.approved")
    d.event("handoff.visit-kept")
    assert d.state.handoffs[0].status == "in-progress"


def test_an_unanswered_request_escalates_along_its_ladder(plan: Plan) -> None:
    d = _moved(plan)
    [item] = [i for i in d.state.items if i.kind == "authorization"]
    assert item.owner == "care-coordinator", "the owner defaults to the handoff's introducer"
    d.clock.advance(73 * H)
    out = fire_rung(plan, d.state, item.rungs[0].id, d.clock.now())
    assert [e.role for e in out.escalations] == ["care-coordinator"]


def test_a_request_made_before_the_move_is_adopted_by_the_move(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    out = d.event("authorization.requested", to="residential")
    [early] = [i for i in out.opened if i.kind == "authorization"]
    assert early.due_at == d.clock.now() + 72 * H
    d.clock.advance(30 * H)
    out = d.event("detox.completed", insurance="medicaid")
    assert not [i for i in out.opened if i.kind == "authorization"], "no second authorization is opened"
    assert _auth_items(d) == [early.id] and early.id not in {i.id for i in out.closed}
    [auth] = d.state.authorizations
    assert auth.handoff_id == d.state.handoffs[0].id
    d.event("handoff.accepted")
    with pytest.raises(EventRejected, match="held"):
        d.event("handoff.visit-kept")
    d.event("authorization.approved")
    d.event("handoff.visit-kept")


def test_an_approval_before_the_move_lets_the_admission_go_ahead(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.event("authorization.requested", to="residential")
    d.event("authorization.approved", to="residential")
    out = d.event("detox.completed", insurance="medicaid")
    assert not [i for i in out.opened if i.kind == "authorization"]
    d.event("handoff.accepted")
    d.event("handoff.visit-kept")
    assert d.state.handoffs[0].status == "in-progress"


def test_an_early_request_ends_when_the_person_goes_elsewhere(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.event("authorization.requested", to="residential")
    out = d.event("contact.lost")
    [item] = [i for i in out.closed if i.kind == "authorization"]
    assert item.status == "cancelled" and d.state.authorizations == []


def test_an_early_request_must_name_a_move_that_needs_authorization(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    with pytest.raises(EventRejected, match="no move from 'detox' to 'lost' needs insurance authorization"):
        d.event("authorization.requested", to="lost")
    d.event("detox.completed", insurance="self-pay")
    with pytest.raises(EventRejected, match="no open insurance authorization"):
        d.event("authorization.approved")


def test_self_pay_needs_no_authorization_and_the_admission_goes_ahead(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.state.facts["insurance"] = "self-pay"
    with pytest.raises(EventRejected, match="needs no insurance authorization now"):
        d.event("authorization.requested", to="residential")
    d.event("detox.completed")
    assert not _auth_items(d) and not d.state.authorizations
    d.event("handoff.accepted")
    d.event("handoff.visit-kept")


def test_a_declined_handoff_ends_its_authorization(plan: Plan) -> None:
    d = _moved(plan)
    out = d.event("handoff.move", action="decline", party="receiver", reason="no bed")
    assert out.moved == ("residential", "iop")
    assert [i.status for i in out.closed if i.kind == "authorization"] == ["cancelled"]
    assert d.state.authorizations == []


def test_the_authorization_owner_is_a_role_of_its_own() -> None:
    text = PATHWAY.replace("        within: 72h\n", "        within: 72h\n        owner: utilization-review\n").replace(
        "  supervisor: { title: Supervisor }\n",
        "  supervisor: { title: Supervisor }\n  utilization-review: { title: Utilization review }\n",
    )
    d = _moved(plan_of(text))
    [item] = [i for i in d.state.items if i.kind == "authorization"]
    assert item.owner == "utilization-review"
    out = d.event("authorization.denied", reason="out of network")
    [alert] = [i for i in out.opened if i.kind == "alert"]
    assert [r.role for r in alert.rungs] == ["utilization-review"]


def test_without_owner_or_introducer_the_first_rung_owns_the_authorization() -> None:
    text = PATHWAY.replace("      mode: warm\n      introduced_by: care-coordinator\n", "      mode: standard\n")
    text = text.replace(
        "{ after: 0h, to: care-coordinator }, { after: 24h, to: supervisor }", "{ after: 0h, to: supervisor }"
    )
    d = _moved(plan_of(text))
    [item] = [i for i in d.state.items if i.kind == "authorization"]
    assert item.owner == "supervisor"
    out = d.event("authorization.denied", reason="out of network")
    assert [r.role for i in out.opened if i.kind == "alert" for r in i.rungs] == ["supervisor"]


def test_an_episode_from_before_authorizations_were_kept_is_decided_on_its_deadline_item(plan: Plan) -> None:
    d = _moved(plan)
    d.state.authorizations = []  # as loaded from a store written before migration 0004: only the work item
    [item_id] = _auth_items(d)
    out = d.event("authorization.denied", reason="out of network")
    assert [i.id for i in out.closed] == [item_id] and [i.kind for i in out.opened] == ["alert"]
    assert {a.id for a in out.authorizations} == {item_id}, "stored from now on"


def test_a_pathway_may_still_move_on_a_payers_decision() -> None:
    text = PATHWAY.replace(
        "  - { from: residential, to: iop, event: residential.completed }\n",
        "  - { from: residential, to: iop, event: residential.completed }\n"
        "  - { from: iop, to: lost, event: authorization.denied }\n",
    ).replace(
        "  - { id: iop, name: Intensive outpatient, terminal: true }", "  - { id: iop, name: Intensive outpatient }"
    )
    d = _moved(plan_of(text))
    d.event("residential.completed")
    out = d.event("authorization.denied", reason="benefit exhausted")
    assert out.moved == ("iop", "lost"), "no authorization waits for it here: the event only moves"
