"""What the coordinators' worklist reads: every active episode that needs someone now (overdue open work, an
unacknowledged escalation, or an unintentional critical medication discrepancy of its current stay), with what a
row shows and what its rank depends on. A fixed number of queries whatever the caseload's size.

Only reads; the ranking is :mod:`engine.app.triage` (pure), the page :mod:`engine.web`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from engine.store.records import (
    DeliveryRecord,
    DiscrepancyRecord,
    EpisodeRecord,
    EscalationRecord,
    HandoffRecord,
    InboundEventRecord,
    StageVisitRecord,
    WorkItemRecord,
)

__all__ = ["UNINTENTIONAL", "WorklistFacts", "worklist_facts"]

#: A discrepancy nobody has explained yet (the only kind that is an error).
UNINTENTIONAL = "unintentional"


@dataclass
class WorklistFacts:
    """One episode needing someone: its open work and escalations, its stays, its applied events (names and when),
    its open critical findings and open handoffs."""

    episode: EpisodeRecord
    open_work: list[WorkItemRecord] = field(default_factory=list)
    escalations: list[EscalationRecord] = field(default_factory=list)
    escalated_work: dict[str, WorkItemRecord] = field(default_factory=dict)
    deliveries: dict[str, list[DeliveryRecord]] = field(default_factory=dict)
    visits: list[StageVisitRecord] = field(default_factory=list)
    events: list[tuple[str, datetime]] = field(default_factory=list)
    critical_findings: list[DiscrepancyRecord] = field(default_factory=list)
    handoffs: list[HandoffRecord] = field(default_factory=list)


def _needing(s: Session, now: datetime) -> list[EpisodeRecord]:
    overdue = select(WorkItemRecord.episode_id).where(WorkItemRecord.status == "open", WorkItemRecord.due_at <= now)
    unacked = select(EscalationRecord.episode_id).where(col(EscalationRecord.acknowledged_at).is_(None))
    critical = select(DiscrepancyRecord.episode_id).where(
        col(DiscrepancyRecord.critical).is_(True), DiscrepancyRecord.status == UNINTENTIONAL
    )
    ids = {*s.exec(overdue), *s.exec(unacked), *s.exec(critical)}
    if not ids:
        return []
    query = select(EpisodeRecord).where(col(EpisodeRecord.id).in_(ids), EpisodeRecord.status == "active")
    return list(s.exec(query.order_by(col(EpisodeRecord.enrolled_at), col(EpisodeRecord.id))))


def worklist_facts(engine: Engine, now: datetime) -> list[WorklistFacts]:
    """The facts of every active episode with overdue work, an open escalation or an open critical finding."""
    with Session(engine) as s:
        episodes = _needing(s, now)
        facts = {e.id: WorklistFacts(e) for e in episodes}
        ids = list(facts)
        if not ids:
            return []
        for w in s.exec(
            select(WorkItemRecord)
            .where(col(WorkItemRecord.episode_id).in_(ids), WorkItemRecord.status == "open")
            .order_by(col(WorkItemRecord.due_at))
        ):
            facts[w.episode_id].open_work.append(w)
        escalations = list(
            s.exec(
                select(EscalationRecord)
                .where(col(EscalationRecord.episode_id).in_(ids), col(EscalationRecord.acknowledged_at).is_(None))
                .order_by(col(EscalationRecord.raised_at), col(EscalationRecord.id))
            )
        )
        work_ids = {e.work_item_id for e in escalations}
        work = {w.id: w for w in s.exec(select(WorkItemRecord).where(col(WorkItemRecord.id).in_(work_ids)))}
        deliveries: dict[str, list[DeliveryRecord]] = defaultdict(list)
        rung_ids = [e.rung_id for e in escalations]
        for d in s.exec(select(DeliveryRecord).where(col(DeliveryRecord.rung_id).in_(rung_ids))):
            deliveries[d.rung_id].append(d)
        for e in escalations:
            f = facts[e.episode_id]
            f.escalations.append(e)
            if e.work_item_id in work:
                f.escalated_work[e.work_item_id] = work[e.work_item_id]
            f.deliveries[e.rung_id] = deliveries.get(e.rung_id, [])
        for v in s.exec(
            select(StageVisitRecord).where(col(StageVisitRecord.episode_id).in_(ids)).order_by(col(StageVisitRecord.id))
        ):
            facts[v.episode_id].visits.append(v)
        for episode_id, name, at in s.exec(
            select(InboundEventRecord.episode_id, InboundEventRecord.name, InboundEventRecord.received_at).where(
                col(InboundEventRecord.episode_id).in_(ids), InboundEventRecord.status == "applied"
            )
        ):
            facts[episode_id].events.append((name, at))
        for finding in s.exec(
            select(DiscrepancyRecord).where(
                col(DiscrepancyRecord.episode_id).in_(ids),
                col(DiscrepancyRecord.critical).is_(True),
                DiscrepancyRecord.status == UNINTENTIONAL,
            )
        ):
            if finding.visit == facts[finding.episode_id].episode.visit:
                facts[finding.episode_id].critical_findings.append(finding)
        for h in s.exec(
            select(HandoffRecord)
            .where(col(HandoffRecord.episode_id).in_(ids), col(HandoffRecord.closed_at).is_(None))
            .order_by(col(HandoffRecord.opened_at))
        ):
            facts[h.episode_id].handoffs.append(h)
        return list(facts.values())
