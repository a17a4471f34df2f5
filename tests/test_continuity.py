"""Issue #9 part C on a manual clock: work that outlives a stage, planned medication switches and required
medications, parallel check-in tracks. The pathway is the golden valid case ``tests/data/valid/continuity.yaml``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_episode import tpo_consent

from engine.clock import ManualClock
from engine.episode.domain.planned import PATHWAY
from engine.episode.rules import EpisodeState, Event, Outcome, apply_event, enroll, fire_rung
from engine.language.loader import load_pathway
from engine.language.model import PathwaySpec
from engine.plan.build import compile_plan
from engine.plan.mermaid import mermaid
from engine.plan.model import Plan
from engine.plan.text import plan_table

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "tests" / "data" / "valid" / "continuity.yaml"


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(CASE.read_text(encoding="utf-8"))
    return raw


def _plan(raw: dict[str, Any]) -> Plan:
    return compile_plan(PathwaySpec.model_validate(raw))


@pytest.fixture(scope="module")
def plan() -> Plan:
    return _plan(_raw())


class Driver:
    def __init__(self, plan: Plan, clock: ManualClock) -> None:
        self.plan, self.clock, self.n = plan, clock, 0
        self.state: EpisodeState = enroll(plan, "ep-c", clock.now()).state
        self.state.person, self.state.consents = "P-TEST-1", [tpo_consent()]

    def event(self, name: str, **data: object) -> Outcome:
        self.n += 1
        now = self.clock.now()
        out = apply_event(self.plan, self.state, Event(id=f"e{self.n}", name=name, data=data, at=now), now)
        self.state = out.state
        return out

    def fire_due(self) -> list[str]:
        roles: list[str] = []
        while due := [
            r for i in self.state.items for r in i.rungs if r.status == "pending" and r.due_at <= self.clock.now()
        ]:
            out = fire_rung(self.plan, self.state, min(due, key=lambda r: r.due_at).id, self.clock.now())
            self.state = out.state
            roles += [e.role for e in out.escalations]
        return roles

    def open(self, kind: str) -> list[str]:
        return sorted(i.key for i in self.state.items if i.kind == kind)


def test_the_golden_case_loads_clean_and_plan_and_graph_show_the_new_forms() -> None:
    result = load_pathway(CASE)
    assert [str(d) for d in result.diagnostics] == [] and result.ok
    plan = _plan(_raw())
    text = plan_table(plan)
    assert "lasts the episode" in text
    assert "planned change: stop methadone, start buprenorphine (OTP to office-based step-down)" in text
    assert "requires on the receiving list: buprenorphine" in text
    assert "track " in text and "medication  0h      30d" in text
    graph = mermaid(plan)
    assert "lasts the episode" in graph and "switch: methadone → buprenorphine" in graph
    assert "requires buprenorphine" in graph


# -- need 2: work that outlives a stage ---------------------------------------------------------------------


def test_a_lasting_handoff_follows_the_person_through_later_stages_until_its_loop_closes(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.event("step-down.started")
    d.clock.advance(timedelta(days=1))
    left = d.event("induction.completed")
    assert left.moved == ("induction", "community")
    assert [h.status for h in d.state.handoffs] == ["requested"], "leaving induction must not cancel it"
    assert d.open("handoff-step") == ["t0.handoff.accepted", "t0.handoff.visit-kept"]
    d.event("handoff.accepted")
    d.clock.advance(timedelta(days=15))  # the first visit is a day overdue: its ladder still runs
    assert d.fire_due().count("supervisor") == 1
    d.event("handoff.visit-kept")
    assert d.open("handoff-step") == []


def test_without_lasts_leaving_the_stage_cancels_the_handoff_as_in_version_1() -> None:
    raw = _raw()
    del raw["transitions"][0]["handoff"]["lasts"]
    d = Driver(_plan(raw), ManualClock())
    d.event("step-down.started")
    out = d.event("induction.completed")
    assert d.state.handoffs == [] and [h.status for h in out.handoffs_changed] == ["cancelled"]
    assert d.open("handoff-step") == []


def test_a_lasting_task_stays_due_after_the_move_and_is_met_later(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.event("step-down.started")
    d.event("induction.completed")
    assert d.open("task") == ["s.otp.task.naloxone-kit"]
    d.clock.advance(timedelta(days=3))
    d.event("naloxone.dispensed")
    assert d.open("task") == []


def test_a_declined_lasting_handoff_after_the_person_moved_on_alerts_instead_of_falling_back(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.event("step-down.started")
    d.event("induction.completed")
    out = d.event("handoff.move", action="decline", party="receiver", reason="no capacity")
    assert d.state.stage == "community" and out.moved is None
    assert any(i.kind == "alert" for i in out.opened)


# -- need 8: planned medication changes and required medications --------------------------------------------


def _lists(d: Driver, receiving: list[dict[str, str]]) -> Outcome:
    d.event("medications.sending-list", medications=[{"name": "Methadone 80 mg", "dose": "80 mg"}])
    return d.event("medications.receiving-list", medications=receiving)


def test_a_planned_switch_is_recorded_as_intentional_with_its_reason_and_alerts_nobody(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.event("step-down.started")
    out = _lists(d, [{"name": "Suboxone", "dose": "16 mg"}])
    found = {x.kind: x for x in out.discrepancies}
    assert set(found) == {"omission", "new-without-reason"}
    assert all(x.status == "intentional-documented" and x.marked_by == PATHWAY for x in found.values())
    assert found["omission"].reason == "OTP to office-based step-down"
    assert [i for i in out.opened if i.kind == "alert"] == []


def test_a_switch_half_made_is_a_dropped_moud_and_the_required_medication_is_critical(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.event("step-down.started")
    out = _lists(d, [{"name": "sertraline", "dose": "50 mg", "reason": "depression"}])
    critical = sorted(x.key for x in out.discrepancies if x.critical and x.is_error)
    assert critical == ["omission:buprenorphine", "omission:methadone"]
    alerts = [i for i in out.opened if i.kind == "alert"]
    assert len(alerts) == 2 and all(i.severity == "critical" for i in alerts)
    assert {r.role for i in alerts for r in i.rungs} == {"prescriber", "supervisor"}
    # the list sent again with the buprenorphine: the switch is complete, its findings documented
    again = d.event("medications.receiving-list", medications=[{"name": "buprenorphine", "dose": "16 mg"}])
    assert [x.key for x in again.discrepancies if x.is_error] == []


def test_a_stage_requires_its_medication_whatever_the_sending_list_says(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.event("step-down.started")
    d.event("induction.completed")
    out = d.event("medications.sending-list", medications=[])
    out = d.event("medications.receiving-list", medications=[{"name": "naloxone", "reason": "overdose kit"}])
    assert [(x.key, x.critical) for x in out.discrepancies if x.is_error] == [("omission:buprenorphine", True)]
    assert "required at this move" in out.discrepancies[0].detail


# -- need 9: parallel check-in tracks -----------------------------------------------------------------------


def test_parallel_tracks_run_side_by_side_each_with_its_own_event_owner_and_ladder(plan: Plan) -> None:
    d = Driver(plan, ManualClock())
    d.event("step-down.started")
    d.event("handoff.accepted")
    d.event("induction.completed")
    assert d.open("check-in") == ["s.community.checkin.0", "s.community.checkin.1", "s.community.checkin.2"]
    d.event("therapy.attended")  # meets the therapy contact only
    assert d.open("check-in") == ["s.community.checkin.0", "s.community.checkin.1", "s.community.checkin.2"]
    therapy = next(i for i in d.state.items if i.key == "s.community.checkin.0")
    assert therapy.occurrence == 1
    d.clock.advance(timedelta(days=2, hours=1))
    assert d.fire_due() == ["peer-recovery-coach"]  # the missed peer contact, not the therapy one
    d.clock.advance(timedelta(days=1))
    assert d.fire_due() == ["prescriber"]  # monthly medication management: its 3d window
    for _ in range(5):  # five weeks of therapy and peer contacts; the medication track is on its own clock
        d.clock.advance(timedelta(days=7))
        d.event("therapy.attended")
        d.event("peer.contacted")
    meds = next(i for i in d.state.items if i.key == "s.community.checkin.2")
    assert meds.occurrence == 1 and meds.opened_at == d.state.stage_entered_at + timedelta(days=30)


# -- through the service and the store: what lasts survives a save and a load --------------------------------


def test_a_lasting_handoff_and_a_documented_switch_survive_the_store(tmp_path: Path) -> None:
    from datetime import date

    from sqlmodel import Session, select
    from store_fixtures import migrated_database_url

    from engine import store
    from engine.app import Settings, enroll, record_event
    from engine.app.inline import RecordingNotifier, inline_app
    from engine.episode.domain.consent import single_tpo_consent
    from engine.store import EscalationRecord

    with migrated_database_url("sqlite", tmp_path) as url:
        settings = Settings.from_env({"CAREPATH_HOME": str(tmp_path), "CAREPATH_DATABASE_URL": url})
        clock = ManualClock()
        app = inline_app(settings, clock, notifier=RecordingNotifier({}))
        try:
            result = load_pathway(CASE)
            assert result.spec is not None
            app.service.register_pathway(result.spec, CASE.read_text(encoding="utf-8"))
            ep = enroll(app, "otp-step-down", "P-APP-9")
            consent = single_tpo_consent(
                "cn-9", "P-APP-9", discloser="OTP", information="referral", signed_on=date(2026, 1, 1)
            )
            app.service.add_consent(ep, consent)
            record_event(app, ep, "step-down.started")
            record_event(app, ep, "medications.sending-list", {"medications": [{"name": "methadone", "dose": "80 mg"}]})
            record_event(
                app, ep, "medications.receiving-list", {"medications": [{"name": "buprenorphine", "dose": "16 mg"}]}
            )
            record_event(app, ep, "induction.completed")
            with Session(app.engine) as s:
                handoffs = store.open_handoffs(s, ep)
                found = store.discrepancies_for(s, ep)
            assert [h.transition_index for h in handoffs] == [0]  # opened two stages ago, still followed
            assert {(d.kind, d.status, d.marked_by) for d in found} == {
                ("omission", "intentional-documented", PATHWAY),
                ("new-without-reason", "intentional-documented", PATHWAY),
            }
            clock.advance(timedelta(days=15))
            app.scheduler.run_due(app, clock.now())  # type: ignore[attr-defined]
            with Session(app.engine) as s:
                roles = sorted(e.role for e in s.exec(select(EscalationRecord)))
            assert "supervisor" in roles  # the lasting handoff's first visit, overdue in the community stage
            record_event(app, ep, "handoff.accepted")
            record_event(app, ep, "handoff.visit-kept")
            with Session(app.engine) as s:
                assert [i.kind for i in store.open_work_items(s, ep) if i.kind == "handoff-step"] == []
        finally:
            app.close()
