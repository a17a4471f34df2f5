"""The measures on a history the pure episode rules recorded (``HistoryRecorder``), not one built by hand: the
shape the simulator and the store produce. One episode of the test pathway, event by event, with a consent in
place so the handoffs are sent; every number below follows from the events listed."""

from __future__ import annotations

from datetime import date
from typing import Any

from measures_data import AS_OF, JAIL, PLANS, at

from engine.episode.domain.consent import single_tpo_consent
from engine.episode.history import EpisodeHistory, HistoryRecorder
from engine.episode.rules import apply_event, enroll
from engine.episode.state import Event
from engine.measures import compute_measures


def recorded(events: list[tuple[str, float, dict[str, Any]]]) -> EpisodeHistory:
    recorder = HistoryRecorder(JAIL.pathway_id, JAIL.version)
    out = enroll(JAIL, "E-RULES-1", at(0), {"insurance": "medicaid"})
    recorder.record(out, at(0))
    state = out.state
    state.person = "P-SIM-000001"
    state.consents = [
        single_tpo_consent(
            "cn-1", "P-SIM-000001", discloser="Test program", information="SUD care", signed_on=date(2026, 1, 1)
        )
    ]
    for n, (name, day, data) in enumerate(events):
        event = Event(id=f"e{n}", name=name, data=data, at=at(day))
        out = apply_event(JAIL, state, event, at(day))
        recorder.record(out, at(day), event)
        state = out.state
    return recorder.history()


def test_a_recorded_episode_gives_the_measures_its_events_imply() -> None:
    history = recorded(
        [
            ("intake.completed", 1, {}),
            ("custody.released", 5, {}),  # jail-wm -> residential (Harbor Residential handoff), day 5
            ("medications.sending-list", 5.1, {"medications": [{"name": "Suboxone 8 mg film"}]}),
            ("handoff.accepted", 5.2, {}),
            ("medications.receiving-list", 5.5, {"medications": [{"name": "buprenorphine 8 mg"}]}),
            ("peer.contacted", 6, {}),  # 24 hours after release
            ("session.attended", 8, {}),  # initiation (day 8 is within 14 days of intake on day 1)
            ("residential.completed", 20, {}),  # residential -> outpatient (Eastside Clinic handoff), day 20
            ("handoff.accepted", 20.5, {}),
            ("handoff.visit-kept", 22, {}),  # 2 days after the discharge
        ]
    )
    assert [s.stage for s in history.stays] == ["jail-wm", "residential", "outpatient"]
    report = compute_measures([history], PLANS, as_of=AS_OF, min_cell=1)

    def counts(measure: str, subject: str = "") -> tuple[int | None, int | None]:
        r = report.result(measure, subject)
        return r.numerator, r.denominator

    assert counts("follow-up.7d") == (1, 1)  # the jail-wm discharge is a transfer; the residential one is followed
    assert counts("initiation") == (1, 1) and counts("engagement") == (0, 1)  # day 22 is one more day, not two
    assert counts("reentry.contact-72h") == (1, 1) and counts("reentry.fill-7d") == (0, 1)
    assert counts("moud.transitions") == (1, 1)  # Suboxone sent into residential, buprenorphine received
    assert counts("handoffs.loop-closed", "Harbor Residential") == (1, 1)  # it asks acceptance only: met day 5.2
    assert counts("handoffs.loop-closed", "Eastside Clinic") == (1, 1)  # accepted and first visit kept
    assert report.result("handoffs.accepted-hours", "Eastside Clinic").value == 12.0
    assert report.result("handoffs.first-visit-days", "Eastside Clinic").value == 2.0
    assert report.result("stays.median-days", "jail-detox-to-outpatient/residential").value == 15.0
