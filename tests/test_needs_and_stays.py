"""Social-need referrals belong to the episode, and expected stays are checked (pure, manual clock).

Issue 7, defect 4: a referral was cancelled by any stage move. A need now ends only when it is referred
(``referral.made``), declined (``referral.declined``) or the episode ends.
Issue 7, defect 5: ``expected_duration`` was never checked at run time. A stay past ``max`` now alerts the stage's
owner like any other deadline; a stay shorter than ``min`` is recorded when the person leaves.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_authorization import plan_of
from test_episode import Driver

from engine.clock import ManualClock
from engine.episode.rules import fire_rung
from engine.errors import EventRejected
from engine.plan.model import Plan

H, D = timedelta(hours=1), timedelta(days=1)

PATHWAY = """\
id: needs-and-stays
version: 1
title: Needs and stays
description: Two stages with expected stays, and referral rules for two social needs.
asam_edition: 3
roles:
  care-coordinator: { title: Care coordinator }
  supervisor: { title: Supervisor }
  detox-nurse: { title: Detox charge nurse }
events:
  detox.completed: { description: The detox unit discharges the person. }
  iop.completed: { description: The IOP discharges the person. }
stages:
  - id: detox
    name: Withdrawal management
    owner: detox-nurse
    expected_duration: { min: 3d, max: 14d }
  - id: iop
    name: Intensive outpatient
    owner: care-coordinator
    expected_duration:
      min: 4w
      max: 16w
      escalate: [{ after: 0h, to: care-coordinator }, { after: 7d, to: supervisor }]
  - { id: done, name: Completed, terminal: true }
transitions:
  - { from: detox, to: iop, event: detox.completed }
  - { from: iop, to: done, event: iop.completed }
social_needs:
  housing:
    refer_within: 2d
    owner: care-coordinator
    escalate: [{ after: 0h, to: care-coordinator }, { after: 48h, to: supervisor }]
  transport: { refer_within: 2d, owner: care-coordinator }
"""


#: The same pathway without stage owners and stay ladders, in the language as it was before them.
PLAIN = PATHWAY.replace("    owner: detox-nurse\n", "").replace(
    "    owner: care-coordinator\n    expected", "    expected"
)
PLAIN = PLAIN.replace("      escalate: [{ after: 0h, to: care-coordinator }, { after: 7d, to: supervisor }]\n", "")


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_of(PATHWAY)


@pytest.fixture(scope="module")
def plain() -> Plan:
    return plan_of(PLAIN)


def _referrals(d: Driver) -> dict[str, str]:
    return {i.match["need"]: i.id for i in d.state.items if i.kind == "referral"}


# ------------------------------------------------------------------------------------------ social needs


def test_a_need_outlives_a_stage_move_and_still_escalates(plain: Plan) -> None:
    d = Driver(plain, ManualClock())
    d.event("need.identified", need="housing")
    [referral] = [i for i in d.state.items if i.kind == "referral"]
    d.clock.advance(4 * H)
    out = d.event("detox.completed")
    assert referral.id not in {i.id for i in out.closed}, "a move does not cancel a social-need referral"
    assert _referrals(d) == {"housing": referral.id}
    d.clock.advance(2 * D)
    fired = fire_rung(plain, d.state, referral.rungs[0].id, d.clock.now())
    assert [e.role for e in fired.escalations] == ["care-coordinator"]


def test_identifying_the_same_need_again_changes_nothing(plain: Plan) -> None:
    d = Driver(plain, ManualClock())
    d.event("need.identified", need="housing")
    first = _referrals(d)
    d.event("detox.completed")
    out = d.event("need.identified", need="housing")
    assert (out.opened, out.closed, _referrals(d)) == ([], [], first)


def test_a_need_ends_when_referred_declined_or_the_episode_ends(plain: Plan) -> None:
    d = Driver(plain, ManualClock())
    d.event("need.identified", need="housing")
    d.event("need.identified", need="transport")
    out = d.event("referral.declined", need="transport")
    assert [(i.key, i.status) for i in out.closed] == [("r.transport", "cancelled")]
    assert out.closed[0].closed_by == "declined"
    out = d.event("referral.made", need="housing")
    assert [(i.key, i.status) for i in out.closed] == [("r.housing", "done")]
    d.event("need.identified", need="housing")
    d.event("detox.completed")
    out = d.event("iop.completed")
    assert [(i.key, i.status) for i in out.closed if i.kind == "referral"] == [("r.housing", "cancelled")]


def test_a_need_identified_again_after_its_referral_opens_a_new_one(plain: Plan) -> None:
    d = Driver(plain, ManualClock())
    d.event("need.identified", need="housing")
    first = _referrals(d)["housing"]
    d.event("referral.made", need="housing")
    d.event("need.identified", need="housing")
    assert _referrals(d)["housing"] != first, "a new referral gets an id of its own (the store keeps the old one)"


def test_declining_a_need_with_no_open_referral_is_refused(plain: Plan) -> None:
    d = Driver(plain, ManualClock())
    before = d.state.model_copy(deep=True)
    with pytest.raises(EventRejected, match="no open referral for need 'housing'"):
        d.event("referral.declined", need="housing")
    with pytest.raises(EventRejected, match="missing field 'need'"):
        d.event("referral.declined")
    assert d.state == before


# ------------------------------------------------------------------------------------------------ stays


def test_a_stay_past_its_max_alerts_the_stage_owner(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    [stay] = [i for i in d.state.items if i.kind == "stay"]
    assert (stay.owner, stay.due_at) == ("detox-nurse", d.clock.now() + 14 * D)
    assert [(r.role, r.due_at) for r in stay.rungs] == [("detox-nurse", d.clock.now() + 14 * D)]
    d.clock.advance(13 * D)
    assert fire_rung(plan, d.state, stay.rungs[0].id, d.clock.now()).escalations == [], "not before the max"
    d.clock.advance(1 * D)
    out = fire_rung(plan, d.state, stay.rungs[0].id, d.clock.now())
    assert [e.role for e in out.escalations] == ["detox-nurse"]


def test_a_stays_ladder_counts_from_the_max(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.clock.advance(5 * D)
    d.event("detox.completed")
    [stay] = [i for i in d.state.items if i.kind == "stay"]
    assert [(r.role, r.due_at - d.clock.now()) for r in stay.rungs] == [
        ("care-coordinator", 16 * 7 * D),
        ("supervisor", 16 * 7 * D + 7 * D),
    ]


def test_leaving_ends_the_stay_deadline_and_a_stay_within_range_is_not_flagged(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    [stay] = [i for i in d.state.items if i.kind == "stay"]
    d.clock.advance(5 * D)
    out = d.event("detox.completed")
    assert [(i.status, i.closed_by) for i in out.closed if i.id == stay.id] == [("done", "left detox")]
    assert out.short_stay is None and not [a for a, _ in out.audit if a == "stay.short"]


def test_a_stay_shorter_than_its_min_is_recorded_on_leaving(plain: Plan) -> None:
    d = Driver(plain, ManualClock())
    d.clock.advance(30 * H)
    out = d.event("detox.completed")
    assert out.short_stay == 3 * D
    [detail] = [detail for action, detail in out.audit if action == "stay.short"]
    assert detail == {"stage": "detox", "stayed": "30h", "min": "3d"}
