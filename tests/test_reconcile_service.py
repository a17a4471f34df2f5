"""Medication lists sent again, through the episode service over a real store (no Prefect), SQLite and PostgreSQL.

The sequence that crashed (issue 7, defect 2): both lists, the critical alert fires, a list is sent again. Then
what must hold for any sequence of lists: a new list supersedes the comparison, what it no longer finds is kept
as resolved, a clinician's mark carries over, an alert is raised once per critical finding, nothing crashes.
"""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from engine import store
from engine.app.service import EpisodeService
from engine.app.views import discrepancy_rows
from engine.clock import ManualClock
from engine.language.loader import load_pathway_text
from engine.store import AuditRecord, EscalationRecord, RungRecord, WorkItemRecord

PATHWAY = """\
id: meds-resend
version: 1
title: Medication lists sent again
description: One transfer, with medication reconciliation and two critical medications.
asam_edition: 3
roles:
  coordinator: { title: Coordinator }
  prescriber: { title: Prescriber }
  supervisor: { title: Supervisor }
events:
  transfer.done: { description: The person moves to residential care. }
  residential.completed: { description: Residential care ends. }
stages:
  - { id: detox, name: Withdrawal management, level: 3.7-WM }
  - { id: residential, name: Residential, level: "3.5" }
  - { id: done, name: Completed, terminal: true }
transitions:
  - from: detox
    to: residential
    event: transfer.done
    reconcile:
      within: 24h
      critical_to: [prescriber, supervisor]
      escalate: [{ after: 0h, to: coordinator }]
  - { from: residential, to: done, event: residential.completed }
medications:
  critical:
    - { name: buprenorphine, class: MOUD, rxnorm: ["1819"], aliases: [Suboxone] }
    - { name: methadone, class: MOUD, rxnorm: ["6813"] }
"""

BUP = {"name": "buprenorphine", "dose": "16 mg", "route": "sublingual", "frequency": "daily", "rxnorm": "1819"}
SERTRALINE = {"name": "sertraline", "dose": "50 mg"}
METHADONE = {"name": "methadone", "dose": "60 mg"}
OMITTED = "omission:buprenorphine"
CRITICAL = {OMITTED, "omission:methadone"}


@pytest.fixture
def service(engine: Engine) -> EpisodeService:
    service = EpisodeService(engine, ManualClock())
    result = load_pathway_text(PATHWAY, "meds-resend.yaml")
    assert result.ok and result.spec is not None, result.diagnostics
    service.register_pathway(result.spec, PATHWAY)
    return service


def _moved(service: EpisodeService) -> str:
    episode_id = service.enroll("meds-resend", "P-TEST-1").episode_id
    service.record_event(episode_id, "transfer.done")
    return episode_id


def _send(service: EpisodeService, episode_id: str, side: str, *meds: dict[str, str]) -> None:
    service.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
    service.record_event(episode_id, f"medications.{side}-list", {"medications": list(meds)})


def _alerts(service: EpisodeService, episode_id: str) -> list[WorkItemRecord]:
    with Session(service.engine) as s:
        return list(
            s.exec(
                select(WorkItemRecord)
                .where(WorkItemRecord.episode_id == episode_id, WorkItemRecord.kind == "alert")
                .order_by(col(WorkItemRecord.opened_at), col(WorkItemRecord.id))
            )
        )


def _findings(service: EpisodeService, episode_id: str) -> dict[str, str]:
    """The visit's discrepancies, key -> status."""
    with Session(service.engine) as s:
        visit = store.get_episode(s, episode_id).visit
        return {d.key: d.status for d in store.discrepancies_for(s, episode_id, visit)}


def _fire_due(service: EpisodeService, episode_id: str) -> list[str]:
    """Fire every due pending rung, as the deadline runs would; returns the roles alerted."""
    roles: list[str] = []
    with Session(service.engine) as s:
        due = s.exec(
            select(RungRecord).where(
                RungRecord.episode_id == episode_id,
                RungRecord.status == "pending",
                col(RungRecord.due_at) <= service.clock.now(),
            )
        ).all()
        rung_ids = [r.id for r in due]
    for rung_id in rung_ids:
        changes = service.fire_rung(rung_id)
        roles += [role for _, role in changes.escalations] if changes else []
    return roles


