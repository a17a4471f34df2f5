"""Issue #9 part B: deadlines from a moment, moves on what did not happen, several events on one move, events
recorded anywhere, time guards. Each form: meaning checks at their positions, plan output, and the pure episode
rules on a manual clock, with the pathway ``tests/data/valid/bridge.yaml`` written for them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
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
        d.event("methadone.last-dose")
        d.clock.advance(timedelta(days=1))
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


# ------------------------------------------------------------------------------------------- (5) time guards


def _at_bridge(clock: ManualClock) -> Driver:
    d = Driver(plan_of(), clock)
    d.event("ed.discharged")
    return d


def test_a_time_guard_refuses_with_when_the_move_becomes_possible() -> None:
    clock = ManualClock()
    d = _at_bridge(clock)
    with pytest.raises(EventRejected, match=r"no guard holds \(at least 24h since methadone.last-dose\)"):
        d.event("bridge.completed")  # no dose recorded: waiting alone will not do
    dose = clock.now() - timedelta(hours=6)
    d.event("methadone.last-dose", occurred_at=dose.isoformat())
    ready = dose + timedelta(hours=24)
    with pytest.raises(EventRejected, match=f"possible from {ready:%Y-%m-%d %H:%M} UTC"):
        d.event("bridge.completed")
    clock.advance(timedelta(hours=18))
    assert d.event("bridge.completed").moved == ("bridge", "otp")


def test_occurred_at_is_checked() -> None:
    clock = ManualClock()
    d = _at_bridge(clock)
    with pytest.raises(EventRejected, match="'occurred_at' must be an ISO 8601"):
        d.event("methadone.last-dose", occurred_at="yesterday")
    with pytest.raises(EventRejected, match="is in the future"):
        d.event("methadone.last-dose", occurred_at=(clock.now() + timedelta(hours=1)).isoformat())


def test_an_entry_task_with_when_opens_only_if_it_holds_at_entry() -> None:
    clock = ManualClock()
    d = _at_bridge(clock)
    assert {i.key for i in d.state.items} == {"s.bridge.task.bridge-visit", "t6.timeout"}
    d.event("methadone.last-dose")
    clock.advance(timedelta(days=2))
    d.event("bridge.completed")
    d.event("ed.returned")
    assert d.state.stage == "bridge"
    assert "s.bridge.task.readmission-review" in {i.key for i in d.state.items}


def test_time_guards_and_entry_conditions_are_checked_at_their_positions() -> None:
    d = doc()
    d["transitions"][1]["when"] = {"since": "methadone.last-dos", "at_least": "24h"}
    d["stages"][1]["on_entry"][1]["when"] = {"all": [{"since": {"fact": "last_methadone"}, "at_most": "1h"}]}
    assert messages(d) == [
        (
            ("transitions", 1, "when", "since"),
            "unknown event 'methadone.last-dos' (did you mean 'methadone.last-dose'?)",
        ),
        (
            ("stages", 1, "on_entry", 1, "when", "all", 0, "since", "fact"),
            "unknown fact 'last_methadone' (did you mean 'last_methadone_dose'?)",
        ),
    ]


def test_plan_shows_time_guards_entry_conditions_and_moments() -> None:
    text = plan_table(plan_of())
    assert "t1: bridge -> otp on bridge.completed [at least 24h since methadone.last-dose]" in text
    assert "only if at most 1h since ed.returned" in text
    assert "due from ed.discharged" in text
    assert "due from last_methadone_dose" in text


# ------------------------------------------------------------------------- (1) deadlines from the moment


def test_a_task_deadline_counts_from_the_event_that_matters() -> None:
    clock = ManualClock()
    d = Driver(plan_of(), clock)
    discharged = clock.now() - timedelta(hours=30)  # recorded the next morning
    d.event("ed.discharged", occurred_at=discharged.isoformat())
    visit = next(i for i in d.state.items if i.key == "s.bridge.task.bridge-visit")
    assert visit.due_at == discharged + timedelta(hours=72)
    assert visit.opened_at == clock.now()


def test_a_late_consent_no_longer_shifts_a_step_counted_from_a_fact() -> None:
    from engine.episode.domain.consent import single_tpo_consent

    clock = ManualClock()
    dose = clock.now() - timedelta(hours=30)
    d = _at_bridge(clock)
    d.event("methadone.last-dose")
    d.state.facts["last_methadone_dose"] = dose.date().isoformat()
    clock.advance(timedelta(days=1))
    d.event("bridge.completed")
    assert not [i for i in d.state.items if i.kind == "handoff-step"]  # waits for consent
    clock.advance(timedelta(days=3))  # the consent comes late
    d.state.person = "P-1"
    d.state.consents = [
        single_tpo_consent("cn-1", "P-1", discloser="test", information="referral", signed_on=clock.now().date())
    ]
    d.event("consent.recorded", consent="cn-1")
    step = next(i for i in d.state.items if i.kind == "handoff-step")
    midnight = datetime(dose.year, dose.month, dose.day, tzinfo=UTC)
    assert step.due_at == midnight + timedelta(days=7)


def test_moments_are_checked_at_their_positions() -> None:
    d = doc()
    d["stages"][1]["on_entry"][0]["from"] = "ed.discharge"
    d["transitions"][1]["handoff"]["steps"][0]["from"] = {"fact": "last_methadone_dos"}
    d["facts"]["dose_count"] = {"type": "number"}
    d["transitions"][0]["when"] = {"since": {"fact": "dose_count"}, "at_least": "1h"}
    assert sorted(messages(d)) == [
        (("stages", 1, "on_entry", 0, "from"), "unknown event 'ed.discharge' (did you mean 'ed.discharged'?)"),
        (("transitions", 0, "when", "since", "fact"), "a moment needs a date fact; 'dose_count' is number"),
        (
            ("transitions", 1, "handoff", "steps", 0, "from", "fact"),
            "unknown fact 'last_methadone_dos' (did you mean 'last_methadone_dose'?)",
        ),
    ]


# ------------------------------------------------------------------ (3) moves on what did not happen


def _referred_to_otp(clock: ManualClock) -> Driver:
    from engine.episode.domain.consent import single_tpo_consent

    d = _at_bridge(clock)
    d.state.person = "P-1"
    d.state.consents = [
        single_tpo_consent("cn-1", "P-1", discloser="test", information="referral", signed_on=clock.now().date())
    ]
    d.event("methadone.last-dose", last_methadone_dose=clock.now().date().isoformat())
    clock.advance(timedelta(days=1))
    d.event("bridge.completed")
    assert d.state.stage == "otp"
    return d


def test_a_stay_too_long_moves_by_a_timer_that_is_a_rung() -> None:
    clock = ManualClock()
    d = _at_bridge(clock)
    timer = next(i for i in d.state.items if i.kind == "timeout")
    assert timer.due_at == clock.now() + timedelta(days=14) and len(timer.rungs) == 1
    clock.advance(timedelta(days=13))
    assert d.fire_due() == [] or d.state.stage == "bridge"
    clock.advance(timedelta(days=1))
    outs = d.fire_due()
    assert d.state.stage == "re-engagement"
    assert any(o.moved == ("bridge", "re-engagement") and not o.escalations for o in outs)


def test_a_missed_step_moves_and_one_met_in_time_ends_its_timer() -> None:
    clock = ManualClock()
    d = _referred_to_otp(clock)
    timer = next(i for i in d.state.items if i.kind == "timeout")
    step = next(i for i in d.state.items if i.kind == "handoff-step")
    assert timer.due_at == step.due_at and timer.match == {"watch": step.key}
    clock.advance(timedelta(days=7))
    d.fire_due()
    assert d.state.stage == "re-engagement"

    d = _referred_to_otp(ManualClock())
    d.event("handoff.accepted")
    out = d.event("handoff.visit-kept")
    assert any(i.kind == "timeout" and i.status == "cancelled" for i in out.closed)
    assert not [i for i in d.state.items if i.kind == "timeout"]


@pytest.mark.parametrize(
    ("moves", "ends"),
    [
        ([{"action": "decline", "party": "receiver", "reason": "no capacity"}], "declined"),
        ([{"action": "accept", "party": "receiver"}, {"action": "no-show", "party": "receiver"}], "no-show"),
    ],
)
def test_a_handoff_that_ends_badly_steps_back(moves: list[dict[str, Any]], ends: str) -> None:
    d = _referred_to_otp(ManualClock())
    for data in moves:
        out = d.event("handoff.move", **data)
    assert out.moved == ("otp", "bridge"), ends
    assert ("moved", {"from": "otp", "to": "bridge", "transition": 4, "unplanned": True}) in out.audit


def test_moves_on_what_did_not_happen_in_the_plan_and_their_checks() -> None:
    text = plan_table(plan_of())
    assert "t4: otp -> bridge when the handoff is declined or no-show" in text
    assert "t5: otp -> re-engagement when visit-kept is missed" in text
    assert "t6: bridge -> re-engagement after 14d in the stage" in text
    d = doc()
    d["transitions"][5]["on_missed"] = "visit-kep"
    assert messages(d) == [
        (
            ("transitions", 5, "on_missed"),
            "'visit-kep' is no entry task of 'otp' nor a step of a handoff into it (did you mean 'visit-kept'?)",
        )
    ]
    d["transitions"][6]["event"] = "person.re-engaged"
    with pytest.raises(ValueError, match="exactly one of event, after, on_missed, on_handoff"):
        PathwaySpec.model_validate(d)
