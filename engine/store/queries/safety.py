"""The safety core's rows: consents and disclosures (42 CFR Part 2), medication lists and discrepancies,
escalation deliveries.

Each is an upsert on its natural key with a rule for what a later write may not undo; disclosures are append-only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import bindparam, case, func, update
from sqlmodel import Session, col, select

from engine.episode.domain.reconcile import KINDS, Medication
from engine.errors import EventRejected, NotFound, StoreError, quote
from engine.store.db import dialect_insert
from engine.store.queries.episodes import EPISODE_ID, VISIT
from engine.store.records import (
    ConsentRecord,
    DeliveryRecord,
    DisclosureRecord,
    DiscrepancyRecord,
    MedicationListRecord,
)

__all__ = [
    "INTENTIONAL",
    "RESOLVED",
    "add_consent",
    "consents_for",
    "deliveries_for",
    "disclosures_for",
    "discrepancies_for",
    "mark_discrepancy_intentional",
    "medication_lists",
    "record_delivery",
    "record_disclosure",
    "revoke_consent",
    "save_discrepancies",
    "save_medication_list",
]


# ----------------------------------------------------------------------------------- consent (42 CFR Part 2)


# built once (see engine.store.queries.episodes): every event reads them
_CONSENTS = (
    select(ConsentRecord)
    .where(ConsentRecord.person_ref == bindparam("person_ref"))
    .order_by(col(ConsentRecord.recorded_at), col(ConsentRecord.id))
)
_LISTS = select(MedicationListRecord).where(
    MedicationListRecord.episode_id == EPISODE_ID, MedicationListRecord.visit == VISIT
)
_VISIT_DISCREPANCIES = select(DiscrepancyRecord).where(
    DiscrepancyRecord.episode_id == EPISODE_ID, DiscrepancyRecord.visit == VISIT
)


def consents_for(session: Session, person_ref: str) -> list[ConsentRecord]:
    """Every consent a person signed, revoked and expired ones included (the domain decides what covers), oldest
    recorded first."""
    return list(session.exec(_CONSENTS, params={"person_ref": person_ref}))


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
        raise NotFound(f"no consent {quote(consent_id)}")
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
        dialect_insert(session, DisclosureRecord)
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
    statement = dialect_insert(session, MedicationListRecord).values(
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
    return {row.side: row for row in session.exec(_LISTS, params={"episode_id": episode_id, "visit": visit})}


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
        statement = dialect_insert(session, DiscrepancyRecord).values(list(rows.values()))
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
    if visit is None:
        rows = session.exec(select(DiscrepancyRecord).where(DiscrepancyRecord.episode_id == episode_id))
    else:
        rows = session.exec(_VISIT_DISCREPANCIES, params={"episode_id": episode_id, "visit": visit})
    order = {kind: n for n, kind in enumerate(KINDS)}
    return sorted(
        rows,
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
        raise NotFound(f"no discrepancy {quote(discrepancy_id)}")
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
    statement = dialect_insert(session, DeliveryRecord).values(
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
