"""The safety core's store (migration 0002) on SQLite and PostgreSQL (skipped only when PostgreSQL is unreachable).

What the engine relies on: a 0001 database upgrades in place and keeps its rows; consents are revoked only in
writing and only once; the disclosure accounting keeps every disclosure and answers "since when"; a newer
medication list replaces the older one; a clinician's "intentional" mark survives a re-run of the comparison, and
what a re-run no longer finds is kept as resolved; a delivery once made is never reported as failed again.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, func, select
from store_fixtures import (
    downgrade_to,
    head_revision,
    upgrade_to,
)

from engine import store
from engine.episode.domain.consent import REDISCLOSURE_NOTICE, Consent, Disclosure, covering_consent
from engine.episode.domain.reconcile import CriticalMedication, Medication, compare
from engine.errors import EpisodeError, StoreError
from engine.notify.delivery import DeliveryOutcome
from engine.store import (
    ConsentRecord,
    DeliveryRecord,
    DisclosureRecord,
    DiscrepancyRecord,
    EpisodeRecord,
    HandoffRecord,
    MedicationListRecord,
    PathwayVersionRecord,
    WorkItemRecord,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EP, EP2, PERSON = "ep-0000b001", "ep-0000b002", "P-000123"
NEW_TABLES = {"consent", "disclosure", "medication_list", "discrepancy", "delivery"}
NEW_HANDOFF_COLUMNS = {
    "status_reason",
    "consent_id",
    "held_from",
    "appointment_at",
    "outcome",
    "steps_met",
    "re_engage_within_s",
    "fallback",
    "updated_at",
}
BUPRENORPHINE = CriticalMedication(name="buprenorphine", medication_class="MOUD", rxnorm=("1670", "351264"))


@pytest.fixture
def engine(engine: Engine) -> Engine:
    """The shared at-head database of each backend (store_fixtures), holding two episodes of one person."""
    with store.session_scope(engine) as s:
        s.add(
            PathwayVersionRecord(
                pathway_id="detox", version=1, source_text="id: detox\n", source_sha256="0" * 64, registered_at=T0
            )
        )
        for episode_id in (EP, EP2):
            s.add(
                EpisodeRecord(
                    id=episode_id,
                    person_ref=PERSON,
                    pathway_id="detox",
                    pathway_version=1,
                    stage="detox",
                    enrolled_at=T0,
                    stage_entered_at=T0,
                    updated_at=T0,
                )
            )
    return engine


def schema_diffs(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), store.metadata))


def version(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def consent(consent_id: str = "cn-0001", **changes: object) -> ConsentRecord:
    fields: dict[str, object] = {
        "id": consent_id,
        "person_ref": PERSON,
        "discloser": "detox-unit",
        "information": "diagnosis, medications, discharge summary",
        "recipients": ["residential-program"],
        "recipient_classes": ["treating-providers"],
        "purposes": ["treatment"],
        "expires": "end-of-treatment",
        "signed_on": "2026-02-27",
        "signed_by": PERSON,
        "recorded_at": T0,
    }
    return ConsentRecord.model_validate({**fields, **changes})


def disclosure(disclosure_id: str, at: datetime, episode_id: str = EP) -> DisclosureRecord:
    made = Disclosure(
        id=disclosure_id,
        patient=PERSON,
        recipient="residential-program",
        purpose="treatment",
        information="discharge summary",
        consent_id="cn-0001",
        at=at,
    )
    return DisclosureRecord.from_domain(made, episode_id, f"handoff {episode_id}/2/handoff")


# -------------------------------------------------------------------------------------------- migrations


def test_a_0001_database_upgrades_in_place_keeping_its_rows(empty_engine: Engine) -> None:
    upgrade_to(empty_engine, "0001")
    with empty_engine.begin() as conn:  # rows as 0001 wrote them (the classes already have the 0002 columns)
        conn.execute(
            text("INSERT INTO pathway_version VALUES ('detox', 1, 'id: detox', :sha, :t)"),
            {"sha": "0" * 64, "t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO episode (id, person_ref, pathway_id, pathway_version, params, stage, status, facts, visit,"
                " enrolled_at, stage_entered_at, updated_at, revision) VALUES (:ep, 'P-000123', 'detox', 1, '{}',"
                " 'detox', 'active', '{}', 2, :t, :t, :t, 4)"
            ),
            {"ep": EP, "t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO handoff (id, episode_id, transition_index, program, role, mode, consent_purpose, visit,"
                " status, business_status, opened_at) VALUES (:h, :ep, 0, 'residential-program', 'coordinator',"
                " 'warm', 'treatment', 2, 'accepted', 'accepted', :t)"
            ),
            {"h": f"{EP}/2/handoff", "ep": EP, "t": T0},
        )

    store.migrate(empty_engine)

    assert version(empty_engine) == [head_revision()]
    assert schema_diffs(empty_engine) == []
    with Session(empty_engine) as s:
        episode = s.get(EpisodeRecord, EP)
        assert episode is not None and (episode.visit, episode.revision, episode.enrolled_at) == (2, 4, T0)
        handoff = s.get(HandoffRecord, f"{EP}/2/handoff")
        assert handoff is not None
        assert (handoff.status, handoff.business_status, handoff.opened_at) == ("accepted", "accepted", T0)
        assert handoff.steps_met == []  # the new NOT NULL column got its default on the old row
        assert (handoff.consent_id, handoff.appointment_at, handoff.re_engage_within_s) == (None, None, None)


def test_upgrading_an_empty_database_builds_the_declared_schema_and_downgrade_removes_0002(
    empty_engine: Engine,
) -> None:
    store.migrate(empty_engine)
    assert version(empty_engine) == [head_revision()]
    assert set(inspect(empty_engine).get_table_names()) >= NEW_TABLES
    assert schema_diffs(empty_engine) == []
    with store.session_scope(empty_engine) as s:
        s.add(
            PathwayVersionRecord(
                pathway_id="detox", version=1, source_text="id: detox\n", source_sha256="0" * 64, registered_at=T0
            )
        )

    downgrade_to(empty_engine, "0001")

    inspector = inspect(empty_engine)
    assert not NEW_TABLES & set(inspector.get_table_names())
    assert not NEW_HANDOFF_COLUMNS & {c["name"] for c in inspector.get_columns("handoff")}
    assert version(empty_engine) == ["0001"]
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pathway_version")).scalar() == 1
    store.migrate(empty_engine)  # and back up again
    assert schema_diffs(empty_engine) == []


def test_a_handoff_keeps_its_whole_state(engine: Engine) -> None:
    appointment = T0 + timedelta(days=2, hours=5)
    with store.session_scope(engine) as s:
        s.add(
            HandoffRecord(
                id=f"{EP}/1/handoff",
                episode_id=EP,
                transition_index=0,
                program="residential-program",
                role="coordinator",
                mode="warm",
                consent_purpose="treatment",
                status="in-progress",
                business_status="event scheduled",
                status_reason="bed available Tuesday",
                consent_id="cn-0001",
                appointment_at=appointment,
                steps_met=["accepted", "scheduled"],
                re_engage_within_s=86400.0,
                fallback="choose",
                opened_at=T0,
                updated_at=T0 + timedelta(hours=1),
            )
        )
    with Session(engine) as s:
        handoff = s.get(HandoffRecord, f"{EP}/1/handoff")
        assert handoff is not None
        assert handoff.appointment_at == appointment and handoff.appointment_at.tzinfo == UTC
        assert handoff.steps_met == ["accepted", "scheduled"]
        assert (handoff.re_engage_within_s, handoff.fallback, handoff.consent_id) == (86400.0, "choose", "cn-0001")


# ------------------------------------------------------------------------------------------------ consent


def test_consents_are_recorded_once_and_revoked_only_in_writing_and_only_once(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        store.add_consent(s, consent("cn-0001"))
        store.add_consent(s, consent("cn-0002", recorded_at=T0 + timedelta(hours=1), purposes=["payment"]))
    with pytest.raises(EpisodeError, match="cn-0001 is already recorded"), store.session_scope(engine) as s:
        store.add_consent(s, consent("cn-0001", discloser="another-program"))

    with pytest.raises(EpisodeError, match="must be in writing"), store.session_scope(engine) as s:
        store.revoke_consent(s, "cn-0001", T0 + timedelta(days=1), written=False)
    with pytest.raises(EpisodeError, match="no consent 'cn-9999'"), store.session_scope(engine) as s:
        store.revoke_consent(s, "cn-9999", T0 + timedelta(days=1), written=True)
    with Session(engine) as s:
        assert [(c.id, c.revoked_at, c.discloser) for c in store.consents_for(s, PERSON)] == [
            ("cn-0001", None, "detox-unit"),
            ("cn-0002", None, "detox-unit"),
        ]

    revoked_at = T0 + timedelta(days=1)
    with store.session_scope(engine) as s:
        revoked = store.revoke_consent(s, "cn-0001", revoked_at, written=True)
        assert (revoked.revoked_at, revoked.revoked_in_writing) == (revoked_at, True)
    with pytest.raises(EpisodeError, match="already revoked"), store.session_scope(engine) as s:
        store.revoke_consent(s, "cn-0001", revoked_at + timedelta(hours=1), written=True)

    with Session(engine) as s:
        consents = store.consents_for(s, PERSON)
        assert [(c.id, c.revoked_at) for c in consents] == [("cn-0001", revoked_at), ("cn-0002", None)]
        assert store.consents_for(s, "P-999999") == []
        domain = [c.to_domain() for c in consents]
    # what the service does with them: before the revocation cn-0001 covers the handoff, after it nothing does
    assert covering_consent(domain, "residential-program", (), "treatment", T0, episode_active=True) is not None
    assert covering_consent(domain, "residential-program", (), "treatment", revoked_at, episode_active=True) is None


def test_a_domain_consent_round_trips_through_its_record(engine: Engine) -> None:
    signed = Consent(
        id="cn-0003",
        patient=PERSON,
        discloser="detox-unit",
        information="medication list",
        recipient_classes=("treating-providers",),
        purposes=("treatment", "payment"),
        expires=date(2027, 2, 28),
        signed_on=date(2026, 2, 28),
        signed_by="R-000456",
    )
    with store.session_scope(engine) as s:
        store.add_consent(s, ConsentRecord.from_domain(signed, recorded_at=T0))
    with Session(engine) as s:
        (record,) = store.consents_for(s, PERSON)
        assert (record.expires, record.signed_on, record.recipients) == ("2027-02-28", "2026-02-28", [])
        assert record.to_domain() == signed


# ------------------------------------------------------------------------------------------- disclosures


def test_the_disclosure_accounting_keeps_every_disclosure_and_answers_since_when(engine: Engine) -> None:
    now = datetime(2029, 6, 1, 12, 0, tzinfo=UTC)
    made = {
        "d-old": now - timedelta(days=3 * 365 + 30),  # outside the 3-year accounting, still kept
        "d-1": now - timedelta(days=400),
        "d-2": now - timedelta(days=2),
        "d-3": now - timedelta(days=10),
    }
    with store.session_scope(engine) as s:
        store.add_consent(s, consent())
        for disclosure_id, at in made.items():
            assert store.record_disclosure(s, disclosure(disclosure_id, at, EP2 if disclosure_id == "d-3" else EP))
    with store.session_scope(engine) as s:  # a retried step records the same disclosure once
        assert not store.record_disclosure(s, disclosure("d-1", made["d-1"]))
        store.revoke_consent(s, "cn-0001", now - timedelta(days=1), written=True)  # never reaches back

    since = now.replace(year=now.year - 3)
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(DisclosureRecord)).one() == 4
        assert [d.id for d in store.disclosures_for(s, person_ref=PERSON, since=since)] == ["d-1", "d-3", "d-2"]
        assert [d.id for d in store.disclosures_for(s, episode_id=EP, since=since)] == ["d-1", "d-2"]
        assert [d.id for d in store.disclosures_for(s, episode_id=EP)] == ["d-old", "d-1", "d-2"]
        assert [d.id for d in store.disclosures_for(s)] == ["d-old", "d-1", "d-3", "d-2"]
        assert store.disclosures_for(s, person_ref="P-999999") == []
        latest = store.disclosures_for(s, episode_id=EP)[-1]
        assert latest.notice == REDISCLOSURE_NOTICE and latest.what == f"handoff {EP}/2/handoff"
        assert latest.at == made["d-2"] and latest.to_domain().consent_id == "cn-0001"


# ----------------------------------------------------------------------------------- medication lists


def test_a_newer_list_replaces_the_older_one_for_its_side_and_a_late_older_one_does_not(engine: Engine) -> None:
    first = [Medication(name="buprenorphine-naloxone", rxnorm="351264", dose="8 mg", route="SL", frequency="daily")]
    newer = [{"name": "buprenorphine-naloxone", "dose": "12 mg", "route": "SL", "frequency": "daily"}]
    with store.session_scope(engine) as s:
        store.save_medication_list(s, EP, 1, "sending", first, T0, "evt-1")
        store.save_medication_list(s, EP, 1, "receiving", [], T0, "evt-2")
        stored = store.save_medication_list(s, EP, 1, "sending", newer, T0 + timedelta(hours=1), "evt-3")
        assert (stored.event_id, stored.medications[0]["dose"]) == ("evt-3", "12 mg")
    with store.session_scope(engine) as s:  # an event delivered late carries an older list: it loses
        stored = store.save_medication_list(s, EP, 1, "sending", first, T0 + timedelta(minutes=30), "evt-late")
        assert stored.event_id == "evt-3"
        store.save_medication_list(s, EP, 2, "sending", first, T0, "evt-4")

    with Session(engine) as s:
        lists = store.medication_lists(s, EP, 1)
        assert set(lists) == {"sending", "receiving"}
        assert lists["sending"].medications == [
            {"name": "buprenorphine-naloxone", "rxnorm": None, "dose": "12 mg", "route": "SL", "frequency": "daily"}
            | {"reason": None}
        ]
        assert (lists["sending"].event_id, lists["sending"].recorded_at) == ("evt-3", T0 + timedelta(hours=1))
        assert lists["receiving"].medications == []
        assert s.exec(select(func.count()).select_from(MedicationListRecord)).one() == 3
        assert store.medication_lists(s, EP2, 1) == {}


def test_a_medication_list_is_checked_before_it_is_stored(engine: Engine) -> None:
    with pytest.raises(StoreError, match="side must be"), store.session_scope(engine) as s:
        store.save_medication_list(s, EP, 1, "discharge", [], T0, None)
    with pytest.raises(ValidationError), store.session_scope(engine) as s:
        store.save_medication_list(s, EP, 1, "sending", [{"dose": "8 mg"}], T0, None)
    with Session(engine) as s:
        assert store.medication_lists(s, EP, 1) == {}


# ------------------------------------------------------------------------------------------ discrepancies


def test_a_clinicians_mark_survives_a_rerun_until_the_finding_changes(engine: Engine) -> None:
    sending = [
        Medication(name="buprenorphine", rxnorm="1670", dose="8 mg", route="SL", frequency="daily"),
        Medication(name="atorvastatin", dose="20 mg", route="PO", frequency="daily"),
        Medication(name="sertraline", dose="50 mg", route="PO", frequency="daily"),
    ]
    receiving = [
        Medication(name="atorvastatin", dose="40 mg", route="PO", frequency="daily"),
        Medication(name="sertraline", dose="50 mg", route="PO", frequency="daily"),
        Medication(name="trazodone", dose="50 mg", route="PO", frequency="at bedtime"),
    ]
    found = compare(sending, receiving, [BUPRENORPHINE])
    with store.session_scope(engine) as s:
        store.save_discrepancies(s, EP, 1, found)
        store.save_discrepancies(s, EP, 2, found[:1])
    with Session(engine) as s:
        rows = store.discrepancies_for(s, EP, 1)
        assert [(d.id, d.kind, d.critical, d.status) for d in rows] == [
            (f"{EP}/1/omission:buprenorphine", "omission", True, "unintentional"),
            (f"{EP}/1/dose-change:atorvastatin", "dose-change", False, "unintentional"),
            (f"{EP}/1/new-without-reason:trazodone", "new-without-reason", False, "unintentional"),
        ]
        assert [d.to_domain() for d in rows] == found
        assert [d.visit for d in store.discrepancies_for(s, EP)] == [1, 1, 1, 2]

    marked_at = T0 + timedelta(hours=2)
    with store.session_scope(engine) as s:
        statin = store.mark_discrepancy_intentional(
            s, f"{EP}/1/dose-change:atorvastatin", " dose raised on admission ", "C-000777", marked_at
        )
        assert (statin.status, statin.reason, statin.marked_by) == (
            store.INTENTIONAL,
            "dose raised on admission",
            "C-000777",
        )
        store.mark_discrepancy_intentional(s, f"{EP}/1/new-without-reason:trazodone", "sleep", "C-000777", marked_at)
    for bad in [("", "C-000777"), ("why", " ")]:
        with pytest.raises(EpisodeError, match="intentional"), store.session_scope(engine) as s:
            store.mark_discrepancy_intentional(s, f"{EP}/1/omission:buprenorphine", *bad, marked_at)
    with pytest.raises(EpisodeError, match="no discrepancy"), store.session_scope(engine) as s:
        store.mark_discrepancy_intentional(s, f"{EP}/1/omission:methadone", "why", "C-000777", marked_at)

    # the comparison runs again on the same lists, then on lists where the statin dose changed again and the
    # buprenorphine was restored
    with store.session_scope(engine) as s:
        store.save_discrepancies(s, EP, 1, [d.model_dump() for d in found])
        kept = {d.key: d for d in store.discrepancies_for(s, EP, 1)}
        assert kept["dose-change:atorvastatin"].status == store.INTENTIONAL
        assert kept["dose-change:atorvastatin"].marked_at == marked_at
        assert kept["omission:buprenorphine"].status == "unintentional"
    receiving[0] = Medication(name="atorvastatin", dose="80 mg", route="PO", frequency="daily")
    again = compare(sending, [*receiving, sending[0]], [BUPRENORPHINE])
    with store.session_scope(engine) as s:
        held = {d.key: d for d in store.discrepancies_for(s, EP, 1)}  # objects in use while the comparison re-runs
        assert store.save_discrepancies(s, EP, 1, again) == [f"{EP}/1/omission:buprenorphine"]
        assert held["dose-change:atorvastatin"].status == "unintentional"
        assert held["omission:buprenorphine"].status == store.RESOLVED
        rows = store.discrepancies_for(s, EP, 1)
        assert [(d.key, d.status, d.reason, d.marked_at) for d in rows] == [
            ("omission:buprenorphine", store.RESOLVED, None, None),  # no longer found: kept, closed
            ("dose-change:atorvastatin", "unintentional", None, None),  # a new finding: the old mark does not cover
            ("new-without-reason:trazodone", store.INTENTIONAL, "sleep", marked_at),
        ]
        assert len(store.discrepancies_for(s, EP, 2)) == 1  # another visit is untouched
    with store.session_scope(engine) as s:
        assert len(store.save_discrepancies(s, EP, 1, [])) == 2  # the lists now agree: an empty set is saved too
    with Session(engine) as s:
        rows = store.discrepancies_for(s, EP, 1)
        assert [(d.key, d.status, d.reason) for d in rows] == [
            ("omission:buprenorphine", store.RESOLVED, None),
            ("dose-change:atorvastatin", store.RESOLVED, None),
            ("new-without-reason:trazodone", store.RESOLVED, "sleep"),  # the mark stays as history
        ]
        assert [d.status for d in store.discrepancies_for(s, EP, 2)] == ["unintentional"]


def test_a_resolved_finding_keeps_its_history_and_found_again_is_a_new_finding(engine: Engine) -> None:
    sending = [Medication(name="buprenorphine", rxnorm="1670"), Medication(name="sertraline", dose="50 mg")]
    omitted = compare(sending, sending[1:], [BUPRENORPHINE])
    rid = f"{EP}/1/omission:buprenorphine"
    marked_at = T0 + timedelta(hours=1)
    with store.session_scope(engine) as s:
        store.save_discrepancies(s, EP, 1, omitted)
        store.mark_discrepancy_intentional(s, rid, "taper agreed", "C-000777", marked_at)
    # the pure layer passes what it resolves (its mark carried, no time): the stored mark and time stay
    resolved = [omitted[0].model_copy(update={"status": "resolved", "reason": "taper agreed", "marked_by": "C-000777"})]
    with store.session_scope(engine) as s:
        assert store.save_discrepancies(s, EP, 1, resolved) == [], "passed as resolved: the caller audits it"
        row = s.get(DiscrepancyRecord, rid)
        assert row is not None
        assert (row.status, row.reason, row.marked_by, row.marked_at) == (
            "resolved",
            "taper agreed",
            "C-000777",
            marked_at,
        )
    with pytest.raises(EpisodeError, match="is resolved"), store.session_scope(engine) as s:
        store.mark_discrepancy_intentional(s, rid, "why", "C-000777", marked_at)
    with store.session_scope(engine) as s:
        store.save_discrepancies(s, EP, 1, omitted)  # omitted again: unreviewed, whatever the old mark said
    with Session(engine) as s:
        [row] = store.discrepancies_for(s, EP, 1)
        assert (row.status, row.reason, row.marked_by, row.marked_at) == ("unintentional", None, None, None)


def test_the_alerts_a_visit_raised_are_known_open_or_closed(engine: Engine) -> None:
    def alert(item_id: str, visit: int, status: str, kind: str = "alert") -> WorkItemRecord:
        return WorkItemRecord(
            id=item_id,
            episode_id=EP,
            kind=kind,
            key=item_id.split("/", 2)[-1],
            title="critical: buprenorphine omitted at transition",
            due_at=T0,
            done_on="escalation.acknowledged",
            visit=visit,
            status=status,
            opened_at=T0,
        )

    with store.session_scope(engine) as s:
        s.add(alert(f"{EP}/2/alert.critical-medication.omission:buprenorphine", 2, "done"))
        s.add(alert(f"{EP}/2/alert.handoff.e1", 2, "open"))
        s.add(alert(f"{EP}/1/alert.handoff.e0", 1, "done"))
        s.add(alert(f"{EP}/2/t0.reconcile", 2, "done", kind="reconcile"))
    with Session(engine) as s:
        assert store.raised_alert_ids(s, EP, 2) == {
            f"{EP}/2/alert.critical-medication.omission:buprenorphine",
            f"{EP}/2/alert.handoff.e1",
        }
        assert store.raised_alert_ids(s, EP2, 2) == set()


# --------------------------------------------------------------------------------------------- deliveries


def outcome(key: str, status: str, attempts: int, **changes: object) -> dict[str, object]:
    fields = DeliveryOutcome(
        key=key,
        rung_id=f"{EP}/1/accept#r0",
        role="supervisor",
        contact_label="on-call",
        redacted_url="json://127.0.0.1:8080/...",
        status=status,  # type: ignore[arg-type]
        attempts=attempts,
    )
    return {**dataclasses.asdict(dataclasses.replace(fields, **changes)), "episode_id": EP}  # type: ignore[arg-type]


def test_a_delivery_once_made_stays_delivered_and_failures_stay_visible(engine: Engine) -> None:
    key, other = f"{EP}/1/accept#r0@supervisor[0]", f"{EP}/1/accept#r0@supervisor[1]"
    delivered_at = T0 + timedelta(minutes=7)
    with store.session_scope(engine) as s:
        store.record_delivery(s, outcome(key, "failed", 3, last_error="HTTP 503"), T0)
        store.record_delivery(s, outcome(other, "failed", 3, last_error="connection refused"), T0)
        assert sorted(d.key for d in store.deliveries_for(s, episode_id=EP) if d.status == "failed") == [key, other]
    with store.session_scope(engine) as s:  # the rung fires again: the first contact answers this time
        record = store.record_delivery(s, outcome(key, "delivered", 1, delivered_at=delivered_at), delivered_at)
        assert (record.status, record.attempts, record.delivered_at, record.last_error) == (
            "delivered",
            3,
            delivered_at,
            None,
        )
    with store.session_scope(engine) as s:  # and once more: now it is skipped, which must not undo "delivered"
        store.record_delivery(s, outcome(key, "skipped", 0), delivered_at + timedelta(minutes=5))
        store.record_delivery(s, outcome(key, "failed", 1, last_error="timeout"), delivered_at + timedelta(minutes=6))
        store.record_delivery(
            s,
            outcome(f"{EP}/1/accept#r0@-", "no-contact", 0, contact_label=None, redacted_url="", last_error="no one"),
            delivered_at + timedelta(minutes=7),
        )

    with Session(engine) as s:
        record = s.get(DeliveryRecord, key)
        assert record is not None
        assert (record.status, record.attempts, record.delivered_at, record.last_error) == (
            "delivered",
            3,
            delivered_at,
            None,
        )
        assert record.updated_at == delivered_at + timedelta(minutes=6)
        unreached = {(d.key, d.status) for d in store.deliveries_for(s, episode_id=EP) if d.status != "delivered"}
        assert unreached == {(f"{EP}/1/accept#r0@-", "no-contact"), (other, "failed")}, "failures stay visible"
        assert [d.key for d in store.deliveries_for(s, episode_id=EP)] == [other, key, f"{EP}/1/accept#r0@-"]
        assert len(store.deliveries_for(s, rung_id=f"{EP}/1/accept#r0")) == 3
        assert store.deliveries_for(s, episode_id=EP2) == []


def test_a_delivery_record_refuses_unknown_fields_and_statuses(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        with pytest.raises(StoreError, match="unknown \\['person'\\]"):
            store.record_delivery(s, {**outcome("k", "failed", 1), "person": "P-000123"}, T0)
        with pytest.raises(StoreError, match="missing \\['episode_id'\\]"):
            store.record_delivery(s, {k: v for k, v in outcome("k", "failed", 1).items() if k != "episode_id"}, T0)
        with pytest.raises(StoreError, match="status must be"):
            store.record_delivery(s, outcome("k", "sent", 1), T0)
        assert store.deliveries_for(s) == []
