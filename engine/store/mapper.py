"""Rows <-> the pure episode state: load an :class:`EpisodeState`, save an :class:`Outcome`.

Loading takes only what the semantics need (open work, pending rungs, open handoffs, the person's consents, this
visit's medication lists, its reconciliation findings and the alerts it has raised). Saving writes every change
of one outcome in the caller's transaction and returns the timer changes for the orchestration layer
(:class:`Changes`): runs to cancel for rungs that closed, and the count of rungs opened (they are scheduled from
the store, so a crash between commit and scheduling loses nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from engine import store
from engine.clock import utc
from engine.episode.domain.handoff import HandoffState
from engine.episode.domain.reconcile import Medication
from engine.episode.state import Authorization, EpisodeState, Event, Handoff, Outcome, Rung, WorkItem
from engine.language.moments import OCCURRED_AT, parse_moment
from engine.store import (
    AuthorizationRecord,
    DisclosureRecord,
    EpisodeRecord,
    HandoffRecord,
    InboundEventRecord,
    RungRecord,
    StageVisitRecord,
    WorkItemRecord,
)
from engine.store.queries.episodes import EPISODE_ID

__all__ = ["Changes", "handoff_state", "load_state", "save_outcome"]


@dataclass
class Changes:
    """What one service call changed, for scheduling and for the operator's view."""

    episode_id: str
    pathway_id: str
    #: where the episode is after the change (its stage and status as committed)
    stage: str
    status: str = "active"
    opened_rungs: int = 0
    cancel_runs: list[str] = field(default_factory=list)
    #: Runs of deadlines whose work was done in time: operators see them end ``Met``, not ``Cancelled``.
    met_runs: list[str] = field(default_factory=list)
    escalations: list[tuple[str, str]] = field(default_factory=list)
    #: The severity of each escalation raised here, by rung id (what a run's state and tags say).
    severities: dict[str, str] = field(default_factory=dict)
    moved: tuple[str, str] | None = None
    duplicate: bool = False


def _item(i: WorkItemRecord, rungs: list[Rung]) -> WorkItem:
    return WorkItem(
        id=i.id,
        kind=i.kind,
        key=i.key,
        title=i.title,
        owner=i.owner,
        opened_at=utc(i.opened_at),
        due_at=utc(i.due_at),
        done_on=i.done_on,
        match=dict(i.match or {}),
        visit=i.visit,
        occurrence=i.occurrence,
        handoff_id=i.handoff_id,
        consent_purpose=i.consent_purpose,
        severity=i.severity,
        note=i.note,
        rungs=sorted(rungs, key=lambda r: r.index),
    )


def _handoff(h: HandoffRecord) -> Handoff:
    from datetime import timedelta

    return Handoff(
        id=h.id,
        transition_index=h.transition_index,
        program=h.program,
        role=h.role,
        mode=h.mode,
        consent_purpose=h.consent_purpose,
        visit=h.visit,
        status=h.status,
        business_status=h.business_status,
        status_reason=h.status_reason,
        consent_id=h.consent_id,
        appointment_at=utc(h.appointment_at) if h.appointment_at else None,
        steps_met=list(h.steps_met or []),
        outcome=h.outcome,
        re_engage_within=timedelta(seconds=h.re_engage_within_s) if h.re_engage_within_s is not None else None,
        fallback=h.fallback,
        opened_at=utc(h.opened_at),
    )


def handoff_state(h: HandoffRecord) -> HandoffState:
    """A handoff row as the standards' rules see it: what views need to show its label and the moves legal now."""
    return HandoffState.model_validate(
        {
            "id": h.id,
            "status": h.status,
            "business_status": h.business_status,
            "status_reason": h.status_reason,
            "held_from": h.held_from,
            "steps_met": tuple(h.steps_met or ()),
            "opened_at": h.opened_at,
            "updated_at": h.updated_at or h.opened_at,
        }
    )


