"""A whole cohort's episode histories (:class:`~engine.episode.history.EpisodeHistory`) read from the store.

The quality measures read only these histories, and the pure rules build the same ones
(:class:`~engine.episode.history.HistoryRecorder`), so this module says how each part of a history is kept in the
rows. It reads the cohort in one query per table (never one per episode), joined on the episodes chosen:

- a stay is a stage visit row; its visit number is its ordinal in the episode; the event that entered it is
  stored by id and named from the audit trail's ``event`` rows;
- an event is an applied inbound event (its payload), in the order the audit trail applied it, at its
  ``occurred_at`` when given, else when it was applied;
- a handoff step was met when the receiver's move that meets it was applied (the audit rows ``handoff.move``);
- an escalation's rung index is its rung id's ``#r<n>`` suffix; its item's key, kind and severity come with it;
- a medication list is the visit's side as last recorded (a newer list replaces the older in the store).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, select

from engine.clock import utc
from engine.episode.history import (
    EpisodeHistory,
    Finding,
    HandoffTrack,
    Happening,
    MedList,
    Raised,
    Stay,
    rung_index,
)
from engine.language.builtins import STEPS_BY_MOVE
from engine.language.moments import OCCURRED_AT, parse_moment
from engine.store.records import (
    AuditRecord,
    DiscrepancyRecord,
    EpisodeRecord,
    EscalationRecord,
    HandoffRecord,
    InboundEventRecord,
    MedicationListRecord,
    StageVisitRecord,
    WorkItemRecord,
)

__all__ = ["load_histories"]

#: The audit actions this module reads: events applied (their order and ids) and handoff moves (step times).
_AUDITED = ("event", "handoff.move")


def _chosen(episode_column: Any, pathway: str | None) -> list[ColumnElement[bool]]:
    """The condition limiting rows to the episodes of ``pathway`` (a subquery, so 10,000 ids never travel as
    parameters); none without one."""
    if pathway is None:
        return []
    return [col(episode_column).in_(select(EpisodeRecord.id).where(EpisodeRecord.pathway_id == pathway))]


def _when(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


def load_histories(session: Session, *, pathway: str | None = None) -> list[EpisodeHistory]:
    """Every episode's history (of ``pathway``, when given), in order of enrollment (ties: episode id)."""
    episodes = list(
        session.exec(
            select(EpisodeRecord)
            .where(*_chosen(EpisodeRecord.id, pathway))
            .order_by(col(EpisodeRecord.enrolled_at), col(EpisodeRecord.id))
        )
    )
    audit = _audit(session, pathway)
    events, names = _events(session, pathway, audit)
    stays = _stays(session, pathway, names)
    steps = _step_times(audit)
    handoffs = _handoffs(session, pathway, steps)
    raised = _escalations(session, pathway)
    findings = _findings(session, pathway)
    lists = _medication_lists(session, pathway)
    return [
        EpisodeHistory(
            id=e.id,
            pathway_id=e.pathway_id,
            pathway_version=e.pathway_version,
            enrolled_at=utc(e.enrolled_at),
            status=e.status,
            facts=dict(e.facts or {}),
            stays=tuple(stays[e.id]),
            events=tuple(sorted(events[e.id], key=lambda h: h.at)),  # stable: ties keep the order applied
            handoffs=tuple(sorted(handoffs[e.id], key=lambda h: (h.opened_at, h.id))),
            escalations=tuple(sorted(raised[e.id], key=lambda r: (r.raised_at, r.rung_id))),
            findings=tuple(sorted(findings[e.id], key=lambda f: (f.visit, f.key))),
            medication_lists=tuple(lists[e.id]),
        )
        for e in episodes
    ]


def _audit(session: Session, pathway: str | None) -> list[AuditRecord]:
    query = select(AuditRecord).where(col(AuditRecord.action).in_(_AUDITED))
    return list(session.exec(query.where(*_chosen(AuditRecord.episode_id, pathway)).order_by(col(AuditRecord.id))))


