"""A coordinator's whole view of one episode (the web's episode page), and people found by their program id.

Coordinators only: both show the person's program id. The timeline merges the stays, the events as received and
the audit trail (contacts, acknowledgements, consents ...) into one list, oldest first (:func:`timeline`, pure).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

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

#: Audit actions the timeline leaves out: the events' own lines already say it.
_QUIET = frozenset({"event.received"})


@dataclass(frozen=True)
class Moment:
    """One line of the timeline: when, what kind (``stage``, ``event``, ``audit``), what, who, and a note."""

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


def timeline(
    visits: Iterable[StageVisitRecord], events: Iterable[InboundEventRecord], audit: Iterable[AuditRecord]
) -> list[Moment]:
    """Stays, events and audit lines as one list, oldest first (stays before events at the same instant)."""
    out = [Moment(utc(v.entered_at), "stage", f"entered {v.stage}", v.entered_by_event or "enrolment") for v in visits]
    out += [Moment(utc(v.left_at), "stage", f"left {v.stage}", "") for v in visits if v.left_at is not None]
    out += [Moment(utc(e.received_at), "event", f"{e.name} ({e.status})", e.actor, e.detail or "") for e in events]
    out += [Moment(utc(a.at), "audit", a.action, a.actor, a.reason or "") for a in audit if a.action not in _QUIET]
    order = {"stage": 0, "event": 1, "audit": 2}
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
