"""Repository functions: the reads and idempotent writes the service, the flows and the CLI need.

Each takes the caller's :class:`~sqlmodel.Session` (one transaction, see :func:`engine.store.session_scope`) and
never reads a clock: the caller passes ``now``. "Exactly once" is the database's job, not the caller's:
:func:`record_escalation_once` and :func:`mark_event_processed` are ``INSERT ... ON CONFLICT DO NOTHING`` on a
unique key, so any number of concurrent runs, retries and sweeps produce one row. The safety core's writes are
upserts on their natural keys too (a medication list per visit and side, a discrepancy, a delivery per contact),
each with a rule for what a later write may not undo; disclosures are append-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, case, exists, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from engine.episode.domain.reconcile import KINDS, Medication
from engine.errors import EventRejected, StoreError, UnknownEpisode, quote
from engine.store.db import WRITE_OPTION, session_scope
from engine.store.records import (
    AuditRecord,
    ConsentRecord,
    DeliveryRecord,
    DisclosureRecord,
    DiscrepancyRecord,
    EpisodeRecord,
    EscalationRecord,
    HandoffRecord,
    InboundEventRecord,
    MedicationListRecord,
    PathwayVersionRecord,
    ProcessedEventRecord,
    RungRecord,
    SettingRecord,
    WorkItemRecord,
)

__all__ = [
    "INTENTIONAL",
    "RESOLVED",
    "EscalationNotice",
    "TimerRow",
    "acknowledge_escalation",
    "add_consent",
    "audit",
    "audit_tail",
    "cancel_pending_rungs",
    "claim_delivery",
    "consents_for",
    "deliveries_for",
    "disclosures_for",
    "discrepancies_for",
    "due_pending_rungs",
    "episodes_with_due_rungs",
    "escalation_notices",
    "escalations_to_deliver",
    "finish_delivery",
    "get_episode",
    "get_setting",
    "latest_pathway_version",
    "list_episodes",
    "lock_episode",
    "mark_discrepancy_intentional",
    "mark_event_processed",
    "medication_lists",
    "open_handoffs",
    "open_work_items",
    "pending_rungs",
    "processed_event",
    "put_setting",
    "raised_alert_ids",
    "record_delivery",
    "record_disclosure",
    "record_escalation_once",
    "registered_pathway_ids",
    "revoke_consent",
    "rung_run",
    "save_discrepancies",
    "save_medication_list",
    "set_rung_run",
    "set_rung_runs",
    "stuck_inbound_events",
    "unscheduled_timers",
]


def _insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing``/``on_conflict_do_update``."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"Carepath's store supports SQLite and PostgreSQL, not {name}")


# ------------------------------------------------------------------------------------------------ episodes


def get_episode(session: Session, episode_id: str) -> EpisodeRecord:
    """The episode, or :class:`~engine.errors.UnknownEpisode`."""
    episode = session.get(EpisodeRecord, episode_id)
    if episode is None:
        raise UnknownEpisode(f"no episode {quote(episode_id)}")
    return episode


def lock_episode(session: Session, episode_id: str) -> EpisodeRecord:
    """The episode, fresh from the database and locked against other writers until this transaction ends.

    PostgreSQL locks the row (``FOR UPDATE``); on SQLite the write scope's ``BEGIN IMMEDIATE`` already holds the
    database's write lock. Only a session from :func:`~engine.store.session_scope` may lock.
    """
    if session.connection().get_execution_options().get(WRITE_OPTION) is None:
        raise StoreError("lock_episode needs a write session: use engine.store.session_scope(engine)")
    query = (
        select(EpisodeRecord)
        .where(EpisodeRecord.id == episode_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    episode = session.exec(query).first()
    if episode is None:
        raise UnknownEpisode(f"no episode {quote(episode_id)}")
    return episode


def list_episodes(
    session: Session,
    *,
    pathway: str | None = None,
    stage: str | None = None,
    status: str | None = None,
    person_ref: str | None = None,
    overdue_at: datetime | None = None,
    limit: int | None = None,
) -> list[EpisodeRecord]:
    """Episodes for a caseload table, oldest enrolment first; ``overdue_at`` keeps those with open work due by then."""
    query = select(EpisodeRecord)
    if pathway is not None:
        query = query.where(EpisodeRecord.pathway_id == pathway)
    if stage is not None:
        query = query.where(EpisodeRecord.stage == stage)
    if status is not None:
        query = query.where(EpisodeRecord.status == status)
    if person_ref is not None:
        query = query.where(EpisodeRecord.person_ref == person_ref)
    if overdue_at is not None:
        late = exists().where(
            col(WorkItemRecord.episode_id) == col(EpisodeRecord.id),
            col(WorkItemRecord.status) == "open",
            col(WorkItemRecord.due_at) <= overdue_at,
        )
        query = query.where(late)
    query = query.order_by(col(EpisodeRecord.enrolled_at), col(EpisodeRecord.id))
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def latest_pathway_version(session: Session, pathway_id: str) -> PathwayVersionRecord | None:
    """The newest registered version of a pathway (new episodes enroll on it), or None."""
    query = (
        select(PathwayVersionRecord)
        .where(PathwayVersionRecord.pathway_id == pathway_id)
        .order_by(col(PathwayVersionRecord.version).desc())
    )
    return session.exec(query).first()


def registered_pathway_ids(session: Session) -> list[str]:
    """Every pathway id with a registered version, sorted."""
    return sorted(set(session.exec(select(PathwayVersionRecord.pathway_id))))


def open_work_items(session: Session, episode_id: str) -> list[WorkItemRecord]:
    """The episode's open work, soonest deadline first."""
    query = (
        select(WorkItemRecord)
        .where(WorkItemRecord.episode_id == episode_id, WorkItemRecord.status == "open")
        .order_by(col(WorkItemRecord.due_at), col(WorkItemRecord.id))
    )
    return list(session.exec(query))