def load_state(session: Session, episode: EpisodeRecord) -> EpisodeState:
    """The pure state of ``episode`` as stored now."""
    by_item: dict[str, list[Rung]] = {}
    for r in store.pending_rungs(session, episode.id):
        by_item.setdefault(r.work_item_id, []).append(
            Rung(id=r.id, index=r.index, due_at=utc(r.due_at), role=r.role, status="pending")
        )
    lists = store.medication_lists(session, episode.id, episode.visit)
    found = [d.to_domain() for d in store.discrepancies_for(session, episode.id, episode.visit)]
    return EpisodeState(
        id=episode.id,
        stage=episode.stage,
        status=episode.status,
        facts=dict(episode.facts or {}),
        visit=episode.visit,
        stage_entered_at=utc(episode.stage_entered_at),
        items=[_item(i, by_item.get(i.id, [])) for i in store.open_work_items(session, episode.id)],
        handoffs=[_handoff(h) for h in store.open_handoffs(session, episode.id)],
        person=episode.person_ref,
        consents=[c.to_domain() for c in store.consents_for(session, episode.person_ref)],
        medication_lists={side: [Medication.model_validate(m) for m in row.medications] for side, row in lists.items()},
        discrepancies={episode.visit: found},
        raised_alerts=store.raised_alert_ids(session, episode.id, episode.visit),
        authorizations=_authorizations(session, episode.id),
        event_times=_event_times(session, episode.id),
    )


# built once, as the store's hot reads are (see engine.store.queries.episodes): every event loads them
_APPLIED_EVENTS = select(InboundEventRecord.name, InboundEventRecord.data, InboundEventRecord.processed_at).where(
    InboundEventRecord.episode_id == EPISODE_ID, InboundEventRecord.status == "applied"
)
_OPEN_AUTHORIZATIONS = (
    select(AuthorizationRecord)
    .where(AuthorizationRecord.episode_id == EPISODE_ID, col(AuthorizationRecord.closed_at).is_(None))
    .order_by(col(AuthorizationRecord.requested_at), col(AuthorizationRecord.id))
)


def _event_times(session: Session, episode_id: str) -> dict[str, datetime]:
    """When each applied event last happened (its ``occurred_at``, else when applied): no column of its own, so
    deadlines' ``from`` and time guards read the same inbound events the audit trail shows."""
    times: dict[str, datetime] = {}
    for name, data, processed_at in session.exec(_APPLIED_EVENTS, params={"episode_id": episode_id}):
        at = parse_moment((data or {}).get(OCCURRED_AT)) or (utc(processed_at) if processed_at else None)
        if at is not None and (name not in times or at > times[name]):
            times[name] = at
    return times


def _authorizations(session: Session, episode_id: str) -> list[Authorization]:
    """The episode's authorizations still followed (not closed)."""
    rows = session.exec(_OPEN_AUTHORIZATIONS, params={"episode_id": episode_id})
    return [
        Authorization.model_validate(
            {**r.model_dump(exclude={"episode_id", "work_item_id"}), "item_id": r.work_item_id}
        )
        for r in rows
    ]


def _save_authorizations(session: Session, episode_id: str, outcome: Outcome) -> None:
    """Insert or update each authorization the outcome opened or changed (the last version of each wins)."""
    for auth in {a.id: a for a in outcome.authorizations}.values():
        fields = {**auth.model_dump(exclude={"item_id"}), "work_item_id": auth.item_id}
        row = session.get(AuthorizationRecord, auth.id)
        if row is None:
            session.add(AuthorizationRecord(episode_id=episode_id, **fields))
            continue
        for name, value in fields.items():
            setattr(row, name, value)
        session.add(row)


def _handoff_fields(h: Handoff) -> dict[str, Any]:
    return {
        "status": h.status,
        "business_status": h.business_status,
        "status_reason": h.status_reason,
        "consent_id": h.consent_id,
        "appointment_at": h.appointment_at,
        "steps_met": list(h.steps_met),
        "outcome": h.outcome,
        "closed_at": h.closed_at,
    }


