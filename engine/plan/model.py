"""The compiled plan: a pure, Prefect-free description of what a pathway schedules and when.

A plan is what the orchestration layer runs. Every piece of work is a :class:`WorkPlan` with a stable ``key``,
an owner role, a deadline offset from its trigger (a transition or entering a stage), the event that meets it
and its escalation rungs as absolute offsets from the same trigger. Recurring contacts are
:class:`CheckInSeriesPlan` (expanded one occurrence at a time at run time, so open-ended series stay finite).
Parameters are already resolved, so nothing downstream sees a :class:`engine.language.fields.ParamRef`.

These are the frozen data classes only; :func:`engine.plan.build.compile_plan` builds them from a validated
pathway, and the episode rules, the store and the renderings read them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from engine.language.durations import show_duration as _show
from engine.language.fields import PlanSpan
from engine.language.model import Guard
from engine.language.spans import nominal

__all__ = [
    "STAY_DONE_ON",
    "CheckInSeriesPlan",
    "HandoffPlan",
    "MeasuresPlan",
    "MedicationChangePlan",
    "Plan",
    "RungPlan",
    "StagePlan",
    "TransitionPlan",
    "WorkKind",
    "WorkPlan",
]

WorkKind = Literal[
    "handoff-step",
    "authorization",
    "reconcile",
    "task",
    "peer-contact",
    "family-update",
    "referral",
    "consent",
    "re-engagement",
    "alert",
    "stay",
]
#: What ends a stage's stay deadline (no event: leaving the stage does); shown where an event name would be.
STAY_DONE_ON = "leaving the stage"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RungPlan(_Frozen):
    """An escalation rung: at ``at`` after the trigger (deadline + rung's ``after``), alert role ``to``."""

    index: int
    at: PlanSpan
    to: str


class WorkPlan(_Frozen):
    """One piece of work with a deadline, met by ``done_on`` (an event name) and escalated by ``ladder``.

    ``match`` narrows which events meet it (e.g. ``{"need": "housing"}`` for a referral). ``consent_purpose``
    is set where doing the work discloses information about the person.
    """

    key: str
    kind: WorkKind
    title: str
    owner: str | None
    due: PlanSpan
    done_on: str
    match: dict[str, str] = {}
    ladder: tuple[RungPlan, ...] = ()
    consent_purpose: str | None = None
    #: Recurring work (family updates): once met or missed, the next one is due ``every`` later.
    every: PlanSpan | None = None
    #: No work is needed when this guard holds over the episode facts (authorization ``unless``, e.g. self-pay).
    skip_if: Guard | None = None
    #: Roles alerted at once on a critical discrepancy (medication reconciliation).
    critical_to: tuple[str, ...] = ()
    #: Opened on entering a stage only if this guard holds then (an entry task's ``when``).
    only_if: Guard | None = None
    #: The deadline counts from this event's moment, or this date fact, once known (the spec's ``from``).
    from_event: str | None = None
    from_fact: str | None = None

    def counts_from(self) -> str | None:
        """The moment the deadline counts from, as people read it (None: the trigger)."""
        return self.from_event or self.from_fact

    #: ``episode``: leaving the stage it was opened in does not cancel it (:mod:`engine.language.continuity`).
    lasts: Literal["stage", "episode"] = "stage"


class CheckInSeriesPlan(_Frozen):
    """Recurring contacts: occurrence k opens at ``starts + k*every`` and is due ``window`` later.

    ``span`` None means until the stage is left. Series of a stage follow one another (``starts`` is the sum
    of earlier spans). The ladder's offsets count from each occurrence's opening (window + the rung's ``after``);
    a series written without a ladder gets one rung alerting its owner when the window closes, so a missed
    contact is always seen.
    """

    key: str
    owner: str
    every: PlanSpan
    window: PlanSpan
    starts: PlanSpan
    span: PlanSpan | None
    done_on: str
    ladder: tuple[RungPlan, ...] = ()
    #: Series of one track follow one another; tracks run side by side ("" is the stage's unnamed track).
    track: str = ""


def next_in_track(series: tuple[CheckInSeriesPlan, ...], position: int) -> int | None:
    """The position of the series that follows ``series[position]`` in its track, if any."""
    track = series[position].track
    return next((n for n in range(position + 1, len(series)) if series[n].track == track), None)


def track_starts(series: tuple[CheckInSeriesPlan, ...]) -> list[int]:
    """The position of each track's first series, in file order: where a stage visit's contacts begin."""
    first: dict[str, int] = {}
    for n, s in enumerate(series):
        first.setdefault(s.track, n)
    return list(first.values())


class MedicationChangePlan(_Frozen):
    """A switch a move intends (``stop`` and/or ``start``, declared medication names), documented by ``reason``."""

    stop: str | None
    start: str | None
    reason: str


class HandoffPlan(_Frozen):
    """The receiving side of a handoff and how it is made."""

    program: str
    role: str
    mode: Literal["warm", "standard"]
    introduced_by: str | None
    consent_purpose: str
    re_engage_within: timedelta | None = None
    fallback: str | None = None
    #: The wait for a consent when none covers the referral (opened only then).
    consent: WorkPlan | None = None
    #: The re-engagement after a no-show (opened only then): owner and ladder, ``due`` = ``re_engage_within``.
    re_engagement: WorkPlan | None = None
    #: Roles alerted at once when the handoff goes wrong (no-show, declined...); empty: the built-in default.
    alert_to: tuple[str, ...] = ()
    #: ``episode``: the handoff and its deadlines outlive the stage it led to, until its loop closes or it is cancelled.
    lasts: Literal["stage", "episode"] = "stage"


class StagePlan(_Frozen):
    """A stage with the work scheduled on entering it (a ``max`` stay is its ``stay`` work, ``s.<stage>.stay``)."""

    id: str
    name: str
    level: str | None
    terminal: bool
    min_stay: PlanSpan | None
    max_stay: PlanSpan | None
    entry_work: tuple[WorkPlan, ...]
    check_ins: tuple[CheckInSeriesPlan, ...]
    before_leaving: tuple[str, ...]
    #: Medications the receiving list must hold whenever lists are compared in this stage.
    requires_medication: tuple[str, ...] = ()


class TransitionPlan(_Frozen):
    """A move: from one of ``sources`` to ``target`` on ``event`` if ``guard`` holds, with its own work."""

    index: int
    sources: tuple[str, ...]
    target: str
    event: str
    guard: Guard | None
    handoff: HandoffPlan | None
    work: tuple[WorkPlan, ...]
    #: Every event that triggers the move when it names several (``event`` is the first of them).
    events: tuple[str, ...] = ()
    #: A move on what did not happen (``event`` is then empty): a stay this long, a deadline missed (an entry
    #: task's id or a handoff step's kind), or the handoff into the stage ending so (declined, no-show, failed).
    after: PlanSpan | None = None
    on_missed: str | None = None
    on_handoff: tuple[str, ...] = ()

    @property
    def timed(self) -> bool:
        """Whether a timer moves this (``after`` or ``on_missed``), armed on entering its stage."""
        return self.after is not None or self.on_missed is not None

    @property
    def on_events(self) -> tuple[str, ...]:
        """The events that trigger this move (none for a move on a timeout or a handoff's outcome)."""
        return self.events or ((self.event,) if self.event else ())

    def trigger(self) -> str:
        """How the move is triggered, as people read it (``on relapse.reported or ed.returned``)."""
        if self.after is not None:
            return f"after {_show(self.after)} in the stage"
        if self.on_missed is not None:
            return f"when {self.on_missed} is missed"
        if self.on_handoff:
            return "when the handoff is " + " or ".join(self.on_handoff)
        return "on " + " or ".join(self.on_events)

    medication_changes: tuple[MedicationChangePlan, ...] = ()
    requires_medication: tuple[str, ...] = ()


class MeasuresPlan(_Frozen):
    """The pathway's ``measures:`` key: which events the quality measures read as what (all optional)."""

    start: str | None = None
    visits: tuple[str, ...] = ()
    release: str | None = None
    contacts: tuple[str, ...] = ()
    moud_fills: tuple[str, ...] = ()
    moud_events: tuple[str, ...] = ()


class Plan(_Frozen):
    """The whole compiled pathway; its ``schedule`` of a transition is the ordered work the move starts."""

    pathway_id: str
    version: int
    title: str
    description: str
    initial_stage: str
    parameters: dict[str, PlanSpan]
    stages: dict[str, StagePlan]
    transitions: tuple[TransitionPlan, ...]
    events: dict[str, dict[str, Any]]
    facts: dict[str, dict[str, Any]]
    referrals: dict[str, WorkPlan]
    critical_medications: tuple[dict[str, Any], ...]
    #: What the quality measures read as a visit, the index event, a release, a contact, MOUD evidence.
    measures: MeasuresPlan = MeasuresPlan()

    def transitions_on(self, stage: str, event: str) -> list[TransitionPlan]:
        """Transitions leaving ``stage`` on ``event``, in file order (the first whose guard holds wins)."""
        return [t for t in self.transitions if stage in t.sources and event in t.on_events]

    def record_anywhere(self, event: str) -> bool:
        """Whether ``event`` is accepted in every stage (logged, its facts set, even where it moves nothing)."""
        return bool(self.events.get(event, {}).get("record_anywhere"))

    def schedule(self, transition: TransitionPlan) -> list[WorkPlan]:
        """All work a transition starts (its own and the target stage's entry work), ordered by deadline."""
        work = list(transition.work) + list(self.stages[transition.target].entry_work)
        return sorted(work, key=lambda w: (nominal(w.due), w.key))