def raised_alert_ids(session: Session, episode_id: str, visit: int) -> set[str]:
    """Ids of the alert items a stage visit has raised, open or closed (an alert is raised once)."""
    query = select(WorkItemRecord.id).where(
        WorkItemRecord.episode_id == episode_id, WorkItemRecord.visit == visit, WorkItemRecord.kind == "alert"
    )
    return set(session.exec(query))


def open_handoffs(session: Session, episode_id: str) -> list[HandoffRecord]:
    """The episode's handoffs not yet closed, oldest first."""
    query = (
        select(HandoffRecord)
        .where(HandoffRecord.episode_id == episode_id, col(HandoffRecord.closed_at).is_(None))
        .order_by(col(HandoffRecord.opened_at), col(HandoffRecord.id))
    )
    return list(session.exec(query))


# -------------------------------------------------------------------------------------------------- rungs


def pending_rungs(session: Session, episode_id: str) -> list[RungRecord]:
    """The episode's pending rungs, soonest first."""
    query = (
        select(RungRecord)
        .where(RungRecord.episode_id == episode_id, RungRecord.status == "pending")
        .order_by(col(RungRecord.due_at), col(RungRecord.id))
    )
    return list(session.exec(query))


def set_rung_run(session: Session, rung_id: str, flow_run_id: str, now: datetime) -> bool:
    """Remember the Prefect run that will fire a pending rung; False if it already has one or is not pending."""
    result = session.execute(
        update(RungRecord)
        .where(
            col(RungRecord.id) == rung_id, col(RungRecord.status) == "pending", col(RungRecord.flow_run_id).is_(None)
        )
        .values(flow_run_id=flow_run_id, scheduled_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel_pending_rungs(session: Session, work_item_id: str) -> list[RungRecord]:
    """Cancel a work item's pending rungs (its deadline was met or dropped); returns them, for their run ids."""
    rungs = list(
        session.exec(
            select(RungRecord)
            .where(RungRecord.work_item_id == work_item_id, RungRecord.status == "pending")
            .order_by(col(RungRecord.index))
        )
    )
    for rung in rungs:
        rung.status = "cancelled"
        session.add(rung)
    return rungs


# ------------------------------------------------------------------------------------- exactly-once writes


def record_escalation_once(
    session: Session, rung: RungRecord, now: datetime, *, severity: str = "normal", claimed_at: datetime | None = None
) -> EscalationRecord | None:
    """Raise the rung's escalation and mark the rung fired; None if this rung had already escalated.

    ``claimed_at`` (wall time) records that the caller will deliver it now; the sweep delivers unclaimed ones.
    """
    statement = (
        _insert(session, EscalationRecord)
        .values(
            rung_id=rung.id,
            episode_id=rung.episode_id,
            work_item_id=rung.work_item_id,
            role=rung.role,
            raised_at=now,
            severity=severity,
            delivery_claimed_at=claimed_at,
        )
        .on_conflict_do_nothing(index_elements=["rung_id"])
        .returning(col(EscalationRecord.id))
    )
    new_id = session.execute(statement).scalar_one_or_none()
    if rung.status != "fired":
        rung.status = "fired"
        session.add(rung)
    session.flush()
    return None if new_id is None else session.get(EscalationRecord, new_id)


def acknowledge_escalation(session: Session, escalation_id: int, by: str, now: datetime) -> bool:
    """Mark an escalation acknowledged by ``by``; False if unknown or already acknowledged."""
    escalation = session.get(EscalationRecord, escalation_id)
    if escalation is None or escalation.acknowledged_at is not None:
        return False
    escalation.acknowledged_at, escalation.acknowledged_by = now, by
    session.add(escalation)
    return True


def mark_event_processed(
    session: Session,
    event_id: str,
    episode_id: str,
    name: str,
    now: datetime,
    outcome: str = "applied",
    detail: str | None = None,
    digest: str | None = None,
) -> bool:
    """Claim ``event_id`` on ``episode_id`` for this transaction; False if that episode processed it before (then
    apply nothing). Ids are per episode: another episode may use the same id."""
    statement = (
        _insert(session, ProcessedEventRecord)
        .values(
            event_id=event_id,
            episode_id=episode_id,
            name=name,
            received_at=now,
            outcome=outcome,
            detail=detail,
            digest=digest,
        )
        .on_conflict_do_nothing(index_elements=["episode_id", "event_id"])
        .returning(col(ProcessedEventRecord.event_id))
    )
    return session.execute(statement).scalar_one_or_none() is not None


def processed_event(session: Session, episode_id: str, event_id: str) -> ProcessedEventRecord | None:
    """The record of an event id an episode already processed, if any."""
    return session.get(ProcessedEventRecord, (episode_id, event_id), populate_existing=True)


# ------------------------------------------------------------------------------------------ audit, settings


def audit(
    session: Session,
    episode_id: str | None,
    at: datetime,
    actor: str,
    action: str,
    detail: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditRecord:
    """Append one line to the audit trail (who, what, when, why). There is no update or delete."""
    record = AuditRecord(episode_id=episode_id, at=at, actor=actor, action=action, detail=detail, reason=reason)
    session.add(record)
    return record


def audit_tail(session: Session, episode_id: str | None, limit: int = 10) -> list[AuditRecord]:
    """The last ``limit`` audit lines of an episode (or of the whole store when None), oldest first."""
    query = select(AuditRecord)
    if episode_id is not None:
        query = query.where(AuditRecord.episode_id == episode_id)
    rows = list(session.exec(query.order_by(col(AuditRecord.id).desc()).limit(limit)))
    return rows[::-1]


def get_setting(db: Engine | Session, key: str, default: Any = None) -> Any:
    """A shared setting's JSON value, or ``default``."""
    if isinstance(db, Engine):
        with Session(db) as session:
            return get_setting(session, key, default)
    row = db.get(SettingRecord, key, populate_existing=True)
    return default if row is None else row.value


def put_setting(db: Engine | Session, key: str, value: Any) -> None:
    """Set a shared setting (insert or replace)."""
    if isinstance(db, Engine):
        with session_scope(db) as session:
            put_setting(session, key, value)
        return
    statement = _insert(db, SettingRecord).values(key=key, value=value)
    db.execute(statement.on_conflict_do_update(index_elements=["key"], set_={"value": statement.excluded.value}))


# ----------------------------------------------------------------------------------- consent (42 CFR Part 2)


def consents_for(session: Session, person_ref: str) -> list[ConsentRecord]:
    """Every consent a person signed, revoked and expired ones included (the domain decides what covers), oldest
    recorded first."""
    query = (
        select(ConsentRecord)
        .where(ConsentRecord.person_ref == person_ref)
        .order_by(col(ConsentRecord.recorded_at), col(ConsentRecord.id))
    )
    return list(session.exec(query))


def add_consent(session: Session, record: ConsentRecord) -> ConsentRecord:
    """Record a signed consent; :class:`~engine.errors.EventRejected` if its id is taken (a consent is never
    replaced: a changed consent is a new one, and the old one is revoked)."""
    if session.get(ConsentRecord, record.id) is not None:
        raise EventRejected(f"consent {record.id} is already recorded; a changed consent needs a new id")
    session.add(record)
    session.flush()
    return record


def revoke_consent(session: Session, consent_id: str, at: datetime, written: bool) -> ConsentRecord:
    """Revoke a consent at ``at``. Refused (:class:`~engine.errors.EventRejected`, nothing changed) when the
    consent is unknown, the revocation is not in writing (Part 2 requires it) or it was revoked already.

    The row is locked first (PostgreSQL), so two concurrent revocations cannot both succeed.
    """
    query = (
        select(ConsentRecord)
        .where(ConsentRecord.id == consent_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    record = session.exec(query).first()
    if record is None:
        raise EventRejected(f"no consent {quote(consent_id)}")
    if not written:
        raise EventRejected(
            f"consent {consent_id}: a revocation must be in writing (42 CFR Part 2); record the written revocation"
        )
    if record.revoked_at is not None:
        raise EventRejected(f"consent {consent_id} was already revoked on {record.revoked_at.isoformat()}")
    record.revoked_at, record.revoked_in_writing = at, True
    session.add(record)
    session.flush()
    return record


def record_disclosure(session: Session, record: DisclosureRecord) -> bool:
    """Append a disclosure made to the accounting; False (and nothing written) if its id was recorded before, so
    a retried step records a disclosure once. There is no update or delete."""
    values = {name: getattr(record, name) for name in DisclosureRecord.model_fields}
    statement = (
        _insert(session, DisclosureRecord)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(col(DisclosureRecord.id))
    )
    return session.execute(statement).scalar_one_or_none() is not None


def disclosures_for(
    session: Session, episode_id: str | None = None, person_ref: str | None = None, since: datetime | None = None
) -> list[DisclosureRecord]:
    """Disclosures of an episode and/or a person (all when neither is given) made at or after ``since``, oldest
    first. For the section 2.25 accounting pass ``since`` = three years before now."""
    query = select(DisclosureRecord)
    if episode_id is not None:
        query = query.where(DisclosureRecord.episode_id == episode_id)
    if person_ref is not None:
        query = query.where(DisclosureRecord.person_ref == person_ref)
    if since is not None:
        query = query.where(col(DisclosureRecord.at) >= since)
    return list(session.exec(query.order_by(col(DisclosureRecord.at), col(DisclosureRecord.id))))


# ------------------------------------------------------------------------------- medication reconciliation

#: The status a clinician's mark gives a discrepancy (the domain's value,
#: :class:`engine.episode.domain.reconcile.Discrepancy`).
INTENTIONAL = "intentional-documented"
#: The status of a finding a later comparison no longer finds (kept as history)
RESOLVED = "resolved"
_SIDES = ("sending", "receiving")


def _medication(item: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    data = item.model_dump() if isinstance(item, BaseModel) else dict(item)
    return Medication.model_validate(data).model_dump()


def save_medication_list(
    session: Session,
    episode_id: str,
    visit: int,
    side: str,
    medications: Iterable[Mapping[str, Any] | BaseModel],
    now: datetime,
    event_id: str | None,
) -> MedicationListRecord:
    """Store a setting's list for a visit, replacing that side's older list; returns the list now stored.

    Each entry is checked as a :class:`~engine.episode.domain.reconcile.Medication` (a name is required) and stored with
    all its fields. A list recorded *before* the stored one (an event delivered late) does not replace it.
    """
    if side not in _SIDES:
        raise StoreError(f"side must be 'sending' or 'receiving', got {side!r}")
    meds = [_medication(m) for m in medications]
    statement = _insert(session, MedicationListRecord).values(
        episode_id=episode_id, visit=visit, side=side, medications=meds, recorded_at=now, event_id=event_id
    )
    statement = statement.on_conflict_do_update(
        index_elements=["episode_id", "visit", "side"],
        set_={
            "medications": statement.excluded.medications,
            "recorded_at": statement.excluded.recorded_at,
            "event_id": statement.excluded.event_id,
        },
        where=col(MedicationListRecord.recorded_at) <= statement.excluded.recorded_at,
    )
    session.execute(statement)
    stored = session.exec(
        select(MedicationListRecord)
        .where(
            MedicationListRecord.episode_id == episode_id,
            MedicationListRecord.visit == visit,
            MedicationListRecord.side == side,
        )
        .execution_options(populate_existing=True)
    ).one()
    return stored


def medication_lists(session: Session, episode_id: str, visit: int) -> dict[str, MedicationListRecord]:
    """The stored lists of a visit by side (``sending``, ``receiving``); a side not received yet is absent."""
    query = select(MedicationListRecord).where(
        MedicationListRecord.episode_id == episode_id, MedicationListRecord.visit == visit
    )
    return {row.side: row for row in session.exec(query)}


_FINDING = ("kind", "medication", "detail", "critical", "medication_class")
_MARK = ("status", "reason", "marked_by", "marked_at")


def save_discrepancies(
    session: Session, episode_id: str, visit: int, discrepancies: Iterable[Mapping[str, Any] | BaseModel]
) -> list[str]:
    """Store a visit's reconciliation result (``Discrepancy`` models or their ``model_dump()``) as its whole
    current set, even an empty one: new ones are added, known ones updated by id, and stored ones the set does not
    hold are closed as ``resolved`` (never deleted: the history shows what was wrong). Returns the ids closed that
    way; one the set itself passes as ``resolved`` is closed too.

    A clinician's mark survives a re-run: a discrepancy marked intentional stays marked (status, reason, who,
    when) while its finding is the same. If its ``detail`` changed (say the dose changed again), the mark was for
    another finding and the stored row takes the incoming status, normally ``unintentional``. A resolved row keeps
    its mark as history; found again, it takes the incoming status (a recurrence is a new finding).
    """
    rows: dict[str, dict[str, Any]] = {}
    for item in discrepancies:
        data = item.model_dump() if isinstance(item, BaseModel) else dict(item)
        rid = f"{episode_id}/{visit}/{data['key']}"
        rows[rid] = {name: data.get(name) for name in (*_FINDING, *_MARK)} | {
            "id": rid,
            "episode_id": episode_id,
            "visit": visit,
            "key": data["key"],
            "critical": bool(data.get("critical")),
            "status": data.get("status") or "unintentional",
        }
    stale = select(DiscrepancyRecord.id).where(
        DiscrepancyRecord.episode_id == episode_id,
        DiscrepancyRecord.visit == visit,
        DiscrepancyRecord.status != RESOLVED,
        col(DiscrepancyRecord.id).not_in(list(rows)),
    )
    gone = list(session.exec(stale))
    if gone:
        session.execute(
            update(DiscrepancyRecord).where(col(DiscrepancyRecord.id).in_(gone)).values(status=RESOLVED),
            execution_options={"synchronize_session": False},
        )
    if rows:
        statement = _insert(session, DiscrepancyRecord).values(list(rows.values()))
        new, old = statement.excluded, DiscrepancyRecord
        resolved = new.status == RESOLVED
        keep_mark = (col(old.status) == INTENTIONAL) & (col(old.detail) == new.detail)
        set_: dict[str, Any] = {name: new[name] for name in _FINDING}
        set_["status"] = case((resolved, new.status), (keep_mark, col(old.status)), else_=new.status)
        for name in _MARK[1:]:
            set_[name] = case((resolved | keep_mark, col(getattr(old, name))), else_=new[name])
        session.execute(statement.on_conflict_do_update(index_elements=["id"], set_=set_))
    for held in [o for o in session.identity_map.values() if isinstance(o, DiscrepancyRecord)]:
        if held.id in rows or held.id in gone:  # the statements bypassed the ORM: reload the rows held
            session.refresh(held)
    return gone


def discrepancies_for(session: Session, episode_id: str, visit: int | None = None) -> list[DiscrepancyRecord]:
    """An episode's discrepancies (of one visit, or all), in the domain's order: by visit, critical first, then
    by kind (omission first) and medication."""
    query = select(DiscrepancyRecord).where(DiscrepancyRecord.episode_id == episode_id)
    if visit is not None:
        query = query.where(DiscrepancyRecord.visit == visit)
    order = {kind: n for n, kind in enumerate(KINDS)}
    return sorted(
        session.exec(query),
        key=lambda d: (d.visit, not d.critical, order.get(d.kind, len(order)), d.medication.casefold(), d.key),
    )


def mark_discrepancy_intentional(
    session: Session, discrepancy_id: str, reason: str, by: str, at: datetime
) -> DiscrepancyRecord:
    """A clinician (``by``, an opaque id) documents a discrepancy as intentional, with a reason.

    Refused (:class:`~engine.errors.EventRejected`, nothing changed) for an unknown id, an empty reason, no
    clinician, or a resolved discrepancy (the lists no longer differ there). Marking again replaces the reason.
    """
    if not reason or not reason.strip():
        raise EventRejected(f"discrepancy {quote(discrepancy_id)}: marking it intentional needs a reason")
    if not by or not by.strip():
        raise EventRejected(f"discrepancy {quote(discrepancy_id)}: say which clinician marks it intentional")
    record = session.get(DiscrepancyRecord, discrepancy_id, populate_existing=True)
    if record is None:
        raise EventRejected(f"no discrepancy {quote(discrepancy_id)}")
    if record.status == RESOLVED:
        raise EventRejected(f"discrepancy {quote(discrepancy_id)} is resolved: the lists no longer differ there")
    record.status, record.reason, record.marked_by, record.marked_at = INTENTIONAL, reason.strip(), by.strip(), at
    session.add(record)
    session.flush()
    return record


# ------------------------------------------------------------------------------------ escalation deliveries

_DELIVERY_STATUSES = ("delivered", "failed", "skipped", "no-contact")
_DELIVERY_REQUIRED = ("key", "rung_id", "episode_id", "role", "redacted_url", "status", "attempts")
_DELIVERY_OPTIONAL = ("contact_label", "last_error", "delivered_at")


def record_delivery(session: Session, outcome_fields: Mapping[str, Any], now: datetime) -> DeliveryRecord:
    """Store one contact's delivery outcome: ``dataclasses.asdict(outcome)`` of an
    :class:`engine.notify.delivery.DeliveryOutcome` plus the report's ``episode_id``. Upsert by ``key``.

    A later outcome for the same key never loses what happened: ``delivered`` stays delivered (a later
    ``skipped`` or ``failed`` does not undo it) with its first ``delivered_at``; ``attempts`` keeps the maximum.
    Unknown fields or a status outside ``delivered|failed|skipped|no-contact`` raise :class:`~engine.errors.StoreError`.
    """
    fields = dict(outcome_fields)
    unknown = set(fields) - {*_DELIVERY_REQUIRED, *_DELIVERY_OPTIONAL}
    missing = [name for name in _DELIVERY_REQUIRED if name not in fields]
    if unknown or missing:
        raise StoreError(f"delivery fields: unknown {sorted(unknown)}, missing {missing}")
    if fields["status"] not in _DELIVERY_STATUSES:
        raise StoreError(f"delivery status must be one of {', '.join(_DELIVERY_STATUSES)}, got {fields['status']!r}")
    statement = _insert(session, DeliveryRecord).values(
        **{name: fields.get(name) for name in (*_DELIVERY_REQUIRED, *_DELIVERY_OPTIONAL)}, updated_at=now
    )
    new, table = statement.excluded, DeliveryRecord
    was_delivered = col(table.status) == "delivered"
    set_ = {
        "role": new.role,
        "contact_label": new.contact_label,
        "redacted_url": new.redacted_url,
        "status": case((was_delivered, col(table.status)), else_=new.status),
        "attempts": case((col(table.attempts) > new.attempts, col(table.attempts)), else_=new.attempts),
        "last_error": case((was_delivered, col(table.last_error)), else_=new.last_error),
        "delivered_at": func.coalesce(col(table.delivered_at), new.delivered_at),
        "updated_at": new.updated_at,
    }
    session.execute(statement.on_conflict_do_update(index_elements=["key"], set_=set_))
    record = session.get(DeliveryRecord, fields["key"], populate_existing=True)
    assert record is not None  # just written
    return record


def deliveries_for(session: Session, episode_id: str | None = None, rung_id: str | None = None) -> list[DeliveryRecord]:
    """Delivery outcomes of an episode and/or a rung (all when neither is given), oldest update first."""
    query = select(DeliveryRecord)
    if episode_id is not None:
        query = query.where(DeliveryRecord.episode_id == episode_id)
    if rung_id is not None:
        query = query.where(DeliveryRecord.rung_id == rung_id)
    return list(session.exec(query.order_by(col(DeliveryRecord.updated_at), col(DeliveryRecord.key))))


# ---------------------------------------------------------------------------------- timers and deliveries


def due_pending_rungs(session: Session, episode_id: str, now: datetime, limit: int = 100) -> list[RungRecord]:
    """An episode's pending rungs due at or before ``now``, oldest first (fired at once by the follow-up)."""
    query = (
        select(RungRecord)
        .where(RungRecord.episode_id == episode_id, RungRecord.status == "pending", col(RungRecord.due_at) <= now)
        .order_by(col(RungRecord.due_at), col(RungRecord.index), col(RungRecord.id))
        .limit(limit)
    )
    return list(session.exec(query))


def episodes_with_due_rungs(session: Session, horizon: datetime, limit: int = 200) -> list[str]:
    """Episodes holding a pending rung due at or before ``horizon`` (their run was lost or late), most overdue
    first: the sweep's lookup, served by the index (status, due_at)."""
    # the oldest due rungs by the index, then their episodes in that order: a GROUP BY over every due rung would
    # read them all (hundreds of thousands after an outage) to return a few hundred episodes
    query = (
        select(RungRecord.episode_id)
        .where(RungRecord.status == "pending", col(RungRecord.due_at) <= horizon)
        .order_by(col(RungRecord.due_at))
        .limit(limit * 8)
    )
    return list(dict.fromkeys(session.exec(query)))[:limit]


@dataclass(frozen=True)
class TimerRow:
    """What scheduling a rung's run needs: the rung, its work's title and its episode's pathway."""

    rung_id: str
    episode_id: str
    pathway_id: str
    index: int
    role: str
    due_at: datetime
    title: str
    severity: str


def unscheduled_timers(
    session: Session, episode_id: str | None = None, limit: int = 500, *, due_before: datetime | None = None
) -> list[TimerRow]:
    """The next pending rung of each open work item that has no Prefect run yet (of one episode, or of all).

    Only the lowest pending rung of an item gets a run: the run that fires it schedules the next one. Most work is
    done before its first rung, so this halves the runs to create and to cancel. The lookup asks for exactly
    those rungs (no lower pending rung in the item), so rungs that already have runs never crowd them out.
    """
    lower = aliased(RungRecord)
    has_lower = (
        exists()
        .where(
            col(lower.work_item_id) == col(RungRecord.work_item_id),
            col(lower.status) == "pending",
            col(lower.index) < col(RungRecord.index),
        )
        .correlate(RungRecord)
    )
    query = (
        select(RungRecord, WorkItemRecord.title, WorkItemRecord.severity, EpisodeRecord.pathway_id)
        .join(WorkItemRecord, col(WorkItemRecord.id) == col(RungRecord.work_item_id))
        .join(EpisodeRecord, col(EpisodeRecord.id) == col(RungRecord.episode_id))
        .where(
            RungRecord.status == "pending",
            col(RungRecord.flow_run_id).is_(None),
            WorkItemRecord.status == "open",
            ~has_lower,
        )
    )
    if episode_id is not None:
        query = query.where(RungRecord.episode_id == episode_id)
    if due_before is not None:
        query = query.where(col(RungRecord.due_at) < due_before)
    rows = session.exec(query.order_by(col(RungRecord.due_at), col(RungRecord.id)).limit(limit))
    return [
        TimerRow(r.id, r.episode_id, pathway, r.index, r.role, r.due_at, title, severity)
        for r, title, severity, pathway in rows
    ]


def set_rung_runs(session: Session, run_ids: Mapping[str, str], now: datetime) -> int:
    """Remember the Prefect run that will fire each pending rung (so meeting the deadline can cancel it)."""
    return sum(set_rung_run(session, rung_id, run_id, now) for rung_id, run_id in run_ids.items())


def rung_run(session: Session, rung_id: str) -> tuple[str, datetime] | None:
    """A pending rung's (status, due time), or None if unknown."""
    rung = session.get(RungRecord, rung_id)
    return None if rung is None else (rung.status, rung.due_at)


@dataclass(frozen=True)
class EscalationNotice:
    """What an escalation's message and delivery need (opaque ids and the pathway's words only)."""

    escalation_id: int
    rung_id: str
    rung_index: int
    role: str
    episode_id: str
    pathway_id: str
    stage: str
    work_title: str
    due_at: datetime
    severity: str


def escalation_notices(session: Session, rung_ids: Iterable[str]) -> list[EscalationNotice]:
    """The notices of the escalations raised for these rungs, in the order given (unknown rungs are left out)."""
    ids = list(dict.fromkeys(rung_ids))
    if not ids:
        return []
    rows = session.exec(
        select(EscalationRecord, RungRecord, WorkItemRecord, EpisodeRecord)
        .join(RungRecord, col(RungRecord.id) == col(EscalationRecord.rung_id))
        .join(WorkItemRecord, col(WorkItemRecord.id) == col(EscalationRecord.work_item_id))
        .join(EpisodeRecord, col(EpisodeRecord.id) == col(EscalationRecord.episode_id))
        .where(col(EscalationRecord.rung_id).in_(ids))
    ).all()
    found = {
        e.rung_id: EscalationNotice(
            e.id or 0, r.id, r.index, e.role, ep.id, ep.pathway_id, ep.stage, w.title, w.due_at, e.severity
        )
        for e, r, w, ep in rows
    }
    return [found[i] for i in ids if i in found]


def escalations_to_deliver(session: Session, stale_before: datetime, limit: int = 200) -> list[str]:
    """Rung ids of escalations whose delivery nobody finished: never claimed, or claimed before ``stale_before``
    (wall time; the process delivering them died). Oldest first."""
    query = (
        select(EscalationRecord.rung_id)
        .where(
            col(EscalationRecord.delivery_done_at).is_(None),
            or_(
                col(EscalationRecord.delivery_claimed_at).is_(None),
                col(EscalationRecord.delivery_claimed_at) < stale_before,
            ),
        )
        .order_by(col(EscalationRecord.raised_at), col(EscalationRecord.id))
        .limit(limit)
    )
    return list(session.exec(query))


def claim_delivery(session: Session, rung_id: str, wall_now: datetime, stale_before: datetime) -> bool:
    """Take on delivering the escalation of ``rung_id``; False if it is done or another process holds a fresh claim."""
    result = session.execute(
        update(EscalationRecord)
        .where(
            col(EscalationRecord.rung_id) == rung_id,
            col(EscalationRecord.delivery_done_at).is_(None),
            or_(
                col(EscalationRecord.delivery_claimed_at).is_(None),
                col(EscalationRecord.delivery_claimed_at) < stale_before,
            ),
        )
        .values(delivery_claimed_at=wall_now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish_delivery(session: Session, rung_id: str, wall_now: datetime) -> None:
    """Every contact of the escalation of ``rung_id`` has an outcome recorded."""
    session.execute(
        update(EscalationRecord)
        .where(col(EscalationRecord.rung_id) == rung_id)
        .values(delivery_done_at=wall_now)
        .execution_options(synchronize_session=False)
    )


def stuck_inbound_events(session: Session, received_before: datetime, limit: int = 100) -> list[str]:
    """Inbound events received before ``received_before`` and never applied nor refused (their run died)."""
    query = (
        select(InboundEventRecord.id)
        .where(InboundEventRecord.status == "received", col(InboundEventRecord.received_at) < received_before)
        .order_by(col(InboundEventRecord.received_at))
        .limit(limit)
    )
    return list(session.exec(query))
