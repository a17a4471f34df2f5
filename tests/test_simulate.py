"""The cohort simulator over the pure rules: deterministic for a seed, driven by the behaviour model, its payloads
valid for the pathway, and its script a faithful log of what it applied. Pathway: tests/data/simulate/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.app.inputs import check_payload
from engine.language.loader import load_pathway
from engine.plan.build import compile_plan
from engine.plan.model import Plan
from engine.simulate import BehaviourModel, SimulationResult, parse_model, simulate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "simulate"
START = datetime(2026, 1, 1, tzinfo=UTC)


def load(name: str) -> Plan:
    result = load_pathway(DATA / name if (DATA / name).exists() else ROOT / "pathways" / name)
    assert result.spec is not None, result.diagnostics
    return compile_plan(result.spec)


@pytest.fixture(scope="module")
def v1() -> Plan:
    return load("referral-v1.yaml")


def model(plan: Plan, text: str) -> BehaviourModel:
    return parse_model(text, plan, file="model.yaml")


#: Everyone arrives on the first day, consents, finishes intake a day later; the clinic does what the test says.
BASE = """
consent: { p: 1 }
acknowledge: { p: 0 }
arrivals: { over: 1d }
events:
  intake.done: { p: 1, after: fixed(1d) }
"""


def _accepted_escalations(result: SimulationResult) -> list[list[tuple[int, str]]]:
    return [
        sorted((r.rung, r.role) for r in h.escalations if r.item_key == "t0.handoff.accepted") for h in result.histories
    ]


def test_the_same_seed_gives_the_same_cohort_on_one_or_two_processes(v1: Plan) -> None:
    m = model(v1, BASE)
    one = simulate(v1, m, 40, 60, 7, START)
    again = simulate(v1, m, 40, 60, 7, START, workers=2)
    assert one.histories == again.histories and one.script == again.script
    other = simulate(v1, m, 40, 60, 8, START)
    assert one.script != other.script  # another seed, other people


def test_no_acceptance_escalates_every_handoff_up_its_whole_ladder(v1: Plan) -> None:
    result = simulate(v1, model(v1, BASE + "  handoff.accepted: { p: 0 }\n"), 30, 60, 1, START)
    # every person reaches the clinic after a day (intake.done after fixed(1d)), so every handoff is open and unmet:
    # its first rung fires at the 24h deadline (coordinator), the second a day later (supervisor)
    assert all(h.stays[1].stage == "clinic" for h in result.histories)
    assert _accepted_escalations(result) == [[(0, "coordinator"), (1, "supervisor")]] * 30
    for h in result.histories:
        moved = h.stays[1].entered_at
        assert [r.raised_at - moved for r in h.escalations if r.item_key == "t0.handoff.accepted"] == [
            timedelta(hours=24),
            timedelta(hours=48),
        ]


def test_a_prompt_acceptance_escalates_nothing(v1: Plan) -> None:
    result = simulate(v1, model(v1, BASE + "  handoff.accepted: { p: 1, after: fixed(1h) }\n"), 30, 60, 1, START)
    assert _accepted_escalations(result) == [[]] * 30
    assert all(
        h.handoffs[0].steps["accepted"] - h.handoffs[0].opened_at == timedelta(hours=1) for h in result.histories
    )


def test_no_consent_keeps_the_referral_waiting(v1: Plan) -> None:
    text = BASE.replace("consent: { p: 1 }", "consent: { p: 0 }") + "  consent.recorded: { p: 0 }\n"
    result = simulate(v1, model(v1, text), 10, 15, 1, START)  # nobody leaves the clinic (20 days at least)
    assert all(h.handoffs[0].status == "draft" and not h.handoffs[0].steps for h in result.histories)
    assert all(a.kind != "consent" for s in result.script for a in s.actions)


def test_an_omitted_moud_raises_a_critical_alert_to_the_prescriber(v1: Plan) -> None:
    meds = "medications: { on_moud: 1, receiving_omits: RATE }\n"
    text = BASE + "  medications.reconciled: { p: 1, after: fixed(2h) }\n" + meds
    omitted = simulate(v1, model(v1, text.replace("RATE", "1")), 20, 30, 3, START)
    kept = simulate(v1, model(v1, text.replace("RATE", "0")), 20, 30, 3, START)
    for h in omitted.histories:
        assert [(r.role, r.severity) for r in h.escalations if r.severity == "critical"] == [("prescriber", "critical")]
        assert [f.critical for f in h.findings] == [True]
    assert all(not any(r.severity == "critical" for r in h.escalations) for h in kept.histories)


def test_acknowledged_escalations_stop_their_ladder(v1: Plan) -> None:
    text = (
        BASE.replace("acknowledge: { p: 0 }", "acknowledge: { p: 1, after: fixed(1h) }")
        + "  handoff.accepted: { p: 0 }\n"
    )
    result = simulate(v1, model(v1, text), 10, 30, 1, START)
    # the coordinator acknowledges the first rung an hour after it fires, so the supervisor is never alerted
    assert _accepted_escalations(result) == [[(0, "coordinator")]] * 10
    for h, s in zip(result.histories, result.script, strict=True):
        raised = next(r for r in h.escalations if r.item_key == "t0.handoff.accepted")
        assert raised.acknowledged_at == raised.raised_at + timedelta(hours=1)
        assert ("acknowledge", raised.rung_id) in [(a.kind, a.name) for a in s.actions]


def test_the_script_is_time_ordered_and_holds_what_was_applied(v1: Plan) -> None:
    result = simulate(v1, model(v1, BASE), 20, 60, 2, START)
    for h, s in zip(result.histories, result.script, strict=True):
        times = [a.at for a in s.actions]
        assert times == sorted(times)
        assert s.actions[0].kind == "enroll" and s.actions[0].at == h.enrolled_at
        assert s.actions[1].kind == "consent"
        assert [(a.name, a.at) for a in s.actions if a.kind == "event"] == [(e.name, e.at) for e in h.events]


def test_arrivals_spread_over_the_models_window(v1: Plan) -> None:
    result = simulate(v1, model(v1, BASE.replace("over: 1d", "over: 10d")), 200, 60, 1, START)
    enrolled = [h.enrolled_at for h in result.histories]
    assert all(START <= t <= START + timedelta(days=10) for t in enrolled)
    assert max(enrolled) - min(enrolled) > timedelta(days=8)  # spread, not bunched
    short = simulate(v1, model(v1, BASE.replace("over: 1d", "over: 30d")), 50, 5, 1, START)
    assert all(START <= h.enrolled_at <= START + timedelta(days=5) for h in short.histories)  # within the run


@pytest.mark.parametrize("pathway", ["detox-to-aftercare.yaml", "reentry.yaml", "pregnancy-postpartum.yaml"])
def test_every_simulated_payload_passes_the_services_checks(pathway: str) -> None:
    plan = load(pathway)
    text = "enrollment_facts: {}\n"
    if "insurance" in plan.facts:
        text = "enrollment_facts: { insurance: { medicaid: 0.7, commercial: 0.3 } }\n"
    result = simulate(plan, model(plan, text), 30, 200, 5, START)
    applied = 0
    for s in result.script:
        for action in s.actions:
            if action.kind == "event":
                # what the service would check before recording it (values of their declared types, required fields)
                check_payload(plan.pathway_id, plan.events, action.name, action.data, action.at)
                applied += 1
    assert applied > 30 * 5


def test_weighted_enrollment_facts_and_payload_values(v1: Plan) -> None:
    text = BASE.replace(
        "intake.done: { p: 1, after: fixed(1d) }",
        "intake.done: { p: 1, after: fixed(1d), data: { risk: { high: 1, low: 0 } } }",
    )
    text += "enrollment_facts: { insurance: { commercial: 1 } }\n"
    result = simulate(v1, model(v1, text), 10, 30, 1, START)
    for h in result.histories:
        assert h.facts["insurance"] == "commercial"
        done = next(e for e in h.events if e.name == "intake.done")
        assert done.data["risk"] == "high" and done.data["insurance"] == "commercial"  # the enrollment fact, kept
