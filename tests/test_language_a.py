"""Issue #9, part A: named ladders, owners of generated work, calendar months and numeric bounds, ASAM levels.

Each feature also has golden pairs in ``tests/data/invalid`` (``semantic-asam-*``, ``semantic-ladder-*``, ...) and
valid files in ``tests/data/valid``; these tests cover what a golden line cannot: the plan and the episode.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_episode import Driver

from engine.app.inputs.values import check_facts, check_payload
from engine.clock import ManualClock
from engine.errors import InvalidInput
from engine.language.durations import show_duration
from engine.language.loader import load_pathway, load_pathway_text, load_spec
from engine.plan.build import compile_plan
from engine.plan.model import Plan, WorkPlan
from engine.plan.text import plan_table

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "tests" / "data" / "valid"
MINIMAL = (VALID / "minimal.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(p.name for p in VALID.glob("*.yaml") if not p.name.endswith(".program.yaml")))
def test_every_valid_fixture_validates_without_a_warning(name: str) -> None:
    result = load_pathway(VALID / name)
    assert result.ok and result.diagnostics == [], [str(d) for d in result.diagnostics]


def test_asam_levels_are_those_of_the_edition() -> None:
    third = MINIMAL.replace("level: 3.7-WM", "level: OTP")
    assert load_pathway_text(third).ok
    fourth = MINIMAL.replace("asam_edition: 3", "asam_edition: 4").replace("level: 3.7-WM", "level: 1-WM")
    (problem,) = load_pathway_text(fourth).diagnostics
    assert problem.message.startswith("'1-WM' is not an ASAM level of edition 4")


# -- (6) named ladders ------------------------------------------------------------------------------------------


def _plan(text: str, name: str = "x.yaml") -> Plan:
    result = load_pathway_text(text, name)
    assert result.ok and result.spec is not None, [str(d) for d in result.diagnostics]
    return compile_plan(result.spec)


def _rungs(work: WorkPlan) -> list[tuple[str, str]]:
    return [(show_duration(r.at), r.to) for r in work.ladder]


def test_named_ladders_expand_where_named_and_the_default_fills_omissions() -> None:
    plan = _plan((VALID / "named-ladders.yaml").read_text(encoding="utf-8"))
    detox = {w.key: w for w in plan.stages["detox"].entry_work}
    assert _rungs(detox["s.detox.task.screen-medical"]) == [("24h", "care-coordinator"), ("28h", "supervisor")]
    assert _rungs(detox["s.detox.task.screen-social"]) == [("3d", "care-coordinator"), ("4d", "supervisor")]
    assert _rungs(detox["s.detox.stay"]) == [("14d", "care-coordinator")]  # `escalate: []`: the owner at max
    (series,) = plan.stages["iop"].check_ins
    assert [(show_duration(r.at), r.to) for r in series.ladder] == [("48h", "care-coordinator")]
    steps = {w.key: w for w in plan.transitions[0].work}
    assert _rungs(steps["t0.handoff.visit-kept"]) == [("7d", "care-coordinator"), ("8d", "supervisor")]
    consent = plan.transitions[0].handoff.consent if plan.transitions[0].handoff else None
    assert consent is not None and _rungs(consent) == [("24h", "care-coordinator"), ("28h", "supervisor")]


def test_a_version_1_file_without_ladders_means_what_it_meant() -> None:
    plan = _plan(MINIMAL)
    (series,) = [w for w in plan.stages["detox"].entry_work if w.kind == "stay"]
    assert _rungs(series) == [("14d", "care-coordinator")]


def test_seed_pathways_use_named_ladders() -> None:
    for name in ("detox-to-aftercare.yaml", "reentry.yaml"):
        spec = load_spec(ROOT / "pathways" / name)
        assert "standard" in spec.ladders


# -- (7) owners of generated work ----------------------------------------------------------------------------------

OWNERS = (VALID / "owners-everywhere.yaml").read_text(encoding="utf-8")


def test_the_plan_shows_the_chosen_owners_and_ladders() -> None:
    plan = _plan(OWNERS)
    t0 = plan.transitions[0]
    assert t0.handoff is not None and t0.handoff.re_engagement is not None
    assert t0.handoff.re_engagement.owner == "peer-recovery-coach"
    assert _rungs(t0.handoff.re_engagement) == [("12h", "care-coordinator"), ("24h", "supervisor")]
    assert t0.handoff.alert_to == ("care-coordinator", "supervisor")
    (reconcile,) = [w for w in t0.work if w.kind == "reconcile"]
    assert reconcile.owner == "prescriber"
    text = plan_table(plan)
    assert "re-engage within 12h (peer-recovery-coach; +0h -> care-coordinator, +12h -> supervisor)" in text
    assert "goes wrong -> care-coordinator, supervisor at once" in text


def test_a_no_show_is_re_engaged_and_alerted_as_the_pathway_says() -> None:
    d = Driver(_plan(OWNERS), ManualClock())
    d.event("detox.completed")
    d.event("handoff.accepted")
    d.clock.advance(timedelta(hours=30))
    out = d.event("handoff.move", action="no-show", party="receiver")
    (reengage,) = [i for i in out.opened if i.kind == "re-engagement"]
    assert reengage.owner == "peer-recovery-coach" and reengage.due_at == d.clock.now() + timedelta(hours=12)
    assert [(r.role, r.due_at - d.clock.now()) for r in reengage.rungs] == [
        ("care-coordinator", timedelta(hours=12)),
        ("supervisor", timedelta(hours=24)),
    ]
    (alert,) = [i for i in out.opened if i.kind == "alert"]
    assert [r.role for r in alert.rungs] == ["care-coordinator", "supervisor"]


def test_without_owners_a_no_show_goes_where_it_always_went() -> None:
    plain = OWNERS.replace(
        "      re_engage_owner: peer-recovery-coach # a peer, not the intake nurse, re-engages a no-show\n", ""
    )
    plain = plain.replace(
        "      re_engage_escalate: [{ after: 0h, to: care-coordinator }, { after: 12h, to: supervisor }]\n", ""
    )
    plain = plain.replace(
        "      alert_to: [care-coordinator, supervisor] # both hear at once of a no-show or a decline\n", ""
    )
    d = Driver(_plan(plain), ManualClock())
    d.event("detox.completed")
    d.event("handoff.accepted")
    out = d.event("handoff.move", action="no-show", party="receiver")
    (reengage,) = [i for i in out.opened if i.kind == "re-engagement"]
    assert reengage.owner == "iop-intake"  # the receiving role, with the visit-kept step's ladder
    assert [(r.role, r.due_at - d.clock.now()) for r in reengage.rungs] == [
        ("care-coordinator", timedelta(hours=12)),
        ("supervisor", timedelta(hours=36)),
    ]
    (alert,) = [i for i in out.opened if i.kind == "alert"]
    assert [r.role for r in alert.rungs] == ["care-coordinator"]


# -- (10) numeric bounds -------------------------------------------------------------------------------------------


def test_numeric_bounds_are_enforced_on_input_with_a_one_line_refusal() -> None:
    plan = _plan((VALID / "numeric-bounds.yaml").read_text(encoding="utf-8"))
    now = datetime(2026, 3, 1, tzinfo=UTC)
    ok = check_payload(plan.pathway_id, plan.events, "screening.completed", {"bridge_supply_days": "7"}, now)
    assert ok == {"bridge_supply_days": 7}
    with pytest.raises(InvalidInput) as refused:
        check_payload(plan.pathway_id, plan.events, "screening.completed", {"bridge_supply_days": 9}, now)
    assert str(refused.value) == "payload field bridge_supply_days: '9' is above the maximum 7"
    with pytest.raises(InvalidInput, match=r"^fact days_on_moud: '-1' is below the minimum 0$"):
        check_facts(plan.pathway_id, plan.facts, {"days_on_moud": -1}, now)