def _events(
    session: Session, pathway: str | None, audit: Iterable[AuditRecord]
) -> tuple[dict[str, list[Happening]], dict[tuple[str, str], str]]:
    """The applied events of each episode in the order applied, and each event's name by (episode, event id)."""
    query = select(InboundEventRecord).where(InboundEventRecord.status == "applied")
    inbound = {
        (row.episode_id, row.event_id or row.id): row
        for row in session.exec(query.where(*_chosen(InboundEventRecord.episode_id, pathway)))
    }
    out: dict[str, list[Happening]] = defaultdict(list)
    names: dict[tuple[str, str], str] = {}
    for row in audit:
        if row.action != "event" or row.episode_id is None:
            continue
        detail = row.detail or {}
        key = (row.episode_id, str(detail.get("event_id")))
        names[key] = str(detail.get("event"))
        found = inbound.get(key)
        data = dict(found.data or {}) if found is not None else {}
        at = parse_moment(data.get(OCCURRED_AT)) or utc(row.at)
        out[row.episode_id].append(Happening(names[key], at, data))
    return out, names


def _stays(session: Session, pathway: str | None, names: dict[tuple[str, str], str]) -> dict[str, list[Stay]]:
    query = select(StageVisitRecord).where(*_chosen(StageVisitRecord.episode_id, pathway))
    out: dict[str, list[Stay]] = defaultdict(list)
    for row in session.exec(query.order_by(col(StageVisitRecord.episode_id), col(StageVisitRecord.id))):
        mine = out[row.episode_id]
        by = names.get((row.episode_id, row.entered_by_event)) if row.entered_by_event else None
        mine.append(Stay(row.stage, len(mine) + 1, utc(row.entered_at), _when(row.left_at), by))
    return out


def _step_times(audit: Iterable[AuditRecord]) -> dict[str, dict[str, datetime]]:
    """When each handoff's steps were met: the first move of the kind that meets each (by handoff id)."""
    out: dict[str, dict[str, datetime]] = defaultdict(dict)
    for row in audit:
        detail = row.detail or {}
        step = STEPS_BY_MOVE.get(str(detail.get("action"))) if row.action == "handoff.move" else None
        if step is not None:
            out[str(detail.get("handoff"))].setdefault(step.kind, utc(row.at))
    return out


def _handoffs(
    session: Session, pathway: str | None, steps: dict[str, dict[str, datetime]]
) -> dict[str, list[HandoffTrack]]:
    out: dict[str, list[HandoffTrack]] = defaultdict(list)
    for h in session.exec(select(HandoffRecord).where(*_chosen(HandoffRecord.episode_id, pathway))):
        met = steps.get(h.id, {})
        out[h.episode_id].append(
            HandoffTrack(
                id=h.id,
                program=h.program,
                role=h.role,
                visit=h.visit,
                opened_at=utc(h.opened_at),
                status=h.status,
                business_status=h.business_status,
                steps={kind: met[kind] for kind in h.steps_met or [] if kind in met},
                closed_at=_when(h.closed_at),
                outcome=h.outcome,
            )
        )
    return out


def _escalations(session: Session, pathway: str | None) -> dict[str, list[Raised]]:
    query = select(EscalationRecord, WorkItemRecord).join(
        WorkItemRecord, col(WorkItemRecord.id) == col(EscalationRecord.work_item_id)
    )
    out: dict[str, list[Raised]] = defaultdict(list)
    for esc, item in session.exec(query.where(*_chosen(EscalationRecord.episode_id, pathway))):
        out[esc.episode_id].append(
            Raised(
                rung_id=esc.rung_id,
                item_key=item.key,
                item_kind=item.kind,
                rung=rung_index(esc.rung_id),
                role=esc.role,
                severity=item.severity,
                raised_at=utc(esc.raised_at),
                acknowledged_at=_when(esc.acknowledged_at),
            )
        )
    return out


def _findings(session: Session, pathway: str | None) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = defaultdict(list)
    for d in session.exec(select(DiscrepancyRecord).where(*_chosen(DiscrepancyRecord.episode_id, pathway))):
        out[d.episode_id].append(Finding(d.visit, d.key, d.kind, d.critical, d.status))
    return out


def _medication_lists(session: Session, pathway: str | None) -> dict[str, list[MedList]]:
    query = select(MedicationListRecord).where(*_chosen(MedicationListRecord.episode_id, pathway))
    out: dict[str, list[MedList]] = defaultdict(list)
    order = query.order_by(col(MedicationListRecord.recorded_at), col(MedicationListRecord.id))
    for m in session.exec(order):
        names = tuple(str(med.get("name", "")) for med in m.medications or [])
        out[m.episode_id].append(MedList(m.visit, m.side, utc(m.recorded_at), names))
    return out
