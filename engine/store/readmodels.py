"""What the read models need from the store, each in a few queries: an episode's whole status, the open
escalations with their work and deliveries, the caseload, a visit's medication findings with when they resolved.

Formatting (for the CLI and for Prefect) lives in :mod:`engine.app.views`; this module only reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine, Integer, bindparam, func
from sqlmodel import Session, col, select

from engine.clock import utc
from engine.errors import UnknownEpisode, quote
from engine.store.queries import RESOLVED, discrepancies_for, get_episode, list_episodes
from engine.store.queries.episodes import EPISODE_ID
from engine.store.records import (
    AuditRecord,
    DeliveryRecord,
    DiscrepancyRecord,
    EpisodeRecord,
    EscalationRecord,
    HandoffRecord,
    RungRecord,
    StageVisitRecord,
    WorkItemRecord,
)

__all__ = [
    "CaseloadEntry",
    "EpisodeStatus",
    "ProgramCounts",
    "caseload_entries",
    "episode_status",
    "findings_with_resolution",
    "open_escalations",
    "program_counts",
]

_Row = TypeVar("_Row")


@dataclass
class EpisodeStatus:
    """Everything a coordinator needs about one episode."""

    episode: EpisodeRecord
    items: list[WorkItemRecord]
    rungs: dict[str, list[RungRecord]]
    handoffs: list[HandoffRecord]
    escalations: list[EscalationRecord]
    audit: list[AuditRecord]
    #: stays shorter than their stage's expected minimum (flagged on leaving), oldest first
    short_stays: list[StageVisitRecord] = field(default_factory=list)
    #: the work each escalation is about (open or closed), by work item id
    escalated_work: dict[str, WorkItemRecord] = field(default_factory=dict)
    #: every contact's delivery outcome, by rung id
    deliveries: dict[str, list[DeliveryRecord]] = field(default_factory=dict)

    def overdue(self, now: datetime) -> list[WorkItemRecord]:
        return [i for i in self.items if utc(i.due_at) <= now]


# Built once, with bind parameters (see engine.store.queries.episodes): every follow-up publishes the episode.
_STATUS_ITEMS = (
    select(WorkItemRecord)
    .where(WorkItemRecord.episode_id == EPISODE_ID, WorkItemRecord.status == "open")
    .order_by(col(WorkItemRecord.due_at))
)
_STATUS_RUNGS = select(RungRecord).where(RungRecord.episode_id == EPISODE_ID).order_by(col(RungRecord.index))
_STATUS_HANDOFFS = select(HandoffRecord).where(HandoffRecord.episode_id == EPISODE_ID)
_STATUS_ESCALATIONS = (
    select(EscalationRecord).where(EscalationRecord.episode_id == EPISODE_ID).order_by(col(EscalationRecord.raised_at))
)
_STATUS_AUDIT = (
    select(AuditRecord)
    .where(AuditRecord.episode_id == EPISODE_ID)
    .order_by(col(AuditRecord.id).desc())
    .limit(bindparam("tail", type_=Integer))
)
_STATUS_SHORT_STAYS = (
    select(StageVisitRecord)
    .where(StageVisitRecord.episode_id == EPISODE_ID, col(StageVisitRecord.short_of_min_s).is_not(None))
    .order_by(col(StageVisitRecord.id))
)
_STATUS_ESCALATED_WORK = select(WorkItemRecord).where(col(WorkItemRecord.id).in_(bindparam("ids", expanding=True)))
_STATUS_DELIVERIES = (
    select(DeliveryRecord).where(DeliveryRecord.episode_id == EPISODE_ID).order_by(col(DeliveryRecord.key))
)


def episode_status(engine: Engine, episode_id: str, audit_tail: int = 10) -> EpisodeStatus:
    """Load one episode's open work, handoffs, escalations (with their work and deliveries) and its audit tail."""
    with Session(engine) as s:
        episode = s.get(EpisodeRecord, episode_id)
        if episode is None:
            raise UnknownEpisode(f"no episode {quote(episode_id)}")
        mine = {"episode_id": episode_id}
        items = list(s.exec(_STATUS_ITEMS, params=mine))
        rungs = _grouped(s.exec(_STATUS_RUNGS, params=mine), lambda r: r.work_item_id)
        handoffs = list(s.exec(_STATUS_HANDOFFS, params=mine))
        escalations = list(s.exec(_STATUS_ESCALATIONS, params=mine))
        audit = list(s.exec(_STATUS_AUDIT, params={**mine, "tail": audit_tail}))
        short_stays = list(s.exec(_STATUS_SHORT_STAYS, params=mine))
        escalated = sorted({e.work_item_id for e in escalations})
        work = {w.id: w for w in s.exec(_STATUS_ESCALATED_WORK, params={"ids": escalated})} if escalated else {}
        deliveries = _grouped(s.exec(_STATUS_DELIVERIES, params=mine), lambda d: d.rung_id)
        return EpisodeStatus(
            episode,
            items,
            rungs,
            handoffs,
            escalations,
            list(reversed(audit)),
            short_stays=short_stays,
            escalated_work=work,
            deliveries=deliveries,
        )


