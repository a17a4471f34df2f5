"""The state of an episode as the pure semantics see it, and the small operations on it.

:mod:`engine.episode.rules` (stages, events, rungs) and :mod:`engine.episode.referrals` (handoffs, consent, medication
lists) both change an :class:`EpisodeState` only through these helpers, and record every change in the
:class:`Outcome` the service persists.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.episode.domain.authorization import AuthorizationState
from engine.episode.domain.consent import Consent, Disclosure
from engine.episode.domain.handoff import HandoffState
from engine.episode.domain.reconcile import Discrepancy, Medication
from engine.language.model import Anchor, FactRef
from engine.language.moments import moment
from engine.language.spans import add
from engine.plan.model import WorkPlan

__all__ = [
    "Authorization",
    "EpisodeState",
    "Escalation",
    "Event",
    "Handoff",
    "ItemStatus",
    "Outcome",
    "Rung",
    "Severity",
    "WorkItem",
    "alert",
    "close_item",
    "counted_from",
    "event_key",
    "open_work",
]

ItemStatus = Literal["open", "done", "cancelled", "missed"]
#: ``critical``: an omitted MOUD and the like, alerted at once to every role; ``high``: something went wrong with a
#: handoff (declined, revoked, denied), alerted at once; ``normal``: a deadline passed.
Severity = Literal["normal", "high", "critical"]


class Rung(BaseModel):
    """A durable timer: at ``due_at``, if the item is still open, alert ``role``."""

    id: str
    index: int
    due_at: datetime
    role: str
    status: Literal["pending", "fired", "cancelled"] = "pending"


class WorkItem(BaseModel):
    """An instance of planned work for one episode, with its deadline and rungs."""

    id: str
    kind: str
    key: str
    title: str
    owner: str | None
    opened_at: datetime
    due_at: datetime
    done_on: str
    match: dict[str, str] = Field(default_factory=dict)
    visit: int
    occurrence: int = 0
    handoff_id: str | None = None
    consent_purpose: str | None = None
    status: ItemStatus = "open"
    closed_by: str | None = None
    severity: Severity = "normal"
    #: Free text that goes with the work (a denial's reason): kept in the store, never shown in Prefect
    note: str | None = None
    rungs: list[Rung] = Field(default_factory=list)


class Handoff(BaseModel):
    """A referral to a receiving program: where it goes, plus its lifecycle state (:mod:`.domain.handoff`)."""

    id: str
    transition_index: int
    program: str
    role: str
    mode: str
    consent_purpose: str
    visit: int
    status: str = "requested"
    business_status: str = "created"
    status_reason: str | None = None
    consent_id: str | None = None
    appointment_at: datetime | None = None
    steps_met: list[str] = Field(default_factory=list)
    outcome: str | None = None
    re_engage_within: timedelta | None = None
    fallback: str | None = None
    opened_at: datetime
    closed_at: datetime | None = None

    def lifecycle(self, now: datetime) -> HandoffState:
        """The lifecycle state the standards' rules move."""
        return HandoffState(
            id=self.id,
            status=self.status,
            business_status=self.business_status,
            status_reason=self.status_reason,
            purpose=self.consent_purpose,
            consent_id=self.consent_id,
            appointment_at=self.appointment_at,
            steps_met=tuple(self.steps_met),
            outcome=self.outcome,
            re_engage_within=self.re_engage_within,
            fallback=self.fallback,
            opened_at=self.opened_at,
            updated_at=now,
            closed_at=self.closed_at,
        )

    def absorb(self, state: HandoffState) -> None:
        """Take the lifecycle fields of ``state``."""
        self.status, self.business_status = state.status, state.business_status
        self.status_reason, self.consent_id = state.status_reason, state.consent_id
        self.appointment_at, self.steps_met, self.outcome = state.appointment_at, list(state.steps_met), state.outcome
        self.closed_at = state.closed_at


