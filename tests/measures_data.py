"""Hand-built episode histories for the measures' tests: a pathway written for them, and builders that keep each
test's cohort short enough to work its answer out by hand. Ids are opaque and synthetic (E-001...)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from engine.episode.history import EpisodeHistory, Finding, HandoffTrack, Happening, MedList, Raised, Stay
from engine.language.model import PathwaySpec
from engine.language.semantics import check
from engine.plan.build import compile_plan
from engine.plan.model import Plan

ROOT = Path(__file__).resolve().parents[1]
#: Monday 2 March 2026, 09:00 UTC: day 0 of every test cohort.
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def at(days: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


def plan_from(text: str) -> Plan:
    """A plan compiled from pathway YAML text, after the meaning checks found no error."""
    spec = PathwaySpec.model_validate(yaml.safe_load(text))
    errors = [f for f in check(spec) if f.severity == "error"]
    assert errors == [], errors
    return compile_plan(spec)


#: tests/data/valid/measures.yaml: jail withdrawal management (3.7-WM) -> residential (3.5) -> outpatient (1);
#: MOUD buprenorphine (alias Suboxone) and methadone, clonidine critical but not MOUD; measures: start
#: intake.completed, visits session.attended, release custody.released, contacts peer.contacted, fills
#: prescription.filled, MOUD events moud.confirmed; expected stays 3-10 days (jail-wm), 7-30 days (residential).
JAIL = plan_from((ROOT / "tests" / "data" / "valid" / "measures.yaml").read_text(encoding="utf-8"))
PLANS = {(JAIL.pathway_id, JAIL.version): JAIL}
#: The data's horizon in most tests: day 200, so every window closes except where a test says otherwise.
AS_OF = at(200)

#: A 4th edition pathway with no measures.start (the index is enrollment), no MOUD fill or event and no release:
#: inpatient 4.0 -> IOP 2.1 -> outpatient 1.0; buprenorphine its one MOUD.
FOURTH = plan_from(
    """
id: fourth-edition
version: 2
title: Fourth edition levels
description: Inpatient, then intensive outpatient, then outpatient.
asam_edition: 4
roles: { care-coordinator: { title: Care coordinator } }
events:
  inpatient.completed: { description: Discharged from the inpatient unit. }
  iop.completed: { description: Discharged from IOP. }
  visit.kept: { description: A treatment visit took place. }
stages:
  - { id: inpatient, name: Inpatient, level: "4.0" }
  - { id: iop, name: Intensive outpatient, level: "2.1" }
  - { id: outpatient, name: Outpatient, level: "1.0", terminal: true }
transitions:
  - { from: inpatient, to: iop, event: inpatient.completed }
  - { from: iop, to: outpatient, event: iop.completed }
medications:
  critical: [{ name: buprenorphine, class: moud }]   # the class in any case
measures:
  visits: [visit.kept]
"""
)


def path(*moves: tuple[str, float]) -> tuple[Stay, ...]:
    """Stays one after another: (stage, day entered); each stay ends when the next begins."""
    out = []
    for k, (stage, day) in enumerate(moves):
        left = at(moves[k + 1][1]) if k + 1 < len(moves) else None
        out.append(Stay(stage, k + 1, at(day), left, entered_by=None if k == 0 else "moved"))
    return tuple(out)


def ev(name: str, days: float, hours: float = 0, **data: Any) -> Happening:
    return Happening(name, at(days, hours), dict(data))


#: The JAIL plan's transition whose handoff goes to each program (Harbor asks acceptance only; Eastside acceptance
#: and a kept first visit).
TRANSITION = {"Harbor Residential": 0, "Eastside Clinic": 1}


def handoff(program: str, opened: float, visit: int = 2, **steps: float) -> HandoffTrack:
    """A handoff opened on day ``opened``; ``steps`` maps a step (accepted, visit_kept, outcome_returned) to its day."""
    met = {kind.replace("_", "-"): at(day) for kind, day in steps.items()}
    done = "outcome-returned" in met
    return HandoffTrack(
        id=f"H-{program[:3]}-{opened}",
        program=program,
        role="intake",
        visit=visit,
        opened_at=at(opened),
        status="completed" if done else "accepted" if "accepted" in met else "requested",
        business_status="7.0" if done else "2.0",
        steps=met,
        closed_at=met.get("outcome-returned"),
        transition=TRANSITION.get(program, 0),
    )


def raised(rung: int, day: float, ack_hours: float | None = None) -> Raised:
    return Raised(
        rung_id=f"w#r{rung}",
        item_key="w",
        item_kind="task",
        rung=rung,
        role="care-coordinator",
        severity="normal",
        raised_at=at(day),
        acknowledged_at=at(day, ack_hours) if ack_hours is not None else None,
    )


def meds(visit: int, side: str, day: float, *names: str) -> MedList:
    return MedList(visit, side, at(day), tuple(names))


def finding(visit: int, status: str, critical: bool = True) -> Finding:
    return Finding(visit, f"omission:{visit}:{status}", "omission", critical, status)


def history(
    n: int,
    stays: tuple[Stay, ...] = (),
    events: Iterable[Happening] = (),
    *,
    handoffs: Iterable[HandoffTrack] = (),
    escalations: Iterable[Raised] = (),
    findings: Iterable[Finding] = (),
    lists: Iterable[MedList] = (),
    facts: dict[str, Any] | None = None,
    status: str = "active",
    plan: Plan = JAIL,
) -> EpisodeHistory:
    stays = stays or path(("jail-wm", 0))
    return EpisodeHistory(
        id=f"E-{n:03d}",
        pathway_id=plan.pathway_id,
        pathway_version=plan.version,
        enrolled_at=stays[0].entered_at,
        status=status,
        facts=dict(facts or {}),
        stays=stays,
        events=tuple(sorted(events, key=lambda e: e.at)),
        handoffs=tuple(handoffs),
        escalations=tuple(escalations),
        findings=tuple(findings),
        medication_lists=tuple(lists),
    )
