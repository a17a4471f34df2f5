"""An episode's history as the quality measures read it: one neutral record, built two ways.

The measures (:mod:`engine.measures`) must give the same answer whether a cohort was run through the store (the
service, a database) or through the pure rules alone (the simulator, :mod:`engine.simulate`). So both ends produce
this one shape and nothing else reaches the measures:

- from the store: :func:`engine.store.queries.cohort.load_histories` reads the records;
- from the pure rules: :class:`HistoryRecorder` is fed every :class:`~engine.episode.state.Outcome` a driver
  applies, with the ``now`` it applied it at.

Only what both ends know goes in. Times are UTC. Every tuple is in time order (ties: the order things happened).
Nothing here is personal: drug names are the pathway's own words (for MOUD continuity), free text is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from engine.episode.state import EpisodeState, Event, Handoff, Outcome
from engine.language.moments import OCCURRED_AT, parse_moment

__all__ = [
    "EpisodeHistory",
    "Finding",
    "HandoffTrack",
    "Happening",
    "HistoryRecorder",
    "MedList",
    "Raised",
    "Stay",
    "rung_index",
]


@dataclass(frozen=True)
class Stay:
    """One visit to a stage: entered by ``entered_by`` (an event name, ``None`` for enrollment) at ``entered_at``;
    ``left_at`` is ``None`` while the person is still there."""

    stage: str
    visit: int
    entered_at: datetime
    left_at: datetime | None = None
    entered_by: str | None = None


@dataclass(frozen=True)
class Happening:
    """An event the rules applied (refused ones are not here): its name, when it happened (its ``occurred_at``,
    else when it was recorded) and its payload's plain values."""

    name: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HandoffTrack:
    """A handoff to a receiving program, opened by the move into stage visit ``visit`` (the visit it serves: the
    receiving stage's, or the sending stage's own for a handoff declared on it); ``steps`` maps each step kind met
    (``accepted``, ``scheduled``, ``visit-kept``, ``outcome-returned``) to when the move that met it was applied;
    ``status``/``business_status`` are the final FHIR/BSeR states; ``transition`` is the plan's transition whose
    handoff it is (its steps are what the pathway asked of the receiver)."""

    id: str
    program: str
    role: str
    visit: int
    opened_at: datetime
    status: str
    business_status: str
    steps: dict[str, datetime] = field(default_factory=dict)
    closed_at: datetime | None = None
    outcome: str | None = None
    transition: int = 0


@dataclass(frozen=True)
class Raised:
    """An escalation: rung ``rung`` (0-based) of work item ``item_key`` (kind ``item_kind``) alerted ``role``."""

    rung_id: str
    item_key: str
    item_kind: str
    rung: int
    role: str
    severity: str
    raised_at: datetime
    acknowledged_at: datetime | None = None


@dataclass(frozen=True)
class Finding:
    """A medication reconciliation finding of stage visit ``visit`` as it stands: ``status`` is
    ``unintentional``, ``intentional-documented`` or ``resolved``."""

    visit: int
    key: str
    kind: str
    critical: bool
    status: str


@dataclass(frozen=True)
class MedList:
    """The medication list of stage visit ``visit`` on ``side`` (``sending`` or ``receiving``) as last recorded, at
    ``at`` (a list sent again replaces the older, as the store keeps it; every list sent is among the events): the
    medications' names as written (the measures match them against the pathway's MOUD names and aliases)."""

    visit: int
    side: str
    at: datetime
    names: tuple[str, ...]


@dataclass(frozen=True)
class EpisodeHistory:
    """Everything the measures know of one episode."""

    id: str
    pathway_id: str
    pathway_version: int
    enrolled_at: datetime
    status: str
    #: the episode's facts as they stand (enrollment facts and what events set): what strata group by
    facts: dict[str, Any]
    stays: tuple[Stay, ...] = ()
    events: tuple[Happening, ...] = ()
    handoffs: tuple[HandoffTrack, ...] = ()
    escalations: tuple[Raised, ...] = ()
    findings: tuple[Finding, ...] = ()
    medication_lists: tuple[MedList, ...] = ()


def rung_index(rung_id: str) -> int:
    """Rung ids end ``#r<n>`` (:func:`engine.episode.state.open_work`)."""
    return int(rung_id.rsplit("#r", 1)[1])