class Authorization(BaseModel):
    """An insurance authorization one move's admission waits on, plus its decision state
    (:class:`engine.episode.domain.authorization.AuthorizationState`).

    Requested before the move (in the source stage, naming ``target``) it has no handoff yet and serves the
    source ``visit``; the move adopts it (its handoff, the new visit). Its deadline is work item ``item_id`` (the
    latest request's); ``closed_at`` is set when it is no longer followed (the stay or the handoff ended).
    """

    id: str
    transition_index: int
    target: str
    program: str
    visit: int
    handoff_id: str | None = None
    status: Literal["requested", "approved", "denied"] = "requested"
    requested_at: datetime
    due_at: datetime
    decided_at: datetime | None = None
    reason: str | None = None
    requests: int = 1
    item_id: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None

    def lifecycle(self) -> AuthorizationState:
        """The decision state the domain rules move."""
        return AuthorizationState(
            id=self.id,
            status=self.status,
            requested_at=self.requested_at,
            due_at=self.due_at,
            decided_at=self.decided_at,
            reason=self.reason,
        )

    def absorb(self, state: AuthorizationState) -> None:
        """Take the decision fields of ``state``."""
        self.status, self.requested_at, self.due_at = state.status, state.requested_at, state.due_at
        self.decided_at, self.reason = state.decided_at, state.reason


class EpisodeState(BaseModel):
    """What the semantics need of an episode: where it is, its facts and its open work."""

    id: str
    stage: str
    status: Literal["active", "completed"] = "active"
    facts: dict[str, Any] = Field(default_factory=dict)
    visit: int = 1
    stage_entered_at: datetime
    items: list[WorkItem] = Field(default_factory=list)
    handoffs: list[Handoff] = Field(default_factory=list)
    #: the person's program id and consents: consent gating happens here, in the pure layer
    person: str = ""
    consents: list[Consent] = Field(default_factory=list)
    #: medication lists of the current stage visit, by side (sending, receiving)
    medication_lists: dict[str, list[Medication]] = Field(default_factory=dict)
    #: reconciliation findings by stage visit, resolved ones included (``load_state`` loads the current visit's):
    #: a new comparison carries their marks over and resolves what it no longer finds
    discrepancies: dict[int, list[Discrepancy]] = Field(default_factory=dict)
    #: ids of the alert items raised, open or closed (``load_state`` loads the current visit's): an alert is
    #: raised once, however often what caused it is seen again
    raised_alerts: set[str] = Field(default_factory=set)
    #: insurance authorizations still followed (requested before a move, or of an open handoff)
    authorizations: list[Authorization] = Field(default_factory=list)
    #: when each event last happened (its ``occurred_at``, else when applied): what deadlines' ``from`` and time
    #: guards count from (``load_state`` derives it from the applied inbound events)
    event_times: dict[str, datetime] = Field(default_factory=dict)


class Event(BaseModel):
    """Something that happened, as recorded by a coordinator or a system; ``id`` makes it idempotent."""

    id: str
    name: str
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime


class Escalation(BaseModel):
    """A rung that fired: ``role`` must act on ``item_id``."""

    rung_id: str
    item_id: str
    role: str
    raised_at: datetime


class Outcome(BaseModel):
    """Every change one call made; the caller persists and schedules from it."""

    state: EpisodeState
    opened: list[WorkItem] = Field(default_factory=list)
    closed: list[WorkItem] = Field(default_factory=list)
    handoffs_opened: list[Handoff] = Field(default_factory=list)
    handoffs_changed: list[Handoff] = Field(default_factory=list)
    #: authorizations opened or changed (saved by id)
    authorizations: list[Authorization] = Field(default_factory=list)
    #: the stage just left was shorter than its expected ``min`` (this one), flagged on its visit
    short_stay: timedelta | None = None
    escalations: list[Escalation] = Field(default_factory=list)
    fired_rungs: list[str] = Field(default_factory=list)
    moved: tuple[str, str] | None = None
    disclosures: list[Disclosure] = Field(default_factory=list)
    medication_lists: dict[str, list[Medication]] = Field(default_factory=dict)
    #: the visit's whole set of findings when ``compared`` (a comparison ran), resolved ones included
    discrepancies: list[Discrepancy] = Field(default_factory=list)
    compared: bool = False
    audit: list[tuple[str, dict[str, Any]]] = Field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.opened or self.closed or self.escalations or self.moved or self.handoffs_changed)


