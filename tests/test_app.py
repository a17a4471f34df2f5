"""The whole service on a manual clock with in-memory ports (no Prefect): every trigger ends in the one follow-up.

The invariant that matters most is checked for every trigger (an event, a deadline run, the sweep after lost runs,
a deliverer that died): **every escalation has a delivery outcome per contact** (delivered, failed after retries,
or "no contact for this role"). Runs on SQLite and PostgreSQL, with a pathway written for these tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlmodel import Session, select
from store_fixtures import BACKENDS, migrated_database_url

from engine import store
from engine.app import App, Settings, enroll, record_event, sweep
from engine.app.delivery import CLAIM_STALE
from engine.app.inline import MemoryScheduler, RecordingNotifier, inline_app
from engine.clock import ManualClock
from engine.episode.domain.consent import Consent, single_tpo_consent
from engine.errors import EventRejected
from engine.language.loader import load_pathway_text
from engine.store import DeliveryRecord, EscalationRecord, InboundEventRecord

PATHWAY = """
id: bridge-test
version: 1
title: ED buprenorphine to a bridge clinic
description: Written for the application tests.
asam_edition: 3
roles:
  coordinator: { title: Coordinator }
  supervisor: { title: Supervisor }
  prescriber: { title: Prescriber }
  clinic-intake: { title: Clinic intake }
events:
  ed.discharged: { description: The ED discharges the person. }
  naloxone.given: { description: A naloxone kit was handed over. }
  clinic.completed: { description: The bridge clinic discharges the person. }
stages:
  - id: ed
    name: Emergency department
    on_entry:
      - id: naloxone
        title: Naloxone kit given
        owner: coordinator
        within: 4h
        done_on: naloxone.given
        escalate: [{ after: 0h, to: coordinator }, { after: 2h, to: supervisor }]
  - id: clinic
    name: Bridge clinic
  - { id: done, name: Done, terminal: true }
transitions:
  - from: ed
    to: clinic
    event: ed.discharged
    handoff:
      receiver: { program: Bridge clinic, role: clinic-intake }
      mode: standard
      consent_purpose: treatment
      steps:
        - kind: accepted
          within: 24h
          escalate: [{ after: 0h, to: coordinator }, { after: 12h, to: supervisor }]
    reconcile: { within: 24h, critical_to: [prescriber, supervisor] }
  - { from: clinic, to: done, event: clinic.completed }
medications:
  critical:
    - { name: buprenorphine, class: MOUD, rxnorm: ["1819"], aliases: [Suboxone] }
"""

CONTACTS = {"coordinator": ["coord-desk"], "supervisor": ["sup-1", "sup-2"], "prescriber": ["rx-on-call"]}


@contextmanager
def bridge_app(backend: str, folder: Path, scheduler: MemoryScheduler | None = None) -> Iterator[App]:
    """The service on in-memory ports and a manual clock, on a fresh ``backend`` store, with the bridge pathway."""
    with migrated_database_url(backend, folder) as url:
        settings = Settings.from_env({"CAREPATH_HOME": str(folder), "CAREPATH_DATABASE_URL": url})
        app = inline_app(settings, ManualClock(), notifier=RecordingNotifier(CONTACTS), scheduler=scheduler)
        result = load_pathway_text(PATHWAY, "bridge-test.yaml")
        assert result.ok and result.spec is not None, result.diagnostics
        app.service.register_pathway(result.spec, PATHWAY)
        yield app
        app.close()


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    with bridge_app(request.param, tmp_path) as app:
        yield app


def scheduler(app: App) -> MemoryScheduler:
    assert isinstance(app.scheduler, MemoryScheduler)
    return app.scheduler


def notifier(app: App) -> RecordingNotifier:
    assert isinstance(app.notifier, RecordingNotifier)
    return app.notifier


def advance(app: App, delta: timedelta) -> None:
    """Let time pass as production would: Prefect starts the runs that come due."""
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.advance(delta)
    scheduler(app).run_due(app, clock.now())


def escalations(app: App) -> list[EscalationRecord]:
    with Session(app.engine) as s:
        return list(s.exec(select(EscalationRecord)))


def assert_every_escalation_reached_its_contacts(app: App) -> None:
    """The invariant: one delivery outcome per contact of the escalation's role, or one `no-contact`."""
    with Session(app.engine) as s:
        deliveries = list(s.exec(select(DeliveryRecord)))
        unfinished = [e.rung_id for e in s.exec(select(EscalationRecord)) if e.delivery_done_at is None]
    assert unfinished == []
    for escalation in escalations(app):
        mine = [d for d in deliveries if d.rung_id == escalation.rung_id]
        wanted = len(CONTACTS.get(escalation.role, [])) or 1
        assert len(mine) == wanted, f"{escalation.rung_id} -> {escalation.role}: {[d.key for d in mine]}"
        assert all(d.status in ("delivered", "failed", "no-contact") for d in mine)