def test_a_list_sent_again_after_the_critical_alert_fired_supersedes_the_comparison(
    service: EpisodeService,
) -> None:
    ep = _moved(service)
    _send(service, ep, "sending", BUP, SERTRALINE)
    _send(service, ep, "receiving", SERTRALINE)
    [alarm] = _alerts(service, ep)
    assert (alarm.severity, alarm.status) == ("critical", "open")
    assert sorted(_fire_due(service, ep)) == ["prescriber", "supervisor"]
    assert [a.status for a in _alerts(service, ep)] == ["done"], "the alert closed once its rungs fired"

    # what crashed with "UNIQUE constraint failed: rung.id": the same receiving list again
    _send(service, ep, "receiving", SERTRALINE)
    assert len(_alerts(service, ep)) == 1, "an alert already raised for a finding is not raised twice"
    assert _findings(service, ep) == {OMITTED: "unintentional"}

    # a clinician documents the omission; a changed list keeps the mark (same finding), adds the new finding
    with Session(service.engine) as s:
        visit = store.get_episode(s, ep).visit
    service.mark_intentional(f"{ep}/{visit}/{OMITTED}", "taper agreed with the person", "CLIN-7")
    _send(service, ep, "receiving", {**SERTRALINE, "dose": "100 mg"})
    assert _findings(service, ep) == {OMITTED: "intentional-documented", "dose-change:sertraline": "unintentional"}
    assert len(_alerts(service, ep)) == 1

    # the corrected list: both findings are resolved, kept in the history, shown as resolved
    _send(service, ep, "receiving", BUP, SERTRALINE)
    resolved_at = service.clock.now()
    assert _findings(service, ep) == {OMITTED: "resolved", "dose-change:sertraline": "resolved"}
    rows = {r["id"].rsplit("/", 1)[-1]: r for r in discrepancy_rows(service.engine, ep)}
    assert rows[OMITTED]["status"] == "resolved"
    assert rows[OMITTED]["resolved"] == f"{resolved_at:%Y-%m-%d %H:%M}"
    assert rows[OMITTED]["reason"] == "taper agreed with the person", "the clinician's documentation stays"
    assert len(_alerts(service, ep)) == 1

    # a new critical omission (methadone added on the sending side) alerts; the resolved one stays resolved
    _send(service, ep, "sending", BUP, SERTRALINE, METHADONE)
    assert _findings(service, ep)["omission:methadone"] == "unintentional"
    new = [a for a in _alerts(service, ep) if a.status == "open"]
    assert [(a.severity, "methadone" in (a.note or "")) for a in new] == [("critical", True)]
    assert sorted(_fire_due(service, ep)) == ["prescriber", "supervisor"]

    # the receiving list emptied: the buprenorphine omission is back (after it was resolved, a new finding that
    # alerts again), methadone's alert is not raised twice, an ordinary omission never alerts
    _send(service, ep, "receiving")
    assert _findings(service, ep) == {
        OMITTED: "unintentional",
        "omission:methadone": "unintentional",
        "omission:sertraline": "unintentional",
        "dose-change:sertraline": "resolved",
    }
    notes = [a.note or "" for a in _alerts(service, ep)]
    assert len(notes) == 3 and "buprenorphine" in notes[-1], notes
    with Session(service.engine) as s:
        audit = [a.action for a in s.exec(select(AuditRecord).where(AuditRecord.episode_id == ep))]
    assert audit.count("discrepancy.resolved") == 2


def test_a_clinicians_mark_stops_the_alert_when_the_lists_are_compared_again(service: EpisodeService) -> None:
    ep = _moved(service)
    _send(service, ep, "sending", BUP, SERTRALINE)
    _send(service, ep, "receiving", SERTRALINE)
    assert sorted(_fire_due(service, ep)) == ["prescriber", "supervisor"]
    with Session(service.engine) as s:
        visit = store.get_episode(s, ep).visit
    service.mark_intentional(f"{ep}/{visit}/{OMITTED}", "stopped on purpose", "CLIN-7")
    _send(service, ep, "sending", BUP, SERTRALINE)  # the sending side again: compared again
    _send(service, ep, "receiving", SERTRALINE)
    assert _findings(service, ep) == {OMITTED: "intentional-documented"}
    assert len(_alerts(service, ep)) == 1


def test_an_empty_comparison_resolves_what_was_found(service: EpisodeService) -> None:
    ep = _moved(service)
    _send(service, ep, "sending", SERTRALINE)
    _send(service, ep, "receiving")
    assert _findings(service, ep) == {"omission:sertraline": "unintentional"}
    _send(service, ep, "receiving", SERTRALINE)
    assert _findings(service, ep) == {"omission:sertraline": "resolved"}
    assert _alerts(service, ep) == []


LISTS = [
    (),
    (SERTRALINE,),
    (BUP,),
    (BUP, SERTRALINE),
    (METHADONE, SERTRALINE),
    ({**BUP, "dose": "8 mg"}, METHADONE),
    (SERTRALINE, SERTRALINE),
    ({"name": "Suboxone"},),
]


def _alerted(alert_key: str) -> str:
    """The finding an alert item's key names, as a digest: ``alert.critical-medication.<digest>[@<n>]``."""
    return alert_key.removeprefix("alert.critical-medication.").split("@")[0]


def _digest(finding_key: str) -> str:
    return hashlib.sha256(finding_key.encode()).hexdigest()[:12]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_sequence_of_lists_marks_and_firings_never_crashes_and_alerts_once_per_finding(
    service: EpisodeService, seed: int
) -> None:
    """After every step: a critical omission has been alerted exactly as often as it became an unmarked error
    (found again after being resolved counts anew); nothing raises."""
    rnd = random.Random(seed)
    ep = _moved(service)
    with Session(service.engine) as s:
        visit = store.get_episode(s, ep).visit
    errors: set[str] = set()
    expected: dict[str, int] = {}
    for _ in range(30):
        step = rnd.random()
        if step < 0.7:
            _send(service, ep, rnd.choice(("sending", "receiving")), *rnd.choice(LISTS))
        elif step < 0.85:
            _fire_due(service, ep)
        else:
            unmarked = [k for k, v in _findings(service, ep).items() if v == "unintentional"]
            if unmarked:
                service.mark_intentional(f"{ep}/{visit}/{rnd.choice(unmarked)}", "documented", "CLIN-7")
        found = _findings(service, ep)
        now = {k for k, v in found.items() if v == "unintentional" and k.split("#")[0] in CRITICAL}
        for key in now - errors:
            expected[_digest(key)] = expected.get(_digest(key), 0) + 1
        errors = now
        alerted: dict[str, int] = {}
        for item in _alerts(service, ep):
            alerted[_alerted(item.key)] = alerted.get(_alerted(item.key), 0) + 1
        assert alerted == expected, (found, alerted)
    with Session(service.engine) as s:
        escalations = s.exec(select(EscalationRecord).where(EscalationRecord.episode_id == ep)).all()
        assert len({e.rung_id for e in escalations}) == len(escalations)