def event_key(event: Event) -> str:
    """A short, stable key for ``event`` to build ids from. Event ids come from people and sending systems and
    could hold anything; ids built from them reach Prefect (rung ids name runs), so only a digest goes in."""
    return hashlib.sha256(event.id.encode()).hexdigest()[:12]


def counted_from(work: WorkPlan, state: EpisodeState, default: datetime) -> datetime:
    """What ``work``'s deadline counts from: its ``from`` moment once that has happened, else ``default``."""
    anchor: Anchor | None = FactRef(fact=work.from_fact) if work.from_fact else work.from_event
    found = moment(anchor, state.facts, state.event_times) if anchor is not None else None
    return found or default


def open_work(work: WorkPlan, base: datetime, episode_id: str, visit: int, handoff_id: str | None) -> WorkItem:
    """An open item for planned ``work`` counted from ``base``, with its rungs."""
    item_id = f"{episode_id}/{visit}/{work.key}"
    return WorkItem(
        id=item_id,
        kind=work.kind,
        key=work.key,
        title=work.title,
        owner=work.owner,
        opened_at=base,
        due_at=add(base, work.due),
        done_on=work.done_on,
        match=dict(work.match),
        visit=visit,
        handoff_id=handoff_id if work.kind in ("handoff-step", "authorization", "consent") else None,
        consent_purpose=work.consent_purpose,
        rungs=[Rung(id=f"{item_id}#r{r.index}", index=r.index, due_at=add(base, r.at), role=r.to) for r in work.ladder],
    )


def close_item(item: WorkItem, status: ItemStatus, by: str, state: EpisodeState, out: Outcome) -> None:
    """Close an open item; one opened by this same call simply never happened."""
    item.status, item.closed_by = status, by
    for rung in item.rungs:
        if rung.status == "pending":
            rung.status = "cancelled"
    state.items = [i for i in state.items if i.id != item.id]
    if any(i.id == item.id for i in out.opened):
        out.opened = [i for i in out.opened if i.id != item.id]
    else:
        out.closed.append(item)


def alert(
    state: EpisodeState,
    out: Outcome,
    key: str,
    title: str,
    roles: list[str],
    now: datetime,
    *,
    severity: Severity = "high",
    note: str | None = None,
) -> WorkItem | None:
    """Escalate at once: an item whose rungs (one per role) are all due now; it closes when they have fired.

    ``title`` reaches Prefect and the alert's recipients, so it holds the pathway's own words and codes only;
    free text (a reason someone typed) goes in ``note``, which stays in the store. An alert ``key`` already raised
    in this visit (even one whose item has closed) is not raised again: the caller keys what must alert once.
    """
    if not roles:
        return None
    item_id = f"{state.id}/{state.visit}/alert.{key}"
    if item_id in state.raised_alerts or any(i.id == item_id for i in state.items):
        return None
    item = WorkItem(
        id=item_id,
        kind="alert",
        key=f"alert.{key}",
        title=title,
        owner=roles[0],
        opened_at=now,
        due_at=now,
        done_on="escalation.acknowledged",
        visit=state.visit,
        severity=severity,
        note=note,
        rungs=[
            Rung(id=f"{item_id}#r{n}", index=n, due_at=now, role=role) for n, role in enumerate(dict.fromkeys(roles))
        ],
    )
    state.items.append(item)
    state.raised_alerts.add(item_id)
    out.opened.append(item)
    out.audit.append(("alert", {"key": key, "to": list(dict.fromkeys(roles))}))
    return item
