"""Issue #9 part B: deadlines from a moment, moves on what did not happen, several events on one move, events
recorded anywhere, time guards. Each form: meaning checks at their positions, plan output, and the pure episode
rules on a manual clock, with the pathway ``tests/data/valid/bridge.yaml`` written for them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.clock import ManualClock
from engine.episode.rules import EpisodeState, Event, Outcome, apply_event, enroll, fire_rung
from engine.errors import EventRejected
from engine.language.model import PathwaySpec
from engine.language.semantics import check
from engine.plan.build import compile_plan
from engine.plan.mermaid import mermaid
from engine.plan.model import Plan
from engine.plan.text import plan_table

BRIDGE = Path(__file__).parent / "data" / "valid" / "bridge.yaml"


def doc() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(BRIDGE.read_text()))


def plan_of(d: dict[str, Any] | None = None) -> Plan:
    return compile_plan(PathwaySpec.model_validate(d or doc()))


def messages(d: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    return [(f.path, f.message) for f in check(PathwaySpec.model_validate(d))]


class Driver:
    """Events and due rungs applied the way the service would, on a manual clock."""

    def __init__(self, plan: Plan, clock: ManualClock | None = None, **facts: Any) -> None:
        self.plan, self.clock, self.n = plan, clock or ManualClock(), 0
        self.state: EpisodeState = enroll(plan, "ep-b", self.clock.now(), facts).state

    def event(self, name: str, **data: Any) -> Outcome:
        self.n += 1
        now = self.clock.now()
        out = apply_event(self.plan, self.state, Event(id=f"e{self.n}", name=name, data=data, at=now), now)
        self.state = out.state
        return out

    def fire_due(self) -> list[Outcome]:
        outs = []
        while True:
            now = self.clock.now()
            due = [r for i in self.state.items for r in i.rungs if r.status == "pending" and r.due_at <= now]
            if not due:
                return outs
            outs.append(fire_rung(self.plan, self.state, min(due, key=lambda r: r.due_at).id, now))
            self.state = outs[-1].state


def test_bridge_pathway_is_clean() -> None:
    assert messages(doc()) == []


# ------------------------------------------------------------------ (4) one move, several events; record anywhere


def test_either_event_of_a_list_moves_and_the_plan_shows_both() -> None:
    plan = plan_of()
    for name in ("relapse.reported", "ed.returned"):
        d = Driver(plan)
        d.event("ed.discharged")
        d.event("bridge.completed")
        assert d.event(name).moved == ("otp", "bridge")
    assert "t2: otp -> bridge on relapse.reported or ed.returned" in plan_table(plan)
    assert "relapse.reported or ed.returned" in mermaid(plan)
    assert "recorded in any stage (moving nothing where no move uses them): ed.returned" in plan_table(plan)


def test_an_event_recorded_anywhere_is_logged_where_it_moves_nothing() -> None:
    d = Driver(plan_of())
    d.event("ed.discharged")
    out = d.event("ed.returned")
    assert out.moved is None and d.state.stage == "bridge"
    assert out.audit[0] == ("event", {"event": "ed.returned", "event_id": "e2", "facts": [], "recorded_only": True})
    with pytest.raises(EventRejected, match="not expected in stage 'bridge'"):
        d.event("relapse.reported")


def test_event_lists_are_checked_by_position() -> None:
    d = doc()
    d["transitions"][2]["event"] = ["relapse.reported", "ed.retuned", "relapse.reported"]
    assert messages(d) == [
        (("transitions", 2, "event", 1), "unknown event 'ed.retuned' (did you mean 'ed.returned'?)"),
        (("transitions", 2, "event", 2), "event 'relapse.reported' is listed twice"),
    ]
