"""The rules work on a structural copy of the episode's state: whatever they change, the caller's state is untouched,
and the copy shares no mutable object with it (only frozen models and immutable values)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from engine.episode.copying import structural_copy
from engine.episode.domain.consent import single_tpo_consent
from engine.episode.rules import EpisodeState, Event, apply_event, enroll, fire_rung
from engine.language.loader import load_pathway_text
from engine.plan.build import compile_plan
from engine.plan.model import Plan

PATHWAY = """
id: copy-test
version: 1
title: Copy test
description: A handoff with medication reconciliation, a check-in and a stay.
asam_edition: 3
roles:
  coordinator: { title: Coordinator }
  intake: { title: Intake }
events:
  detox.completed: { description: Discharged. }
  contact.made: { description: A contact. }
  care.completed: { description: Done. }
stages:
  - id: detox
    name: Detox
    level: 3.7-WM
    owner: coordinator
    expected_duration: { min: 1d, max: 5d }
    check_ins: [{ every: 1d, window: 12h, owner: coordinator, done_on: contact.made }]
  - id: outpatient
    name: Outpatient
    level: "1"
    check_ins: [{ every: 1w, window: 2d, owner: coordinator, done_on: contact.made }]
  - { id: done, name: Done, terminal: true }
transitions:
  - from: detox
    to: outpatient
    event: detox.completed
    handoff:
      receiver: { program: Clinic, role: intake }
      mode: standard
      consent_purpose: treatment
      steps: [{ kind: accepted, within: 24h, escalate: [{ after: 0h, to: coordinator }] }]
    reconcile: { within: 24h, critical_to: [coordinator] }
  - { from: outpatient, to: done, event: care.completed }
medications:
  critical: [{ name: buprenorphine, class: MOUD }]
"""

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)


def _plan() -> Plan:
    result = load_pathway_text(PATHWAY, "copy-test.yaml")
    assert result.spec is not None, result.diagnostics
    return compile_plan(result.spec)


def _mutables(value: Any, seen: dict[int, Any]) -> None:
    """Every mutable object reachable from ``value`` (lists, dicts, sets, models that are not frozen), by id."""
    if isinstance(value, list | dict | set):
        seen[id(value)] = value
        for v in value.values() if isinstance(value, dict) else value:
            _mutables(v, seen)
    elif isinstance(value, tuple):
        for v in value:
            _mutables(v, seen)
    elif isinstance(value, BaseModel):
        if not value.model_config.get("frozen"):
            seen[id(value)] = value
        for v in value.__dict__.values():
            _mutables(v, seen)


def _rich_state(plan: Plan) -> EpisodeState:
    state = enroll(plan, "ep-copy", T0).state
    consent = single_tpo_consent("cn-1", "P-SIM-1", discloser="Test", information="all", signed_on=date(2026, 1, 1))
    state.person, state.consents = "P-SIM-1", [consent]
    state = apply_event(plan, state, Event(id="e1", name="detox.completed", at=T0), T0 + timedelta(days=2)).state
    at = T0 + timedelta(days=2, hours=1)
    meds = {"medications": [{"name": "buprenorphine", "dose": "8 mg"}]}
    state = apply_event(plan, state, Event(id="e2", name="medications.sending-list", data=meds, at=at), at).state
    empty: dict[str, Any] = {"medications": []}
    return apply_event(plan, state, Event(id="e3", name="medications.receiving-list", data=empty, at=at), at).state


def test_a_rules_outcome_shares_no_mutable_object_with_its_input() -> None:
    plan = _plan()
    state = _rich_state(plan)
    assert state.handoffs and state.discrepancies and state.raised_alerts and state.medication_lists
    before = state.model_dump()
    later = T0 + timedelta(days=4)
    outcomes = [
        apply_event(plan, state, Event(id="e4", name="contact.made", at=later), later),
        apply_event(plan, state, Event(id="e5", name="handoff.accepted", at=later), later),
        fire_rung(plan, state, state.items[0].rungs[0].id, later),
    ]
    given: dict[int, Any] = {}
    _mutables(state, given)
    for out in outcomes:
        got: dict[int, Any] = {}
        _mutables(out.state, got)
        assert not set(given) & set(got), "a rule's state shares a mutable object with its input"
    assert state.model_dump() == before  # and the caller's state is exactly as it was


def test_the_copy_equals_the_original_and_shares_frozen_parts() -> None:
    state = _rich_state(_plan())
    copied = structural_copy(state)
    assert copied == state and copied is not state
    assert copied.consents[0] is state.consents[0]  # frozen: shared, never copied
    assert copied.items[0] is not state.items[0] and copied.items[0].rungs is not state.items[0].rungs
    copied.items[0].rungs[0].status = "fired"
    copied.facts["x"] = 1
    copied.raised_alerts.add("y")
    assert state.items[0].rungs[0].status == "pending" and "x" not in state.facts and "y" not in state.raised_alerts
