"""A whole cohort's episode histories (:class:`~engine.episode.history.EpisodeHistory`) read from the store.

The quality measures read only these histories, and the pure rules build the same ones
(:class:`~engine.episode.history.HistoryRecorder`), so this module says how each part of a history is kept in the
rows. It reads the cohort in one query per table (never one per episode), limited to the episodes chosen by a
subquery:

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
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, select
from sqlmodel import Session, col

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
    return [col(episode_column).in_(select(col(EpisodeRecord.id)).where(col(EpisodeRecord.pathway_id) == pathway))]


def _columns(*attributes: Any) -> list[Any]:
    """Model attributes as the columns to read (plain rows: no ORM objects to build)."""
    return [col(a) for a in attributes]


def _when(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


def load_histories(session: Session, *, pathway: str | None = None) -> list[EpisodeHistory]:
    """Every episode's history (of ``pathway``, when given), in order of enrollment (ties: episode id).

    Eight queries whatever the cohort's size; columns are read as plain rows (no ORM objects), which is most of
    the time saved at 10,000 episodes (bench/bench_cohort_load.py).
    """
    E = EpisodeRecord
    episodes = session.execute(
        select(*_columns(E.id, E.pathway_id, E.pathway_version, E.enrolled_at, E.status, E.facts))
        .where(*_chosen(E.id, pathway))
        .order_by(col(E.enrolled_at), col(E.id))
    ).all()
    audit = _audit(session, pathway)
    events, names = _events(session, pathway, audit)
    stays = _stays(session, pathway, names)
    handoffs = _handoffs(session, pathway, _step_times(audit))
    raised = _escalations(session, pathway)
    findings = _findings(session, pathway)
    lists = _medication_lists(session, pathway)
    return [
        EpisodeHistory(
            id=episode_id,
            pathway_id=pathway_id,
            pathway_version=version,
            enrolled_at=utc(enrolled_at),
            status=status,
            facts=dict(facts or {}),
            stays=tuple(stays[episode_id]),
            events=tuple(sorted(events[episode_id], key=lambda h: h.at)),  # stable: ties keep the order applied
            handoffs=tuple(sorted(handoffs[episode_id], key=lambda h: (h.opened_at, h.id))),
            escalations=tuple(sorted(raised[episode_id], key=lambda r: (r.raised_at, r.rung_id))),
            findings=tuple(sorted(findings[episode_id], key=lambda f: (f.visit, f.key))),
            medication_lists=tuple(lists[episode_id]),
        )
        for episode_id, pathway_id, version, enrolled_at, status, facts in episodes
    ]


class _Audited(NamedTuple):
    """An audit row as read here: an event applied (``event``, ``event_id``) or a handoff move (``handoff``,
    ``move``); the detail's fields are picked out by the database (no JSON parsed in Python)."""

    episode: str
    action: str
    at: datetime
    event: str | None
    event_id: str | None
    handoff: str | None
    move: str | None


def _audit(session: Session, pathway: str | None) -> list[_Audited]:
    A = AuditRecord
    detail = col(A.detail)
    picked = [detail[k].as_string() for k in ("event", "event_id", "handoff", "action")]
    query = (
        select(*_columns(A.episode_id, A.action, A.at), *picked)
        .where(col(A.action).in_(_AUDITED), col(A.episode_id).is_not(None), *_chosen(A.episode_id, pathway))
        .order_by(col(A.id))
    )
    return [_Audited(str(e), action, utc(at), *rest) for e, action, at, *rest in session.execute(query)]


def _events(
    session: Session, pathway: str | None, audit: Iterable[_Audited]
) -> tuple[dict[str, list[Happening]], dict[tuple[str, str], str]]:
    """The applied events of each episode in the order applied, and each event's name by (episode, event id)."""
    I = InboundEventRecord  # noqa: E741
    query = select(*_columns(I.episode_id, I.event_id, I.id, I.data)).where(
        col(I.status) == "applied", *_chosen(I.episode_id, pathway)
    )
    payloads = {
        (episode, event_id or inbound_id): data for episode, event_id, inbound_id, data in session.execute(query)
    }
    out: dict[str, list[Happening]] = defaultdict(list)
    names: dict[tuple[str, str], str] = {}
    for row in audit:
        if row.action != "event":
            continue
        key = (row.episode, str(row.event_id))
        names[key] = str(row.event)
        data = dict(payloads.get(key) or {})
        out[row.episode].append(Happening(names[key], parse_moment(data.get(OCCURRED_AT)) or row.at, data))
    return out, names