def enrolled(app: App) -> str:
    episode_id = enroll(app, "bridge-test", "P-APP-001")
    app.service.add_consent(episode_id, _consent(episode_id))
    return episode_id


def _consent(episode_id: str) -> Consent:
    return single_tpo_consent(
        f"cn-{episode_id}", "P-APP-001", discloser="Test ED", information="referral", signed_on=date(2026, 1, 1)
    )


# ------------------------------------------------------------------------------------------------ triggers


def test_a_deadline_run_escalates_and_delivers_to_every_contact(app: App) -> None:
    ep = enrolled(app)
    assert [r.timer.rung_id for r in scheduler(app).waiting()] == [f"{ep}/1/s.ed.task.naloxone#r0"]
    advance(app, timedelta(hours=4))
    advance(app, timedelta(hours=2))
    assert {(e.role, e.rung_id.rsplit("#", 1)[1]) for e in escalations(app)} == {
        ("coordinator", "r0"),
        ("supervisor", "r1"),
    }
    assert sorted(s.contact for s in notifier(app).sent) == ["coord-desk", "sup-1", "sup-2"]
    assert_every_escalation_reached_its_contacts(app)


def test_the_sweep_fires_and_delivers_what_lost_runs_never_did(app: App) -> None:
    ep = enrolled(app)
    assert scheduler(app).lose() == 1  # the server dropped the run (or it started too late)
    advance(app, timedelta(hours=7))
    assert escalations(app) == []
    report = sweep(app)
    assert report.fired >= 1
    assert {e.rung_id for e in escalations(app)} == {f"{ep}/1/s.ed.task.naloxone#r0", f"{ep}/1/s.ed.task.naloxone#r1"}
    assert_every_escalation_reached_its_contacts(app)
    assert sweep(app).idle, "a second sweep finds nothing left to do"


def test_critical_roles_are_all_alerted_in_the_run_that_records_the_omission(app: App) -> None:
    ep = enrolled(app)
    record_event(app, ep, "ed.discharged")
    record_event(app, ep, "medications.sending-list", {"medications": [{"name": "buprenorphine", "dose": "8 mg"}]})
    assert notifier(app).sent == []
    record_event(app, ep, "medications.receiving-list", {"medications": [{"name": "ondansetron", "reason": "nausea"}]})
    # no deadline run, no sweep: the event's own run alerted everyone
    critical = [e for e in escalations(app) if e.severity == "critical"]
    assert {e.role for e in critical} == {"prescriber", "supervisor"} and len(critical) == len(escalations(app))
    assert {s.contact for s in notifier(app).sent} == {"rx-on-call", "sup-1", "sup-2"}
    assert all(s.notification.title.startswith("Carepath CRITICAL alert") for s in notifier(app).sent)
    assert_every_escalation_reached_its_contacts(app)


def test_a_role_nobody_fills_is_recorded_as_reaching_nobody(app: App, tmp_path: Path) -> None:
    notifier(app).contacts = {}
    enrolled(app)
    advance(app, timedelta(hours=4))
    [escalation] = escalations(app)
    with Session(app.engine) as s:
        [delivery] = store.deliveries_for(s, rung_id=escalation.rung_id)
    assert (delivery.status, delivery.last_error) == ("no-contact", "no contact for role 'coordinator' in the roster")
    assert_every_escalation_reached_its_contacts(app)


def test_an_escalation_whose_deliverer_died_is_delivered_by_the_sweep_once_its_claim_is_stale(app: App) -> None:
    ep = enrolled(app)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(hours=4))
    changes = app.service.fire_rung(f"{ep}/1/s.ed.task.naloxone#r0")  # raised and claimed, then the process died
    assert changes is not None and changes.escalations
    assert sweep(app).delivered == 0, "a fresh claim belongs to a process that may still deliver"
    clock.advance(CLAIM_STALE + timedelta(seconds=1))
    assert sweep(app).delivered == 1
    assert [s.contact for s in notifier(app).sent] == ["coord-desk"]
    assert_every_escalation_reached_its_contacts(app)


def test_a_failing_contact_is_recorded_failed_and_never_hides_the_others(app: App) -> None:
    notifier(app).failing = {"sup-1"}
    enrolled(app)
    advance(app, timedelta(hours=6))
    with Session(app.engine) as s:
        outcomes = {d.contact_label: d.status for d in s.exec(select(DeliveryRecord))}
    assert outcomes == {"coord-desk": "delivered", "sup-1": "failed", "sup-2": "delivered"}
    assert_every_escalation_reached_its_contacts(app)


# ---------------------------------------------------------------------------------------------- events


