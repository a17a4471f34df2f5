"""Closed-loop handoff rules: every legal move, refusals that change nothing, loop closing, decline and no-show."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.episode.domain.authorization import (
    authorization_move,
    authorization_overdue,
    open_authorization,
    precondition_met,
)
from engine.episode.domain.effects import (
    CancelSteps,
    ConsentNeeded,
    Disclose,
    Escalate,
    LoopClosed,
    Reengaged,
    StartFallback,
    StartReengagement,
    StepMet,
)
from engine.episode.domain.handoff import MOVES, HandoffState, label, legal_moves, move, open_handoff
from engine.episode.domain.handoff_terms import ACTIONS, BSER_CODES
from engine.errors import EventRejected
from engine.language.model import PathwaySpec
from engine.plan.build import compile_plan
from engine.plan.model import HandoffPlan, Plan

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
HID = "ep-1/2/handoff"
VISIT = T0 + timedelta(days=2)

# The details each move needs; extra ones are ignored by moves that do not need them.
DETAILS: dict[str, Any] = {"reason": "no bed", "appointment_at": VISIT, "consent_id": "C-1", "outcome": "engaged"}


def sent(**kw: Any) -> HandoffState:
    return open_handoff(HID, T0, consent_id="C-1", purpose="treatment", **kw)[0]


def walk(*steps: tuple[str, str], start: HandoffState | None = None) -> HandoffState:
    state = start or sent()
    for n, (action, party) in enumerate(steps, start=1):
        state, _ = move(state, action, party, T0 + timedelta(hours=n), **DETAILS)
    return state


# Every reachable non-terminal and terminal state, by the path that reaches it.
PATHS: dict[str, list[tuple[str, str]]] = {
    "requested": [],
    "received": [("receive", "receiver")],
    "accepted": [("accept", "receiver")],
    "scheduled": [("accept", "receiver"), ("schedule", "receiver")],
    "no-show": [("accept", "receiver"), ("schedule", "receiver"), ("no-show", "receiver")],
    "visit-cancelled": [("accept", "receiver"), ("schedule", "receiver"), ("cancel-visit", "receiver")],
    "kept": [("accept", "receiver"), ("keep", "receiver")],
    "on-hold": [("accept", "receiver"), ("hold", "receiver")],
    "completed": [("accept", "receiver"), ("keep", "receiver"), ("return-outcome", "receiver")],
    "rejected": [("decline", "receiver")],
    "failed": [("accept", "receiver"), ("fail", "receiver")],
    "cancel-requested": [("accept", "receiver"), ("cancel", "sender")],
    "cancelled": [("cancel", "receiver")],
}


def at(name: str) -> HandoffState:
    return walk(*PATHS[name])


def draft() -> HandoffState:
    return open_handoff(HID, T0, consent_id=None, purpose="treatment")[0]


# ------------------------------------------------------------------------------------------------ opening


def test_open_with_consent_sends_and_records_the_disclosure() -> None:
    state, effects = open_handoff(HID, T0, consent_id="C-1", purpose="treatment")
    assert (state.status, state.business_status, state.bser_code) == ("requested", "created", "2.0")
    assert state.consent_id == "C-1"
    assert effects == [Disclose("C-1")]


def test_open_without_consent_waits_visibly_as_a_draft() -> None:
    state, effects = open_handoff(HID, T0, consent_id=None, purpose="treatment")
    assert (state.status, state.business_status, state.status_reason) == ("draft", "created", "consent-needed")
    assert state.consent_needed and label(state) == "consent needed"
    assert effects == [ConsentNeeded("treatment")]
    assert legal_moves(state) == [("send", ("sender",)), ("cancel", ("sender",))]


def test_send_needs_a_covering_consent_and_only_the_sender_sends() -> None:
    with pytest.raises(EventRejected, match=r"^handoff ep-1/2/handoff: 'send' needs a covering consent$"):
        move(draft(), "send", "sender", T0)
    with pytest.raises(EventRejected, match=r"only the sender may 'send' it \(you are the receiver\)"):
        move(draft(), "send", "receiver", T0, consent_id="C-1")
    state, effects = move(draft(), "send", "sender", T0, consent_id="C-2")
    assert (state.status, state.status_reason, state.consent_id) == ("requested", None, "C-2")
    assert effects == [Disclose("C-2")]


def test_the_receiver_cannot_touch_a_draft_it_never_received() -> None:
    with pytest.raises(EventRejected, match=r"is 'consent needed'; only the sender may 'cancel' it"):
        move(draft(), "cancel", "receiver", T0, reason="x")
    with pytest.raises(EventRejected, match=r"'accept' is not possible now \(moves now: send \(sender\), cancel"):
        move(draft(), "accept", "receiver", T0)


# ------------------------------------------------------------------------------------------ each legal move

LEGAL = [
    # start, action, party, (status, business), effects
    ("requested", "receive", "receiver", ("received", "created"), []),
    ("requested", "accept", "receiver", ("accepted", "accepted"), [StepMet("accepted")]),
    ("received", "accept", "receiver", ("accepted", "accepted"), [StepMet("accepted")]),
    ("requested", "decline", "receiver", ("rejected", "declined"), [CancelSteps, StartFallback, Escalate]),
    ("received", "decline", "receiver", ("rejected", "declined"), [CancelSteps, StartFallback, Escalate]),
    ("accepted", "schedule", "receiver", ("accepted", "event-scheduled"), [StepMet("scheduled")]),
    ("scheduled", "schedule", "receiver", ("accepted", "event-scheduled"), []),
    ("visit-cancelled", "schedule", "receiver", ("accepted", "event-scheduled"), []),
    ("no-show", "schedule", "receiver", ("accepted", "event-scheduled"), [Reengaged()]),
    ("accepted", "no-show", "receiver", ("accepted", "no-show"), [StartReengagement, Escalate]),
    ("scheduled", "no-show", "receiver", ("accepted", "no-show"), [StartReengagement, Escalate]),
    ("scheduled", "cancel-visit", "receiver", ("accepted", "event-cancelled"), []),
    ("accepted", "keep", "receiver", ("in-progress", "event-completed"), [StepMet("visit-kept")]),
    ("scheduled", "keep", "receiver", ("in-progress", "event-completed"), [StepMet("visit-kept")]),
    ("no-show", "keep", "receiver", ("in-progress", "event-completed"), [StepMet("visit-kept"), Reengaged()]),
    (
        "kept",
        "return-outcome",
        "receiver",
        ("completed", "fulfillment-completed"),
        [StepMet("outcome-returned"), LoopClosed()],
    ),
    ("received", "hold", "receiver", ("on-hold", "created"), []),
    ("kept", "hold", "receiver", ("on-hold", "event-completed"), []),
    ("on-hold", "resume", "receiver", ("accepted", "accepted"), []),
    ("accepted", "fail", "receiver", ("failed", "accepted"), [CancelSteps, Escalate]),
    ("on-hold", "fail", "receiver", ("failed", "accepted"), [CancelSteps, Escalate]),
    ("requested", "cancel", "sender", ("cancelled", "fulfillment-cancelled"), [CancelSteps]),
    ("accepted", "cancel", "sender", ("cancelled", "cancellation-requested"), [CancelSteps]),
    ("kept", "cancel", "sender", ("cancelled", "cancellation-requested"), [CancelSteps]),
    ("requested", "cancel", "receiver", ("cancelled", "fulfillment-cancelled"), [CancelSteps, Escalate]),
    ("scheduled", "cancel", "receiver", ("cancelled", "fulfillment-cancelled"), [CancelSteps, Escalate]),
    ("cancel-requested", "cancel", "receiver", ("cancelled", "fulfillment-cancelled"), []),
]


@pytest.mark.parametrize(
    ("start", "action", "party", "target", "expected"), LEGAL, ids=[f"{s}-{a}-{p}" for s, a, p, _, _ in LEGAL]
)
def test_each_legal_move(start: str, action: str, party: str, target: tuple[str, str], expected: list[Any]) -> None:
    before = at(start)
    later = T0 + timedelta(days=5)
    after, effects = move(before, action, party, later, **DETAILS)
    assert (after.status, after.business_status) == target
    assert after.updated_at == later
    assert len(effects) == len(expected), effects
    # an expected class matches any instance of it; an instance must be equal
    for got, want in zip(effects, expected, strict=True):
        assert got == want if not isinstance(want, type) else isinstance(got, want)
    assert (after.closed_at == later) == (after.closed and not before.closed)


def test_every_table_row_is_exercised() -> None:
    covered = {(a, p) for _, a, p, _, _ in LEGAL} | {("send", "sender")}
    assert {(m.action, p) for m in MOVES for p in m.parties} <= covered
    assert {m.action for m in MOVES} == set(ACTIONS)


def test_business_statuses_carry_their_bser_codes() -> None:
    assert at("no-show").bser_code == "5.1.2"
    assert {code for code, _ in BSER_CODES.values()} == {
        "2.0", "3.0", "4.0", "5.1.1", "5.1.2", "5.1.3", "5.1.4", "5.2", "6.0", "7.0"
    }  # fmt: skip


# ------------------------------------------------------------------------------- refusals change nothing


def test_wrong_party_is_refused_with_the_rule() -> None:
    state = at("requested")
    with pytest.raises(EventRejected) as err:
        move(state, "accept", "sender", T0)
    assert (
        str(err.value)
        == "handoff ep-1/2/handoff is 'requested'; only the receiver may 'accept' it (you are the sender)"
    )


def test_illegal_move_names_the_status_and_what_is_possible() -> None:
    with pytest.raises(EventRejected) as err:
        move(at("requested"), "keep", "receiver", T0)
    assert str(err.value) == (
        "handoff ep-1/2/handoff is 'requested'; 'keep' is not possible now (moves now: receive (receiver), "
        "accept (receiver), decline (receiver), cancel (either))"
    )
    with pytest.raises(EventRejected, match=r"is 'completed'; 'cancel' is not possible now \(no moves are left\)$"):
        move(at("completed"), "cancel", "sender", T0, reason="x")
    with pytest.raises(EventRejected, match=r"is 'accepted \(event-scheduled\)'; 'accept' is not possible now"):
        move(at("scheduled"), "accept", "receiver", T0)


@pytest.mark.parametrize("start", [*PATHS, "draft"])
def test_every_refusal_leaves_the_state_unchanged(start: str) -> None:
    state = draft() if start == "draft" else at(start)
    snapshot = state.model_dump()
    legal = dict(legal_moves(state))
    for action in ACTIONS:
        for party in ("sender", "receiver"):
            if party in legal.get(action, ()):
                continue
            with pytest.raises(EventRejected, match="^" + re.escape(f"handoff {HID} is '{label(state)}'; ")):
                move(state, action, party, T0 + timedelta(days=9), **DETAILS)
    assert state.model_dump() == snapshot


def test_missing_reason_or_appointment_is_refused() -> None:
    for action, needs in (("decline", "a reason"), ("cancel", "a reason"), ("hold", "a reason"), ("fail", "a reason")):
        start = at("accepted") if action in ("hold", "fail") else at("requested")
        with pytest.raises(EventRejected, match=rf"'{action}' needs {needs}$"):
            move(start, action, "receiver", T0, reason="")
    with pytest.raises(EventRejected, match=r"'schedule' needs an appointment time$"):
        move(at("accepted"), "schedule", "receiver", T0)


def test_unknown_action_or_party_is_refused() -> None:
    with pytest.raises(EventRejected, match=r"^'admit' is not a handoff move \(moves: send, receive, accept"):
        move(at("requested"), "admit", "receiver", T0)
    with pytest.raises(EventRejected, match=r"^'coordinator' is not a party to a handoff"):
        move(at("requested"), "accept", "coordinator", T0)


# ------------------------------------------------------------------------------------------ closing the loop


def test_loop_closes_only_when_visit_kept_and_outcome_returned() -> None:
    with pytest.raises(EventRejected, match="'return-outcome' is not possible now"):
        move(at("accepted"), "return-outcome", "receiver", T0)
    with pytest.raises(EventRejected, match="'return-outcome' is not possible now"):
        move(at("scheduled"), "return-outcome", "receiver", T0)

    state, seen = sent(), []
    for n, action in enumerate(("accept", "schedule", "keep", "return-outcome"), start=1):
        state, effects = move(state, action, "receiver", T0 + timedelta(hours=n), **DETAILS)
        seen.append(effects)
    assert seen == [
        [StepMet("accepted")],
        [StepMet("scheduled")],
        [StepMet("visit-kept")],
        [StepMet("outcome-returned"), LoopClosed()],
    ]
    assert state.steps_met == ("accepted", "scheduled", "visit-kept", "outcome-returned")
    assert (state.status, state.business_status, state.outcome) == ("completed", "fulfillment-completed", "engaged")
    assert state.closed_at == T0 + timedelta(hours=4) and state.appointment_at == VISIT
    assert legal_moves(state) == []


@functools.cache
def _seed_plan() -> Plan:
    return compile_plan(
        PathwaySpec.model_validate(yaml.safe_load((ROOT / "pathways" / "detox-to-aftercare.yaml").read_text()))
    )


def _seed_handoff(event: str) -> HandoffPlan:
    plan = _seed_plan()
    handoff = next(t.handoff for t in plan.transitions if t.event == event)
    assert handoff is not None
    return handoff


def test_decline_starts_the_pathways_fallback_and_escalates() -> None:
    hp = _seed_handoff("detox.completed")  # residential; fallback iop
    state = sent(re_engage_within=hp.re_engage_within, fallback=hp.fallback)
    after, effects = move(state, "decline", "receiver", T0, reason="no bed this week")
    assert effects == [
        CancelSteps("declined: no bed this week"),
        StartFallback("iop"),
        Escalate("declined", "no bed this week"),
    ]
    assert (after.status, after.business_status, after.status_reason) == ("rejected", "declined", "no bed this week")


def test_decline_without_a_fallback_leaves_the_choice_to_the_coordinator() -> None:
    _, effects = move(sent(), "decline", "receiver", T0, reason="out of network")
    assert StartFallback(None) in effects


def test_no_show_starts_reengagement_from_the_pathway_and_escalates() -> None:
    hp = _seed_handoff("residential.completed")  # iop; re-engage within 48h
    state = walk(("accept", "receiver"), ("schedule", "receiver"), start=sent(re_engage_within=hp.re_engage_within))
    missed = T0 + timedelta(days=3)
    after, effects = move(state, "no-show", "receiver", missed)
    assert effects == [
        StartReengagement(timedelta(hours=48), missed + timedelta(hours=48)),
        Escalate("no-show"),
    ]
    assert (after.business_status, after.bser_code) == ("no-show", "5.1.2")
    rebooked, effects = move(after, "schedule", "receiver", missed + timedelta(hours=5), appointment_at=VISIT)
    assert effects == [Reengaged()]  # 'scheduled' was met before: not met twice
    assert rebooked.steps_met == ("accepted", "scheduled")


def test_no_show_without_a_pathway_deadline_still_asks_for_reengagement() -> None:
    _, effects = move(at("accepted"), "no-show", "receiver", T0)
    assert effects[0] == StartReengagement(None, None)


def test_hold_and_resume_return_to_where_the_handoff_was() -> None:
    held, _ = move(at("kept"), "hold", "receiver", T0, reason="person hospitalised")
    assert (held.status, held.business_status, held.held_from, label(held)) == (
        "on-hold",
        "event-completed",
        "in-progress",
        "on-hold (event-completed)",
    )
    back, effects = move(held, "resume", "receiver", T0 + timedelta(days=1))
    assert (back.status, back.business_status, back.held_from, back.status_reason) == (
        "in-progress",
        "event-completed",
        None,
        None,
    )
    assert effects == []


def test_a_senders_cancel_after_engagement_is_a_request_the_receiver_acknowledges() -> None:
    asked, effects = move(at("scheduled"), "cancel", "sender", T0, reason="person moved away")
    assert (asked.status, asked.business_status, asked.bser_code) == ("cancelled", "cancellation-requested", "5.2")
    assert effects == [CancelSteps("cancelled by the sender: person moved away")]
    assert asked.closed and asked.closed_at == T0
    assert legal_moves(asked) == [("cancel", ("receiver",))]
    done, effects = move(asked, "cancel", "receiver", T0 + timedelta(hours=2))
    assert (done.business_status, done.bser_code, done.closed_at) == ("fulfillment-cancelled", "6.0", T0)
    assert effects == []


# ------------------------------------------------------------------------------------ insurance authorization


def test_authorization_approved_meets_the_precondition() -> None:
    auth = open_authorization("ep-1/2/auth", T0, timedelta(hours=72))
    assert (auth.status, auth.due_at) == ("requested", T0 + timedelta(hours=72))
    assert not precondition_met(auth) and precondition_met(None)
    approved, effects = authorization_move(auth, "approve", T0 + timedelta(hours=30))
    assert (approved.status, approved.decided_at) == ("approved", T0 + timedelta(hours=30))
    assert effects == [StepMet("authorization")] and precondition_met(approved)
    with pytest.raises(EventRejected, match=r"is 'approved'; 'deny' is not possible now \(moves now: none\)"):
        authorization_move(approved, "deny", T0, reason="x")


def test_authorization_denied_escalates_and_may_be_requested_again() -> None:
    auth = open_authorization("ep-1/2/auth", T0, timedelta(hours=72))
    with pytest.raises(EventRejected, match="'deny' needs a reason"):
        authorization_move(auth, "deny", T0)
    denied, effects = authorization_move(auth, "deny", T0 + timedelta(hours=24), reason="not medically necessary")
    assert effects == [Escalate("authorization-denied", "not medically necessary")]
    assert not precondition_met(denied)
    with pytest.raises(EventRejected, match="'request' needs a decision deadline"):
        authorization_move(denied, "request", T0)
    again, effects = authorization_move(denied, "request", T0 + timedelta(days=2), within=timedelta(hours=24))
    assert (again.status, again.due_at, again.decided_at, effects) == ("requested", T0 + timedelta(days=3), None, [])
    with pytest.raises(EventRejected, match=r"^'expedite' is not an authorization move"):
        authorization_move(again, "expedite", T0)


def test_authorization_overdue_only_while_undecided_past_its_deadline() -> None:
    auth = open_authorization("a", T0, timedelta(hours=72))
    assert not authorization_overdue(auth, T0 + timedelta(hours=72))
    assert authorization_overdue(auth, T0 + timedelta(hours=73))
    approved, _ = authorization_move(auth, "approve", T0 + timedelta(hours=80))
    assert not authorization_overdue(approved, T0 + timedelta(days=30))