def _grouped(rows: Iterable[_Row], key: Callable[[_Row], str]) -> dict[str, list[_Row]]:
    """Rows by ``key``, each group in the rows' order."""
    out: dict[str, list[_Row]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(row)
    return out


def open_escalations(
    engine: Engine, limit: int = 200
) -> list[tuple[EscalationRecord, WorkItemRecord, list[DeliveryRecord]]]:
    """Unacknowledged escalations, newest first, each with its work and its deliveries (two queries)."""
    with Session(engine) as s:
        rows = s.exec(
            select(EscalationRecord, WorkItemRecord)
            .join(WorkItemRecord, col(WorkItemRecord.id) == col(EscalationRecord.work_item_id))
            .where(col(EscalationRecord.acknowledged_at).is_(None))
            .order_by(col(EscalationRecord.raised_at).desc())
            .limit(limit)
        ).all()
        rung_ids = [e.rung_id for e, _w in rows]
        query = (
            select(DeliveryRecord).where(col(DeliveryRecord.rung_id).in_(rung_ids)).order_by(col(DeliveryRecord.key))
        )
        deliveries = _grouped(s.exec(query), lambda d: d.rung_id)
        return [(e, w, deliveries.get(e.rung_id, [])) for e, w in rows]


@dataclass(frozen=True)
class CaseloadEntry:
    """One episode of the caseload with its next open work and counts."""

    episode: EpisodeRecord
    next_work: WorkItemRecord | None
    overdue: int
    open_escalations: int


def caseload_entries(
    engine: Engine, now: datetime, *, pathway: str | None = None, stage: str | None = None, overdue: bool = False
) -> list[CaseloadEntry]:
    """Every episode (oldest enrolment first), filterable, in three queries whatever the caseload's size."""
    with Session(engine) as s:
        episodes = list_episodes(s, pathway=pathway, stage=stage, overdue_at=now if overdue else None)
        ids = [e.id for e in episodes]
        open_work: dict[str, list[WorkItemRecord]] = {}
        if ids:
            for item in s.exec(
                select(WorkItemRecord)
                .where(col(WorkItemRecord.episode_id).in_(ids), WorkItemRecord.status == "open")
                .order_by(col(WorkItemRecord.due_at))
            ):
                open_work.setdefault(item.episode_id, []).append(item)
        counts = dict(
            s.exec(
                select(EscalationRecord.episode_id, func.count())
                .where(col(EscalationRecord.episode_id).in_(ids), col(EscalationRecord.acknowledged_at).is_(None))
                .group_by(col(EscalationRecord.episode_id))
            ).all()
        )
    return [
        CaseloadEntry(
            episode=e,
            next_work=next(iter(open_work.get(e.id, [])), None),
            overdue=sum(utc(i.due_at) <= now for i in open_work.get(e.id, [])),
            open_escalations=int(counts.get(e.id, 0)),
        )
        for e in episodes
    ]


def findings_with_resolution(engine: Engine, episode_id: str) -> list[tuple[DiscrepancyRecord, datetime | None]]:
    """The current stage visit's medication findings, each with when it resolved (the audit trail's
    ``discrepancy.resolved``), current findings first."""
    with Session(engine) as s:
        episode = get_episode(s, episode_id)
        found = discrepancies_for(s, episode_id, episode.visit)
        resolved_at: dict[str, datetime] = {}
        if any(d.status == RESOLVED for d in found):
            query = select(AuditRecord).where(
                AuditRecord.episode_id == episode_id, AuditRecord.action == "discrepancy.resolved"
            )
            for a in s.exec(query.order_by(col(AuditRecord.id))):
                if (a.detail or {}).get("visit") == episode.visit:
                    resolved_at[str((a.detail or {}).get("key"))] = a.at
        ordered = sorted(found, key=lambda d: d.status == RESOLVED)
        return [(d, resolved_at.get(d.key) if d.status == RESOLVED else None) for d in ordered]


@dataclass(frozen=True)
class ProgramCounts:
    """The program at a glance: active episodes, open work past due (of active episodes), unacknowledged
    escalations and the critical ones among them, handoff loops closed (completed) since ``since``."""

    active: int
    overdue: int
    escalated: int
    critical: int
    loops_closed: int


def program_counts(engine: Engine, now: datetime, since: datetime) -> ProgramCounts:
    """:class:`ProgramCounts` in one statement (scalar subqueries over indexed columns)."""
    count = func.count()
    active = select(count).select_from(EpisodeRecord).where(col(EpisodeRecord.status) == "active")
    overdue = (
        select(count)
        .select_from(WorkItemRecord)
        .join(EpisodeRecord, col(EpisodeRecord.id) == col(WorkItemRecord.episode_id))
        .where(col(WorkItemRecord.status) == "open", col(WorkItemRecord.due_at) <= now)
        .where(col(EpisodeRecord.status) == "active")
    )
    unacknowledged = col(EscalationRecord.acknowledged_at).is_(None)
    escalated = select(count).select_from(EscalationRecord).where(unacknowledged)
    critical = escalated.where(col(EscalationRecord.severity) == "critical")
    closed = (
        select(count)
        .select_from(HandoffRecord)
        .where(col(HandoffRecord.status) == "completed", col(HandoffRecord.closed_at) >= since)
    )
    query = select(*(q.scalar_subquery() for q in (active, overdue, escalated, critical, closed)))
    with Session(engine) as s:
        row = s.exec(query).one()
    return ProgramCounts(*(int(v or 0) for v in row))