class HistoryRecorder:
    """Builds an :class:`EpisodeHistory` from the outcomes a driver applies, with no store.

    Feed it every outcome in the order applied: the enrollment's, each applied event's (with the event) and each
    fired rung's; refused events never produce an outcome, so they are not recorded, as in the store.
    """

    def __init__(self, pathway_id: str, pathway_version: int) -> None:
        self.pathway_id, self.pathway_version = pathway_id, pathway_version
        self._state: EpisodeState | None = None
        self._enrolled_at: datetime | None = None
        self._stays: list[Stay] = []
        self._events: list[Happening] = []
        self._handoffs: dict[str, HandoffTrack] = {}
        self._raised: dict[str, Raised] = {}
        self._findings: dict[tuple[int, str], Finding] = {}
        #: the latest list of each (visit, side): a list sent again replaces the older, as in the store
        self._lists: dict[tuple[int, str], MedList] = {}

    def record(self, out: Outcome, now: datetime, event: Event | None = None) -> None:
        """Take one applied outcome: ``now`` is when it was applied, ``event`` the event applied (if one was)."""
        state = out.state
        if self._state is None:
            self._enrolled_at = now
            self._stays.append(Stay(state.stage, state.visit, state.stage_entered_at))
        elif out.moved is not None:
            self._stays[-1] = replace(self._stays[-1], left_at=now)
            self._stays.append(Stay(state.stage, state.visit, now, entered_by=event.name if event else None))
        if event is not None:
            happened = parse_moment(event.data.get(OCCURRED_AT)) or event.at  # as the rules count it
            self._events.append(Happening(event.name, happened, dict(event.data)))
        for handoff in [*out.handoffs_opened, *out.handoffs_changed]:
            self._track(handoff, now)
        items = {i.id: i for i in [*state.items, *out.closed, *out.opened]} if out.escalations else {}
        for esc in out.escalations:
            item = items.get(esc.item_id)
            self._raised[esc.rung_id] = Raised(
                rung_id=esc.rung_id,
                item_key=item.key if item else esc.item_id,
                item_kind=item.kind if item else "",
                rung=rung_index(esc.rung_id),
                role=esc.role,
                severity=item.severity if item else "normal",
                raised_at=esc.raised_at,
            )
        for side, meds in out.medication_lists.items():
            self._lists[(state.visit, side)] = MedList(state.visit, side, now, tuple(m.name for m in meds))
        if out.compared:
            seen = {d.key for d in out.discrepancies}
            for (visit, key), old in list(self._findings.items()):
                if visit == state.visit and key not in seen:
                    self._findings[(visit, key)] = replace(old, status="resolved")
            for d in out.discrepancies:
                self._findings[(state.visit, d.key)] = Finding(state.visit, d.key, d.kind, d.critical, d.status)
        self._state = state

    def _track(self, handoff: Handoff, now: datetime) -> None:
        old = self._handoffs.get(handoff.id)
        steps = dict(old.steps) if old else {}
        for kind in handoff.steps_met:
            steps.setdefault(kind, now)
        self._handoffs[handoff.id] = HandoffTrack(
            id=handoff.id,
            program=handoff.program,
            role=handoff.role,
            visit=handoff.visit,
            opened_at=handoff.opened_at,
            status=handoff.status,
            business_status=handoff.business_status,
            steps=steps,
            closed_at=handoff.closed_at,
            outcome=handoff.outcome,
            transition=handoff.transition_index,
        )

    def acknowledge(self, rung_id: str, at: datetime) -> None:
        """Someone acknowledged the escalation of ``rung_id`` at ``at`` (the first acknowledgement counts). The
        driver also cancels the item's pending rungs in its state, as the service does (they never fire)."""
        raised = self._raised.get(rung_id)
        if raised is not None and raised.acknowledged_at is None:
            self._raised[rung_id] = replace(raised, acknowledged_at=at)

    def history(self, episode_id: str | None = None) -> EpisodeHistory:
        """The history so far (the episode's id and facts from the last state recorded)."""
        if self._state is None or self._enrolled_at is None:
            raise ValueError("nothing recorded yet: record the enrollment's outcome first")
        state = self._state
        return EpisodeHistory(
            id=episode_id or state.id,
            pathway_id=self.pathway_id,
            pathway_version=self.pathway_version,
            enrolled_at=self._enrolled_at,
            status=state.status,
            facts=dict(state.facts),
            stays=tuple(self._stays),
            events=tuple(sorted(self._events, key=lambda h: h.at)),  # stable: ties keep the order applied
            handoffs=tuple(sorted(self._handoffs.values(), key=lambda h: (h.opened_at, h.id))),
            escalations=tuple(sorted(self._raised.values(), key=lambda r: (r.raised_at, r.rung_id))),
            findings=tuple(sorted(self._findings.values(), key=lambda f: (f.visit, f.key))),
            medication_lists=tuple(sorted(self._lists.values(), key=lambda m: m.at)),
        )
