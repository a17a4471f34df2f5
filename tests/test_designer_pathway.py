"""Issue #9's promise: a pathway written by someone else in the new forms validates and runs with no code change.

``tests/data/valid/ed-bup-primary-care.yaml`` was written as an outside designer would, with the forms of parts A-C
and ``include:`` of a program file. One person goes through it end to end on the service and a real store, on a
manual clock: enrollment, consent, the ED discharge, a missed deadline escalating on the program's ladder, a
three-week timeout into peer re-engagement, a return, the planned switch to the monthly injection recorded as
intentional, and the lasting handoff to primary care closing its loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from store_fixtures import BACKENDS, migrated_database_url

from engine import store
from engine.app import App, Settings, enroll, record_event
from engine.app.inline import MemoryScheduler, RecordingNotifier, inline_app
from engine.clock import ManualClock
from engine.episode.domain.consent import single_tpo_consent
from engine.errors import EventRejected, InvalidInput
from engine.language.loader import load_pathway
from engine.plan.build import compile_plan
from engine.plan.mermaid import mermaid
from engine.store import EscalationRecord

PATHWAY = Path(__file__).parent / "data" / "valid" / "ed-bup-primary-care.yaml"
CONTACTS = {
    "care-coordinator": ["coord-desk"],
    "supervisor": ["sup-1"],
    "prescriber": ["rx-on-call"],
    "peer-recovery-coach": ["peer-1"],
}


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    with migrated_database_url(request.param, tmp_path) as url:
        settings = Settings.from_env({"CAREPATH_HOME": str(tmp_path), "CAREPATH_DATABASE_URL": url})
        app = inline_app(settings, ManualClock(), notifier=RecordingNotifier(CONTACTS))
        result = load_pathway(PATHWAY)
        assert result.ok and result.spec is not None and result.source_text is not None, result.diagnostics
        app.service.register_pathway(result.spec, result.source_text)
        yield app
        app.close()


def advance(app: App, delta: timedelta) -> None:
    """Let time pass as production would: the scheduler starts the runs that come due."""
    assert isinstance(app.clock, ManualClock) and isinstance(app.scheduler, MemoryScheduler)
    app.clock.advance(delta)
    app.scheduler.run_due(app, app.clock.now())


def escalated(app: App) -> list[tuple[str, str]]:
    with Session(app.engine) as s:
        return sorted((e.rung_id.split("/")[-1], e.role) for e in s.exec(select(EscalationRecord)))


def test_it_validates_clean_and_plans_every_form() -> None:
    result = load_pathway(PATHWAY)
    assert result.ok and result.spec is not None and result.diagnostics == []
    plan = compile_plan(result.spec)
    assert {s for t in plan.transitions for s in t.sources} == {"ed", "bridge", "re-engagement", "primary-care"}
    assert "flowchart" in mermaid(plan)


def test_one_person_end_to_end(app: App) -> None:
    ep = enroll(app, "ed-bup-primary-care", "P-DESIGN-1")
    consent = single_tpo_consent(
        "cn-d1", "P-DESIGN-1", discloser="City ED", information="referral", signed_on=date(2026, 1, 1)
    )
    app.service.add_consent(ep, consent)
    with pytest.raises(InvalidInput, match="maximum 14"):  # a numeric bound of the payload
        record_event(app, ep, "ed.discharged", {"bridge_supply_days": 30})
    assert record_event(app, ep, "ed.discharged", {"bridge_supply_days": 7}).stage == "bridge"

    # the bridge clinic does not accept within 24 h: the program's standard ladder alerts the coordinator
    advance(app, timedelta(hours=25))
    assert any(role == "care-coordinator" and "accepted" in rung for rung, role in escalated(app)), escalated(app)
    record_event(app, ep, "handoff.accepted")
    record_event(app, ep, "handoff.visit-kept")
    record_event(app, ep, "naloxone.dispensed")
    record_event(app, ep, "medications.reconciled")

    # too early for primary care (a time guard), then three weeks with no stabilization: a timeout to outreach
    with pytest.raises(EventRejected, match="possible from"):
        record_event(app, ep, "bridge.stabilized")
    advance(app, timedelta(days=21))
    assert app.service.episode(ep).stage == "re-engagement"
    assert record_event(app, ep, "person.re-engaged").stage == "bridge"
    record_event(app, ep, "naloxone.dispensed")

    # the lasting handoff to primary care, with the planned switch to the monthly injection
    assert record_event(app, ep, "bridge.stabilized").stage == "primary-care"
    record_event(app, ep, "medications.sending-list", {"medications": [{"name": "buprenorphine", "dose": "16 mg"}]})
    receiving = [{"name": "buprenorphine extended-release", "dose": "300 mg"}]
    record_event(app, ep, "medications.receiving-list", {"medications": receiving})
    with Session(app.engine) as s:
        found = store.discrepancies_for(s, ep)
    assert {(d.kind, d.status, d.marked_by) for d in found} == {
        ("omission", "intentional-documented", "pathway"),
        ("new-without-reason", "intentional-documented", "pathway"),
    }
    alerts_before = len(escalated(app))
    with Session(app.engine) as s:  # both lists in and nothing left unexplained: reconciled
        assert [i.kind for i in store.open_work_items(s, ep) if i.kind == "reconcile"] == []
    record_event(app, ep, "peer.contacted")
    record_event(app, ep, "meds.reviewed")
    record_event(app, ep, "handoff.accepted")
    record_event(app, ep, "handoff.visit-kept")
    record_event(app, ep, "handoff.outcome-returned")
    with Session(app.engine) as s:
        assert store.open_handoffs(s, ep) == []  # the loop is closed
    assert len(escalated(app)) == alerts_before  # a documented switch alerts nobody
    assert record_event(app, ep, "care.established").stage == "done"
    assert app.service.episode(ep).status != "active"