def _stays(session: Session, pathway: str | None, names: dict[tuple[str, str], str]) -> dict[str, list[Stay]]:
    V = StageVisitRecord
    query = (
        select(*_columns(V.episode_id, V.stage, V.entered_at, V.left_at, V.entered_by_event))
        .where(*_chosen(V.episode_id, pathway))
        .order_by(col(V.episode_id), col(V.id))
    )
    out: dict[str, list[Stay]] = defaultdict(list)
    for episode, stage, entered_at, left_at, by in session.execute(query):
        mine = out[episode]
        mine.append(
            Stay(stage, len(mine) + 1, utc(entered_at), _when(left_at), names.get((episode, by)) if by else None)
        )
    return out


def _step_times(audit: Iterable[_Audited]) -> dict[str, dict[str, datetime]]:
    """When each handoff's steps were met: the first move of the kind that meets each (by handoff id)."""
    out: dict[str, dict[str, datetime]] = defaultdict(dict)
    for row in audit:
        step = STEPS_BY_MOVE.get(str(row.move)) if row.action == "handoff.move" else None
        if step is not None:
            out[str(row.handoff)].setdefault(step.kind, row.at)
    return out


def _handoffs(
    session: Session, pathway: str | None, steps: dict[str, dict[str, datetime]]
) -> dict[str, list[HandoffTrack]]:
    H = HandoffRecord
    query = select(*_columns(
        H.episode_id, H.id, H.program, H.role, H.visit, H.opened_at, H.status, H.business_status, H.steps_met,
        H.closed_at, H.outcome, H.transition_index,
    )).where(*_chosen(H.episode_id, pathway))  # fmt: skip
    out: dict[str, list[HandoffTrack]] = defaultdict(list)
    for (
        episode,
        hid,
        program,
        role,
        visit,
        opened_at,
        status,
        business,
        met,
        closed_at,
        outcome,
        transition,
    ) in session.execute(query):
        when = steps.get(hid, {})
        out[episode].append(
            HandoffTrack(
                id=hid,
                program=program,
                role=role,
                visit=visit,
                opened_at=utc(opened_at),
                status=status,
                business_status=business,
                steps={kind: when[kind] for kind in met or [] if kind in when},
                closed_at=_when(closed_at),
                outcome=outcome,
                transition=int(transition),
            )
        )
    return out


def _escalations(session: Session, pathway: str | None) -> dict[str, list[Raised]]:
    X, W = EscalationRecord, WorkItemRecord
    query = (
        select(*_columns(X.episode_id, X.rung_id, W.key, W.kind, X.role, W.severity, X.raised_at, X.acknowledged_at))
        .join(W, col(W.id) == col(X.work_item_id))
        .where(*_chosen(X.episode_id, pathway))
    )
    out: dict[str, list[Raised]] = defaultdict(list)
    for episode, rung_id, key, kind, role, severity, raised_at, acknowledged_at in session.execute(query):
        out[episode].append(
            Raised(rung_id, key, kind, rung_index(rung_id), role, severity, utc(raised_at), _when(acknowledged_at))
        )
    return out


def _findings(session: Session, pathway: str | None) -> dict[str, list[Finding]]:
    D = DiscrepancyRecord
    query = select(*_columns(D.episode_id, D.visit, D.key, D.kind, D.critical, D.status)).where(
        *_chosen(D.episode_id, pathway)
    )
    out: dict[str, list[Finding]] = defaultdict(list)
    for episode, visit, key, kind, critical, status in session.execute(query):
        out[episode].append(Finding(visit, key, kind, bool(critical), status))
    return out


def _medication_lists(session: Session, pathway: str | None) -> dict[str, list[MedList]]:
    M = MedicationListRecord
    query = (
        select(*_columns(M.episode_id, M.visit, M.side, M.recorded_at, M.medications))
        .where(*_chosen(M.episode_id, pathway))
        .order_by(col(M.recorded_at), col(M.id))
    )
    out: dict[str, list[MedList]] = defaultdict(list)
    for episode, visit, side, at, meds in session.execute(query):
        out[episode].append(MedList(visit, side, utc(at), tuple(str(m.get("name", "")) for m in meds or [])))
    return out