def test_an_event_answers_where_the_episode_is_after_it_without_reading_the_pathway_again(app: App) -> None:
    """The answer comes from the change as committed (no read after it), and a registered pathway version's text
    is read once per process, not twice an event: a version never changes."""
    ep = enrolled(app)
    read: list[str] = []

    def pathway_reads(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "FROM pathway_version" in statement:
            read.append(statement)

    sqlalchemy_event.listen(app.engine, "before_cursor_execute", pathway_reads)
    moved = record_event(app, ep, "ed.discharged", event_id="adt-1")
    assert (moved.status, moved.stage, moved.episode_status, moved.moved) == (
        "applied",
        "clinic",
        "active",
        ("ed", "clinic"),
    )
    again = record_event(app, ep, "ed.discharged", event_id="adt-1")
    assert (again.status, again.stage, again.episode_status, again.moved) == ("duplicate", "clinic", "active", None)
    done = record_event(app, ep, "clinic.completed")
    assert (done.stage, done.episode_status, done.moved) == ("done", app.service.episode(ep).status, ("clinic", "done"))
    assert done.episode_status != "active"
    assert read == []  # enrolling read it
    sqlalchemy_event.remove(app.engine, "before_cursor_execute", pathway_reads)


def test_event_ids_are_per_episode_and_an_id_reused_for_other_content_is_refused(app: App) -> None:
    first, second = enrolled(app), enroll(app, "bridge-test", "P-APP-002")
    assert record_event(app, first, "ed.discharged", event_id="hl7-0001").status == "applied"
    assert record_event(app, second, "ed.discharged", event_id="hl7-0001").status == "applied", "another episode"
    assert app.service.episode(second).stage == "clinic"
    assert record_event(app, first, "ed.discharged", event_id="hl7-0001").status == "duplicate"
    with pytest.raises(EventRejected, match=r"event id 'hl7-0001' was already used for event 'ed.discharged'"):
        record_event(app, first, "clinic.completed", event_id="hl7-0001")
    assert app.service.episode(first).stage == "clinic", "the refused event changed nothing"


def test_the_payload_stays_in_the_store_and_the_dispatcher_gets_ids_only(app: App) -> None:
    ep = enrolled(app)
    seen: list[tuple[object, ...]] = []
    inner = app.dispatcher.event
    app.dispatcher.event = lambda *args: (seen.append(args), inner(*args))[1]  # type: ignore[method-assign]
    record_event(app, ep, "ed.discharged")
    meds = [{"name": "buprenorphine", "dose": "16 mg", "route": "sublingual"}]
    record_event(app, ep, "medications.sending-list", {"medications": meds})
    assert [args[:4] for args in seen] == [
        ("bridge-test", 1, ep, "ed.discharged"),
        ("bridge-test", 1, ep, "medications.sending-list"),
    ]
    assert all(str(args[4]).startswith("in-") for args in seen)
    with Session(app.engine) as s:
        stored = s.get(InboundEventRecord, str(seen[1][4]))
    assert stored is not None and stored.data == {"medications": meds} and stored.status == "applied"


def test_a_stored_event_whose_run_died_is_applied_by_the_sweep(app: App) -> None:
    ep = enrolled(app)
    inbound_id = app.service.receive_event(ep, "ed.discharged")  # stored; the run never came
    clock = app.clock
    assert isinstance(clock, ManualClock)
    assert sweep(app).applied == 0
    clock.advance(timedelta(minutes=2))
    assert sweep(app).applied == 1
    assert app.service.episode(ep).stage == "clinic"
    with Session(app.engine) as s:
        assert s.get(InboundEventRecord, inbound_id).status == "applied"  # type: ignore[union-attr]


def test_a_refused_event_is_recorded_with_its_reason_and_changes_nothing(app: App) -> None:
    ep = enrolled(app)
    with pytest.raises(EventRejected, match="not expected in stage 'ed'"):
        record_event(app, ep, "clinic.completed")
    with Session(app.engine) as s:
        [inbound] = s.exec(select(InboundEventRecord).where(InboundEventRecord.name == "clinic.completed")).all()
    assert inbound.status == "rejected" and "not expected" in (inbound.detail or "")
    assert app.service.episode(ep).stage == "ed"


def test_meeting_a_deadline_cancels_its_run_and_schedules_nothing_more(app: App) -> None:
    ep = enrolled(app)
    [run] = scheduler(app).waiting()
    record_event(app, ep, "ed.discharged")
    assert run.state == "cancelled"
    assert {r.timer.rung_id for r in scheduler(app).waiting()} == {f"{ep}/2/t0.handoff.accepted#r0"}
    assert app.publisher.artifacts[f"episode-{ep}"].startswith(f"# {ep}")  # type: ignore[attr-defined]
