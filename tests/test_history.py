"""One truth, two paths: a scripted cohort run through the whole service and the store (read back with
``load_histories``) gives the same episode histories as the same script run through the pure rules alone
(``HistoryRecorder``), on SQLite and PostgreSQL. The quality measures read only these histories, so measures from a
simulated cohort and from the store can agree only if this holds.

The pathway is written for this test: detox with a closed-loop handoff (steps with a ladder, a decline fallback to
IOP), a reconciliation with an MOUD critical medication, check-ins, and six synthetic people who between them meet
steps on time and late, let deadlines escalate (some acknowledged), omit MOUD and then correct the list, are
declined, send an event that is refused and record one that happened earlier (``occurred_at``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cohort_replay import (
    Acknowledge,
    Consent,
    Enroll,
    Person,
    Record,
    Script,
    from_simulation,
    normalised,
    through_rules,
    through_service,
)
from sqlmodel import Session
from store_fixtures import BACKENDS, migrated_database_url

from engine.app import App, Settings, enroll
from engine.app.inline import RecordingNotifier, inline_app
from engine.clock import ManualClock
from engine.episode.history import EpisodeHistory
from engine.language.loader import load_pathway_text
from engine.measures import compute_measures
from engine.plan.build import compile_plan
from engine.plan.model import Plan
from engine.store.queries.cohort import load_histories

PATHWAY = (Path(__file__).resolve().parent / "data" / "history-test.yaml").read_text(encoding="utf-8")

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


MEDICAID, COMMERCIAL = {"insurance": "medicaid"}, {"insurance": "commercial"}
BUP = [{"name": "buprenorphine", "dose": "16 mg", "route": "SL", "frequency": "daily"}]
OTHER = [{"name": "gabapentin", "dose": "300 mg"}]

SCRIPT = Script(
    pathway_id="history-test",
    until=h(24 * 30),
    people=(
        # on time throughout: accepted and admitted within their windows, MOUD on both lists, weekly contacts
        Person(
            "P-SIM-000001",
            (
                Enroll(h(0), MEDICAID),
                Consent(h(0.5)),
                Record(h(1), "contact.made"),
                Record(h(2), "intake.completed"),
                Record(h(3), "handoff.accepted"),
                Record(h(4), "medications.sending-list", {"medications": BUP}),
                Record(h(5), "medications.receiving-list", {"medications": BUP}),
                Record(h(10), "handoff.visit-kept"),
                Record(h(72), "detox.completed"),
                Record(h(72 + 24 * 7), "contact.made"),
                Record(h(72 + 24 * 14), "care.completed"),
            ),
        ),
        # late: screening missed (both rungs fire, the first acknowledged), acceptance late (first rung fired),
        # a refused event (detox.completed before the move), then a move with occurred_at in the past
        Person(
            "P-SIM-000002",
            (
                Enroll(h(0), COMMERCIAL),
                Consent(h(1)),
                Acknowledge(h(25), "1/s.intake.task.screen#r0"),
                Record(h(40), "contact.made"),
                Record(h(41), "detox.completed"),
                Record(h(42), "intake.completed"),
                Acknowledge(h(46.5), "2/t0.handoff.accepted#r0"),
                Record(h(47), "handoff.accepted"),
                Record(h(50), "handoff.visit-kept"),
                Record(h(120), "detox.completed", {"occurred_at": h(100).isoformat()}),
            ),
        ),
        # MOUD omitted on the receiving list (a critical alert), then the corrected list resolves it
        Person(
            "P-SIM-000003",
            (
                Enroll(h(1), MEDICAID),
                Consent(h(1)),
                Record(h(2), "contact.made"),
                Record(h(3), "intake.completed"),
                Record(h(4), "handoff.accepted"),
                Record(h(5), "medications.sending-list", {"medications": BUP + OTHER}),
                Record(h(6), "medications.receiving-list", {"medications": OTHER}),
                Record(h(9), "medications.receiving-list", {"medications": BUP + OTHER}),
                Record(h(12), "handoff.visit-kept"),
            ),
        ),
        # declined by detox: falls back to IOP, then outpatient where check-ins go missed
        Person(
            "P-SIM-000004",
            (
                Enroll(h(2), COMMERCIAL),
                Consent(h(2)),
                Record(h(3), "contact.made"),
                Record(h(4), "intake.completed"),
                Record(h(6), "handoff.move", {"action": "decline", "reason": "no bed"}),
                Record(h(48), "iop.completed"),
            ),
        ),
        # no consent: the handoff waits; nothing is sent, nothing met; the screening escalation acknowledged
        Person(
            "P-SIM-000005",
            (
                Enroll(h(3), MEDICAID),
                Acknowledge(h(30), "1/s.intake.task.screen#r0"),
                Record(h(31), "contact.made"),
                Record(h(32), "intake.completed"),
            ),
        ),
        # enrolled, nothing else: the screening ladder runs out; an acknowledgement of a rung that never fired
        Person(
            "P-SIM-000006",
            (
                Enroll(h(4), COMMERCIAL),
                Acknowledge(h(5), "1/s.intake.task.screen#r1"),
            ),
        ),
    ),
)


@pytest.fixture(scope="module")
def plan() -> Plan:
    result = load_pathway_text(PATHWAY, "history-test.yaml")
    assert result.ok and result.spec is not None, result.diagnostics
    return compile_plan(result.spec)


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    with migrated_database_url(request.param, tmp_path) as url:
        settings = Settings.from_env({"CAREPATH_HOME": str(tmp_path), "CAREPATH_DATABASE_URL": url})
        app = inline_app(settings, ManualClock(T0 - timedelta(hours=1)), notifier=RecordingNotifier({}))
        result = load_pathway_text(PATHWAY, "history-test.yaml")
        assert result.ok and result.spec is not None, result.diagnostics
        app.service.register_pathway(result.spec, PATHWAY)
        yield app
        app.close()


def test_the_store_and_the_pure_rules_give_the_same_histories(app: App, plan: Plan) -> None:
    stored, pure = through_service(app, SCRIPT), through_rules(plan, SCRIPT)
    # refused on both paths: detox.completed before the move, and an acknowledgement of a rung not yet fired
    assert sorted((p, n) for p, n, _ in stored.refused) == [("P-SIM-000002", 4), ("P-SIM-000006", 1)]
    assert sorted((p, n) for p, n, _ in stored.refused) == sorted((p, n) for p, n, _ in pure.refused), (
        stored.refused,
        pure.refused,
    )
    for person in SCRIPT.people:
        assert normalised(stored.histories[person.ref]) == normalised(pure.histories[person.ref]), person.ref
    # and so the measures agree, cell by cell (no suppression: six people)
    plans = {(plan.pathway_id, plan.version): plan}
    by_store, by_rules = (
        compute_measures(list(r.histories.values()), plans, as_of=SCRIPT.until, min_cell=1) for r in (stored, pure)
    )
    assert by_store.results == by_rules.results
    assert by_store.result("handoffs.accepted-hours", "Detox unit").denominator == 3  # people 1, 2 and 3


def test_a_simulated_cohort_replays_through_the_store_to_the_same_histories(app: App, plan: Plan) -> None:
    """The simulator's own histories equal those of its script replayed through the service and the store."""
    simulate = pytest.importorskip("engine.simulate")
    result = simulate.simulate(plan, simulate.default_model(plan), 12, 21, 7, T0)
    replayed = through_service(app, from_simulation(result.script, result.end))
    assert replayed.refused == []
    for person, simulated in zip(result.script, result.histories, strict=True):
        assert normalised(replayed.histories[person.person]) == normalised(simulated), person.person
    plans = {(plan.pathway_id, plan.version): plan}
    assert (
        compute_measures(list(replayed.histories.values()), plans, as_of=result.end, min_cell=1).results
        == compute_measures(result.histories, plans, as_of=result.end, min_cell=1).results
    )


