"""The use cases of the network face that the CLI does not have: handoffs found by their own id, each one seen
through the asker's scope, moved by the party the token speaks for, and the person behind an episode named only
by a pseudonym.

A receiving program sees a handoff only when it is addressed to that program and was sent (a draft waits for
consent: nothing has been disclosed yet); anything else is "not found". A receiver always moves as the receiving
party. Every write goes through :func:`engine.app.record_event`, exactly like ``carepath handoff``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session

from engine import store
from engine.app import inputs
from engine.app.access import Principal, require, sees_person_ids
from engine.app.context import App
from engine.app.episodes import EventResult, record_event
from engine.episode.domain.handoff_terms import PARTIES, TaskStatus
from engine.errors import InvalidInput, NotFound, quote
from engine.plan.model import Plan
from engine.store import (
    ConsentRecord,
    DiscrepancyRecord,
    EpisodeRecord,
    HandoffRecord,
    MedicationListRecord,
    StageVisitRecord,
    WorkItemRecord,
)
from engine.store.readmodels import EpisodeStatus, episode_status

__all__ = [
    "EpisodeRecordSet",
    "HandoffView",
    "episode_record_set",
    "handoff",
    "handoffs",
    "move_handoff",
    "patient_person",
    "patient_pseudonym",
    "visible_consent",
    "visible_episode",
]

#: The store setting holding the key of the patient pseudonyms (made once per store, never leaves it).
PSEUDONYM_KEY = "patient-pseudonym-key"
_STATUSES: tuple[str, ...] = TaskStatus.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class HandoffView:
    """A handoff as one asker may see it: its open deadlines and the pseudonym of the person it is about."""

    handoff: HandoffRecord
    deadlines: list[WorkItemRecord]
    patient_id: str


def patient_pseudonym(app: App, person_ref: str) -> str:
    """A stable opaque id for a person (``pt-`` + 16 hex): the same person gets the same id in every episode, and
    nobody without the store's key can tell who it is."""
    return _pseudonym(_pseudonym_key(app), person_ref)


def _pseudonym_key(app: App) -> str:
    """The store's pseudonym key, made on first use."""
    key = store.get_setting(app.engine, PSEUDONYM_KEY)
    if key is None:
        store.put_setting(app.engine, PSEUDONYM_KEY, secrets.token_hex(32))
        key = store.get_setting(app.engine, PSEUDONYM_KEY)
    return str(key)


def _pseudonym(key: str, person_ref: str) -> str:
    return "pt-" + hmac.new(bytes.fromhex(key), person_ref.encode(), hashlib.sha256).hexdigest()[:16]


def _in_scope(principal: Principal, handoff: HandoffRecord) -> bool:
    if principal.role == "receiver":
        return handoff.program == principal.program and handoff.status != "draft"
    return True


def _views(app: App, session: Session, found: Sequence[HandoffRecord]) -> list[HandoffView]:
    deadlines = store.handoff_deadlines(session, [h.id for h in found])
    patients: dict[str, str] = {}  # episode id -> pseudonym, the key read once for the whole list
    key = _pseudonym_key(app) if found else ""
    for h in found:
        if h.episode_id not in patients:
            patients[h.episode_id] = _pseudonym(key, store.get_episode(session, h.episode_id).person_ref)
    return [HandoffView(h, deadlines[h.id], patients[h.episode_id]) for h in found]


def handoff(app: App, principal: Principal, handoff_id: str) -> HandoffView:
    """One handoff the asker may see; :class:`NotFound` for an unknown one and for one outside its scope alike."""
    require(principal, "handoffs")
    inputs.check_id("handoff id", handoff_id)
    with Session(app.engine) as session:
        found = session.get(HandoffRecord, handoff_id)
        if found is None or not _in_scope(principal, found):
            raise NotFound(f"no handoff {quote(handoff_id)}")
        return _views(app, session, [found])[0]


def handoffs(
    app: App, principal: Principal, *, statuses: Sequence[str] = (), episode_id: str | None = None
) -> list[HandoffView]:
    """The handoffs the asker may see, newest first: a receiver's program's (sent ones only), else every one."""
    require(principal, "handoffs")
    for status in statuses:
        if status not in _STATUSES:
            raise InvalidInput("status", f"is not a task status ({', '.join(_STATUSES)})", status)
    if episode_id is not None:
        inputs.check_id("episode id", episode_id)
    with Session(app.engine) as session:
        if principal.role == "receiver":
            found = [
                h
                for h in store.handoffs_of_program(session, str(principal.program), statuses)
                if episode_id is None or h.episode_id == episode_id
            ]
        else:
            found = store.list_handoffs(session, episode_id=episode_id, statuses=statuses)
        return _views(app, session, found)


