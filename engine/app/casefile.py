"""A coordinator's whole view of one episode (the web's episode page), and people found by their program id.

Coordinators only: both show the person's program id. The timeline merges the stays, the events as received and
the audit trail (contacts, acknowledgements, consents ...) into one list, oldest first (:func:`timeline`, pure).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from engine import store
from engine.app import inputs
from engine.app.access import Principal, require
from engine.app.context import App
from engine.app.network import EpisodeRecordSet, episode_record_set
from engine.app.worklist import HandoffMoves, handoff_moves
from engine.clock import utc
from engine.store import AuditRecord, DisclosureRecord, EpisodeRecord, InboundEventRecord, StageVisitRecord

__all__ = ["Casefile", "Moment", "casefile", "person_episodes", "timeline"]


@dataclass(frozen=True)
class Moment:
    """One line of the timeline: when, what kind (``left``, ``entered``, ``event``, ``audit``), what, who, a note."""

    at: datetime
    kind: str
    what: str
    who: str
    note: str = ""


@dataclass(frozen=True)
class Casefile:
    """Everything a coordinator sees of one episode."""

    records: EpisodeRecordSet
    timeline: list[Moment]
    handoffs: dict[str, HandoffMoves]
    disclosures: list[DisclosureRecord]


def _summary(action: str, detail: dict[str, Any] | None) -> str:
    """An audit line in a few words: ``event person.released``, ``moved custody -> clinic``, ``escalated to X``."""
    d = detail or {}
    if "from" in d and "to" in d:
        return f"{action} {d['from']} -> {d['to']}"
    for key in ("event", "summary", "consent", "stage"):
        if isinstance(d.get(key), str):
            return f"{action} {d[key]}"
    if isinstance(d.get("to"), str):
        return f"{action} to {d['to']}"
    return action


def timeline(
    visits: Iterable[StageVisitRecord], events: Iterable[InboundEventRecord], audit: Iterable[AuditRecord]
) -> list[Moment]:
    """Stays, the audit trail (events applied, moves, escalations, contacts ...) and events not applied (refused
    or waiting) as one list, oldest first; at one instant the stays come first, in their order."""
    out = []
    for v in visits:  # in visit order: a sort that keeps it puts each stay's start before its end
        out.append(Moment(utc(v.entered_at), "entered", f"entered {v.stage}", ""))
        if v.left_at is not None:
            out.append(Moment(utc(v.left_at), "left", f"left {v.stage}", ""))
    out += [
        Moment(utc(e.received_at), "event", f"{e.name} ({e.status})", e.actor, e.detail or "")
        for e in events
        if e.status != "applied"
    ]
    out += [Moment(utc(a.at), "audit", _summary(a.action, a.detail), a.actor, a.reason or "") for a in audit]
    order = {"entered": 0, "left": 0, "event": 1, "audit": 2}
    return sorted(out, key=lambda m: (m.at, order[m.kind]))


def casefile(app: App, principal: Principal, episode_id: str) -> Casefile:
    """The episode's record set (:func:`engine.app.network.episode_record_set`), its timeline, the moves of its
    open handoffs and its disclosures."""
    require(principal, "worklist")
    records = episode_record_set(app, principal, "worklist", episode_id)
    with Session(app.engine) as session:
        events = store.inbound_events(session, episode_id)
        audit = store.audit_tail(session, episode_id, limit=500)
        disclosures = store.disclosures_for(session, episode_id=episode_id)
    moves = {h.id: handoff_moves(h) for h in records.status.handoffs if h.closed_at is None}
    return Casefile(records, timeline(records.visits, events, audit), moves, disclosures)


def person_episodes(app: App, principal: Principal, person_ref: str) -> list[EpisodeRecord]:
    """A person's episodes by program id, newest enrolment first (coordinators only; none is not an error)."""
    require(principal, "lookup")
    inputs.check_id("person id", person_ref)
    with Session(app.engine) as session:
        found = store.list_episodes(session, person_ref=person_ref.strip())
    return sorted(found, key=lambda e: (utc(e.enrolled_at), e.id), reverse=True)