def test_a_pathway_s_histories_leave_other_pathways_out(app: App) -> None:
    other = PATHWAY.replace("id: history-test", "id: other-test")
    result = load_pathway_text(other, "other-test.yaml")
    assert result.ok and result.spec is not None, result.diagnostics
    app.service.register_pathway(result.spec, other)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    mine = []
    for n in range(2):  # in order of enrollment
        mine.append(enroll(app, "history-test", f"P-SIM-00001{n}"))
        clock.advance(timedelta(hours=1))
    theirs = enroll(app, "other-test", "P-SIM-000020")
    with Session(app.engine) as session:
        assert [x.id for x in load_histories(session, pathway="history-test")] == mine
        assert [x.id for x in load_histories(session, pathway="other-test")] == [theirs]
        assert {x.id for x in load_histories(session)} == {*mine, theirs}
        assert load_histories(session, pathway="no-such-pathway") == []


def raised(history: EpisodeHistory) -> list[tuple[str, int, datetime, datetime | None]]:
    return [(r.item_key, r.rung, r.raised_at, r.acknowledged_at) for r in history.escalations]


def test_the_histories_say_what_happened(plan: Plan) -> None:
    """What the script did, worked out by hand, is what the history holds (checked on the pure path; the test
    above shows the store says the same)."""
    got = through_rules(plan, SCRIPT).histories
    on_time, late, moud, declined, unconsented, idle = (got[p.ref] for p in SCRIPT.people)

    # sent at h2 (intake.completed, consent already signed), accepted at h3, admitted at h10
    assert on_time.handoffs[0].steps == {"accepted": h(3), "visit-kept": h(10)}
    assert [(s.stage, s.visit, s.entered_by) for s in on_time.stays] == [
        ("intake", 1, None),
        ("detox", 2, "intake.completed"),
        ("outpatient", 3, "detox.completed"),
        ("done", 4, "care.completed"),
    ]
    assert on_time.status == "completed" and on_time.facts == {"insurance": "medicaid"}

    # screening due h24: rung 0 fires then, is acknowledged at h25, so rung 1 (h36) never fires; acceptance due
    # h46 (sent h42 + 4h): rung 0 fires, acknowledged at h46.5, the supervisor's rung (h50) never fires
    assert raised(late)[:2] == [
        ("s.intake.task.screen", 0, h(24), h(25)),
        ("t0.handoff.accepted", 0, h(46), h(46.5)),
    ]
    assert late.handoffs[0].steps == {"accepted": h(47), "visit-kept": h(50)}
    # the refused detox.completed (h41) is nowhere; the one applied at h120 happened at h100
    assert [(e.name, e.at) for e in late.events if e.name == "detox.completed"] == [("detox.completed", h(100))]
    assert [(s.stage, s.entered_at, s.left_at) for s in late.stays][1:] == [
        ("detox", h(42), h(120)),
        ("outpatient", h(120), None),
    ]
    # weekly check-ins from h120, a 2-day window, none kept: one escalation per week until day 30
    weekly = [r for r in raised(late) if r[0] == "s.outpatient.checkin.0"]
    assert [r[2] for r in weekly] == [h(120 + 24 * (7 * k + 2)) for k in range(4) if 120 + 24 * (7 * k + 2) <= 720]

    # MOUD omitted on the receiving list at h6: critical alert to prescriber and supervisor at once; the corrected
    # list at h9 resolves the finding; the lists kept are the latest of each side
    assert [(r.role, r.severity, r.raised_at) for r in moud.escalations] == [
        ("prescriber", "critical", h(6)),
        ("supervisor", "critical", h(6)),
    ]
    assert [(f.key, f.critical, f.status) for f in moud.findings] == [("omission:buprenorphine", True, "resolved")]
    assert [(m.side, m.at, m.names) for m in moud.medication_lists] == [
        ("sending", h(5), ("buprenorphine", "gabapentin")),
        ("receiving", h(9), ("buprenorphine", "gabapentin")),
    ]

    # declined at h6: the fallback stage IOP, a new visit entered by the decline; the handoff closed, no step met
    assert [s.stage for s in declined.stays] == ["intake", "detox", "iop", "outpatient"]
    assert declined.stays[2].entered_by == "handoff.move" and declined.stays[2].entered_at == h(6)
    assert (declined.handoffs[0].business_status, declined.handoffs[0].steps) == ("declined", {})
    assert declined.handoffs[0].closed_at == h(6)

    # no consent: the handoff is never sent, so no step is met and no step deadline runs
    assert unconsented.handoffs[0].steps == {} and unconsented.handoffs[0].closed_at is None
    assert raised(unconsented)[0] == ("s.intake.task.screen", 0, h(3 + 24), h(30))

    # nothing done: both screening rungs fire, at h28 and h40, unacknowledged
    assert raised(idle) == [("s.intake.task.screen", 0, h(28), None), ("s.intake.task.screen", 1, h(40), None)]