def move_handoff(
    app: App,
    principal: Principal,
    handoff_id: str,
    action: str,
    *,
    party: str | None = None,
    reason: str | None = None,
    appointment_at: str | None = None,
    outcome: str | None = None,
    event_id: str | None = None,
) -> EventResult:
    """Move a handoff along its closed loop, as ``carepath handoff`` does; a receiver moves as the receiver."""
    require(principal, "move-handoff")
    view = handoff(app, principal, handoff_id)
    if principal.role == "receiver" and party not in (None, "receiver"):
        raise InvalidInput("party", "a receiving program moves its handoffs as the receiver", party)
    if party is not None and party not in PARTIES:
        raise InvalidInput("party", "is not sender or receiver", party)
    data = {
        "action": action,
        "party": party or "receiver",
        "reason": reason,
        "appointment_at": appointment_at,
        "outcome": outcome,
        "handoff": handoff_id,
    }
    payload = {k: v for k, v in data.items() if v}
    return record_event(app, view.handoff.episode_id, "handoff.move", payload, event_id=event_id, actor=principal.label)


def visible_episode(app: App, principal: Principal, action: str, episode_id: str) -> EpisodeRecord:
    """The episode, for a role that may take ``action`` on episodes (receivers never may)."""
    require(principal, action)
    inputs.check_id("episode id", episode_id)
    with Session(app.engine) as session:
        found = session.get(EpisodeRecord, episode_id)
    if found is None:
        raise NotFound(f"no episode {quote(episode_id)}")
    return found


@dataclass(frozen=True)
class EpisodeRecordSet:
    """Everything FHIR shows of one episode (``person_ref`` only for an asker who sees person ids)."""

    status: EpisodeStatus
    plan: Plan
    patient_id: str
    person_ref: str | None
    consents: list[ConsentRecord]
    medication_lists: list[MedicationListRecord]
    discrepancies: list[DiscrepancyRecord]
    visits: list[StageVisitRecord]
    deadlines: dict[str, list[WorkItemRecord]]


def episode_record_set(app: App, principal: Principal, action: str, episode_id: str) -> EpisodeRecordSet:
    """The episode's whole record as ``principal`` may see it (for ``action``: ``care-plan``, ...)."""
    episode = visible_episode(app, principal, action, episode_id)
    status = episode_status(app.engine, episode_id)
    with Session(app.engine) as session:
        consents = store.consents_for(session, episode.person_ref)
        lists = store.all_medication_lists(session, episode_id)
        findings = store.discrepancies_for(session, episode_id)
        visits = store.stage_visits(session, episode_id)
        deadlines = store.handoff_deadlines(session, [h.id for h in status.handoffs])
    return EpisodeRecordSet(
        status=status,
        plan=app.service.plan_for(episode_id),
        patient_id=patient_pseudonym(app, episode.person_ref),
        person_ref=episode.person_ref if principal.role == "coordinator" else None,
        consents=consents,
        medication_lists=lists,
        discrepancies=findings,
        visits=visits,
        deadlines=deadlines,
    )


def visible_consent(app: App, principal: Principal, consent_id: str) -> tuple[ConsentRecord, str, bool]:
    """A consent (for coordinators and auditors), its person's pseudonym, and whether an episode of that person is
    still active (an ``end-of-treatment`` expiry holds until then)."""
    require(principal, "consents")
    inputs.check_id("consent id", consent_id)
    with Session(app.engine) as session:
        record = session.get(ConsentRecord, consent_id)
        if record is None:
            raise NotFound(f"no consent {quote(consent_id)}")
        active = any(e.status == "active" for e in store.list_episodes(session, person_ref=record.person_ref))
    return record, patient_pseudonym(app, record.person_ref), active


def patient_person(app: App, principal: Principal, action: str, patient_id: str) -> tuple[str | None, list[str]]:
    """Who a pseudonym stands for (their program id, for an asker who sees person ids; else None) and their
    episodes; :class:`NotFound` for a pseudonym of nobody. Reversing a keyed hash means trying each person: one
    pass over the episodes, fine for one program's caseload."""
    require(principal, action)
    inputs.check_id("patient id", patient_id)
    key = store.get_setting(app.engine, PSEUDONYM_KEY)
    with Session(app.engine) as session:
        episodes = store.list_episodes(session) if key is not None else []
    mine = [e for e in episodes if _pseudonym(key, e.person_ref) == patient_id]
    if not mine:
        raise NotFound(f"no Patient {quote(patient_id)}")
    return (mine[0].person_ref if sees_person_ids(principal) else None), [e.id for e in mine]
