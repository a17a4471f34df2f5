"""What the network face reads: handoffs (one by id with its open deadlines, a receiving program's list) and the
rest of an episode's record that FHIR shows (its stage visits and every medication list).

A receiving program sees a handoff only once it was sent (a ``draft`` waits for consent: nothing about it has
been disclosed yet), which is why the program's list leaves drafts out.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from engine.store.records import (
    HandoffRecord,
    InboundEventRecord,
    MedicationListRecord,
    StageVisitRecord,
    WorkItemRecord,
)

__all__ = [
    "all_medication_lists",
    "handoff_deadlines",
    "handoffs_of_program",
    "inbound_events",
    "list_handoffs",
    "stage_visits",
]


def handoff_deadlines(session: Session, handoff_ids: Sequence[str]) -> dict[str, list[WorkItemRecord]]:
    """The open deadlines of each handoff (its steps), soonest first."""
    if not handoff_ids:
        return {}
    query = (
        select(WorkItemRecord)
        .where(col(WorkItemRecord.handoff_id).in_(list(handoff_ids)), WorkItemRecord.status == "open")
        .order_by(col(WorkItemRecord.due_at), col(WorkItemRecord.id))
    )
    out: dict[str, list[WorkItemRecord]] = {h: [] for h in handoff_ids}
    for item in session.exec(query):
        out[str(item.handoff_id)].append(item)
    return out


def handoffs_of_program(
    session: Session, program: str, statuses: Sequence[str] = (), limit: int = 500
) -> list[HandoffRecord]:
    """The handoffs addressed to ``program`` that were sent (not drafts), newest first; ``statuses`` filters."""
    query = select(HandoffRecord).where(HandoffRecord.program == program, HandoffRecord.status != "draft")
    if statuses:
        query = query.where(col(HandoffRecord.status).in_(list(statuses)))
    query = query.order_by(col(HandoffRecord.opened_at).desc(), col(HandoffRecord.id)).limit(limit)
    return list(session.exec(query))


def list_handoffs(
    session: Session, *, episode_id: str | None = None, statuses: Sequence[str] = (), limit: int = 500
) -> list[HandoffRecord]:
    """Every handoff (a coordinator's view), newest first; filtered by episode and status when given."""
    query = select(HandoffRecord)
    if episode_id is not None:
        query = query.where(HandoffRecord.episode_id == episode_id)
    if statuses:
        query = query.where(col(HandoffRecord.status).in_(list(statuses)))
    query = query.order_by(col(HandoffRecord.opened_at).desc(), col(HandoffRecord.id)).limit(limit)
    return list(session.exec(query))


def stage_visits(session: Session, episode_id: str) -> list[StageVisitRecord]:
    """The episode's stays in its stages, oldest first."""
    query = select(StageVisitRecord).where(StageVisitRecord.episode_id == episode_id)
    return list(session.exec(query.order_by(col(StageVisitRecord.id))))


def all_medication_lists(session: Session, episode_id: str) -> list[MedicationListRecord]:
    """Every medication list recorded for the episode (each visit's sending and receiving list), oldest first."""
    query = select(MedicationListRecord).where(MedicationListRecord.episode_id == episode_id)
    return list(session.exec(query.order_by(col(MedicationListRecord.id))))


def inbound_events(session: Session, episode_id: str, limit: int = 500) -> list[InboundEventRecord]:
    """The episode's events as received (applied, refused or waiting), the latest ``limit``, oldest first."""
    query = select(InboundEventRecord).where(InboundEventRecord.episode_id == episode_id)
    rows = list(session.exec(query.order_by(col(InboundEventRecord.received_at).desc()).limit(limit)))
    return rows[::-1]
