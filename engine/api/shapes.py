"""What ``/api/v1`` answers: plain JSON of the read models, cut to what the asker may see.

The person's program id, the facts and the audit trail go to coordinators only; a receiver's view of a handoff
has no episode id (it may not look the episode up anyway).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.app.access import Principal, sees_person_ids
from engine.app.episodes import EventResult
from engine.app.network import HandoffView
from engine.app.views import EpisodeStatus, delivery_summary, escalation_title
from engine.clock import utc
from engine.episode.domain.handoff import label, legal_moves
from engine.episode.domain.handoff_terms import BSER_CODES
from engine.store import DisclosureRecord
from engine.store.mapper import handoff_state

__all__ = ["disclosure", "episode_status", "event_result", "handoff", "iso"]


def iso(at: datetime | None) -> str | None:
    """A stored time as ISO 8601 UTC (``2026-12-01T09:00:00Z``)."""
    return utc(at).isoformat().replace("+00:00", "Z") if at else None


def event_result(result: EventResult) -> dict[str, Any]:
    return {
        "episode_id": result.episode_id,
        "event": result.event,
        "status": result.status,
        "stage": result.stage,
        "episode_status": result.episode_status,
        "moved": list(result.moved) if result.moved else None,
    }


def handoff(view: HandoffView, principal: Principal) -> dict[str, Any]:
    h = view.handoff
    state = handoff_state(h)
    out: dict[str, Any] = {
        "id": h.id,
        "program": h.program,
        "role": h.role,
        "mode": h.mode,
        "status": h.status,
        "business_status": h.business_status,
        "bser_code": BSER_CODES[h.business_status][0],
        "label": label(state),
        "status_reason": h.status_reason,
        "appointment_at": iso(h.appointment_at),
        "outcome": h.outcome,
        "opened_at": iso(h.opened_at),
        "closed_at": iso(h.closed_at),
        "patient": view.patient_id,
        "deadlines": [{"title": d.title, "due_at": iso(d.due_at), "owner": d.owner} for d in view.deadlines],
        "moves_now": [{"action": a, "parties": list(p)} for a, p in legal_moves(state)],
    }
    if principal.role != "receiver":
        out["episode_id"] = h.episode_id
    return out


def episode_status(status: EpisodeStatus, principal: Principal, now: datetime) -> dict[str, Any]:
    ep = status.episode
    out: dict[str, Any] = {
        "id": ep.id,
        "pathway": ep.pathway_id,
        "pathway_version": ep.pathway_version,
        "stage": ep.stage,
        "status": ep.status,
        "enrolled_at": iso(ep.enrolled_at),
        "stage_entered_at": iso(ep.stage_entered_at),
        "deadlines": [
            {
                "id": i.id,
                "title": i.title,
                "owner": i.owner,
                "due_at": iso(i.due_at),
                "overdue": utc(i.due_at) <= now,
                "severity": i.severity,
            }
            for i in status.items
        ],
        "handoffs": [
            {"id": h.id, "program": h.program, "status": h.status, "business_status": h.business_status}
            for h in status.handoffs
        ],
        "escalations": [
            {
                "id": e.id,
                "raised_at": iso(e.raised_at),
                "severity": e.severity,
                "role": e.role,
                "work": escalation_title(status, e),
                "delivery": delivery_summary(status.deliveries.get(e.rung_id, [])),
                "acknowledged_at": iso(e.acknowledged_at),
                "acknowledged_by": e.acknowledged_by,
            }
            for e in status.escalations
        ],
    }
    if sees_person_ids(principal):
        out["person"] = ep.person_ref
        out["facts"] = ep.facts
        out["audit"] = [{"at": iso(a.at), "actor": a.actor, "action": a.action} for a in status.audit]
    return out


def disclosure(d: DisclosureRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "at": iso(d.at),
        "recipient": d.recipient,
        "purpose": d.purpose,
        "information": d.information,
        "consent": d.consent_id,
        "what": d.what,
        "notice": d.notice,
    }