def save_outcome(
    session: Session,
    episode: EpisodeRecord,
    outcome: Outcome,
    now: datetime,
    actor: str,
    event: Event | None,
    claimed_at: datetime | None = None,
) -> Changes:
    """Write everything ``outcome`` changed, in the caller's transaction.

    Escalations raised here are claimed for delivery at ``claimed_at`` (wall time) by the caller, which must then
    deliver them (:func:`engine.app.follow_up`); the run that would have fired a rung fired here is cancelled.
    """
    state = outcome.state
    changes = Changes(episode.id, episode.pathway_id, state.stage, state.status, moved=outcome.moved)
    if outcome.moved or not episode.stage:
        _visit(session, episode, state.stage, now, event, outcome.short_stay)
    episode.stage, episode.status, episode.facts = state.stage, state.status, dict(state.facts)
    episode.visit, episode.stage_entered_at = state.visit, state.stage_entered_at
    episode.updated_at, episode.revision = now, episode.revision + 1
    session.add(episode)
    for h in outcome.handoffs_opened:
        session.add(
            HandoffRecord(
                id=h.id,
                episode_id=episode.id,
                transition_index=h.transition_index,
                program=h.program,
                role=h.role,
                mode=h.mode,
                consent_purpose=h.consent_purpose,
                visit=h.visit,
                opened_at=h.opened_at,
                re_engage_within_s=h.re_engage_within.total_seconds() if h.re_engage_within else None,
                fallback=h.fallback,
                **_handoff_fields(h),
            )
        )
    session.flush()
    for h in outcome.handoffs_changed:
        handoff_row = session.get(HandoffRecord, h.id)
        if handoff_row is not None:
            for name, value in _handoff_fields(h).items():
                setattr(handoff_row, name, value)
            session.add(handoff_row)
    _save_authorizations(session, episode.id, outcome)
    for item in outcome.opened:
        session.add(WorkItemRecord(episode_id=episode.id, **item.model_dump(exclude={"rungs", "closed_by"})))
        for r in item.rungs:
            session.add(
                RungRecord(
                    id=r.id, work_item_id=item.id, episode_id=episode.id, index=r.index, due_at=r.due_at, role=r.role
                )
            )
            changes.opened_rungs += 1
    session.flush()
    for item in outcome.closed:
        row = session.get(WorkItemRecord, item.id)
        if row is None:
            continue
        row.status, row.closed_at, row.closed_by = item.status, now, item.closed_by
        session.add(row)
        met = store.work_met(item.status, item.closed_by)
        for rung in store.cancel_pending_rungs(session, item.id):
            if rung.flow_run_id:
                (changes.met_runs if met else changes.cancel_runs).append(rung.flow_run_id)
    severity = {i.id: i.severity for i in [*outcome.state.items, *outcome.closed]}
    for esc in outcome.escalations:
        fired = session.get(RungRecord, esc.rung_id)
        if fired is None:
            continue
        level = severity.get(esc.item_id, "normal")
        if store.record_escalation_once(session, fired, now, severity=level, claimed_at=claimed_at) is not None:
            changes.escalations.append((esc.rung_id, esc.role))
            changes.severities[esc.rung_id] = level
            if fired.flow_run_id:
                changes.cancel_runs.append(fired.flow_run_id)
    for d in outcome.disclosures:
        what = f"handoff {d.id.split('/disclosure/')[0]}"
        store.record_disclosure(session, DisclosureRecord.from_domain(d, episode.id, what))
    event_id = event.id if event else None
    for side, meds in outcome.medication_lists.items():
        store.save_medication_list(session, episode.id, state.visit, side, meds, now, event_id)
    if outcome.compared:  # the visit's whole set, even an empty one: what it no longer holds is resolved
        found = [d.model_dump() for d in outcome.discrepancies]
        for rid in store.save_discrepancies(session, episode.id, state.visit, found):  # ones the state did not hold
            detail = {"visit": state.visit, "key": rid.rsplit("/", 1)[-1]}
            store.audit(session, episode.id, now, actor, "discrepancy.resolved", detail)
    for action, detail in outcome.audit:
        store.audit(session, episode.id, now, actor, action, detail)
    return changes


def _visit(
    session: Session,
    episode: EpisodeRecord,
    stage: str,
    now: datetime,
    event: Event | None,
    short_of: timedelta | None = None,
) -> None:
    """Close the open stage visit (flagged when it fell ``short_of`` its expected minimum) and open the new one."""
    if episode.stage:
        for open_visit in session.exec(
            select(StageVisitRecord).where(
                StageVisitRecord.episode_id == episode.id, col(StageVisitRecord.left_at).is_(None)
            )
        ):
            open_visit.left_at = now
            open_visit.short_of_min_s = short_of.total_seconds() if short_of is not None else None
            session.add(open_visit)
    session.add(
        StageVisitRecord(
            episode_id=episode.id, stage=stage, entered_at=now, entered_by_event=event.id if event else None
        )
    )
