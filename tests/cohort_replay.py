"""Replay one scripted cohort two ways and get each person's :class:`EpisodeHistory`: through the whole service
and the store (:func:`through_service`, then :func:`~engine.store.queries.cohort.load_histories`), and through the
pure rules alone (:func:`through_rules`, feeding :class:`~engine.episode.history.HistoryRecorder`). "One truth,
two paths": for the same script both must give the same histories once episode ids are set aside
(:func:`normalised`).

A script is, per person, time-ordered actions: :class:`Enroll` (with facts), :class:`Record` (an event with its
payload, ``occurred_at`` included), :class:`Consent` (a signed TPO consent, then the ``consent.recorded`` event),
:class:`Acknowledge` (the escalation of a rung, named without its episode id). Time moves as in production: a
deadline's rung fires when it comes due (at its due time, or at once when it was due before it existed), before
an action at the same time. Refused events change nothing on either path; both paths report them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from engine.app import App, acknowledge, enroll, record_event
from engine.app.inline import MemoryScheduler
from engine.app.safety import record_consent
from engine.clock import ManualClock
from engine.episode.domain.consent import Consent as SignedConsent
from engine.episode.domain.consent import single_tpo_consent
from engine.episode.history import EpisodeHistory, HistoryRecorder
from engine.episode.rules import apply_event, fire_rung
from engine.episode.rules import enroll as enroll_rules
from engine.episode.state import EpisodeState, Event
from engine.errors import EpisodeError, EventRejected, InvalidInput
from engine.plan.model import Plan
from engine.store import EscalationRecord
from engine.store.queries.cohort import load_histories

__all__ = [
    "Acknowledge",
    "Consent",
    "Enroll",
    "Person",
    "Record",
    "Replay",
    "Script",
    "from_simulation",
    "normalised",
    "normalised_all",
    "through_rules",
    "through_service",
]

#: Who acknowledges escalations in a replay (an opaque staff id).
STAFF = "staff-replay"
#: Stands for the episode's id in a :class:`Record`'s data (each path has its own ids).
EPISODE = "{episode}"


@dataclass(frozen=True)
class Enroll:
    at: datetime
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    """An event; ``data`` may carry ``occurred_at`` (ISO text, as the service stores it) and ids of the episode's
    own things (a handoff) written with :data:`EPISODE` for the episode id. ``event_id`` is the event's id on both
    paths (default ``<person>-e<n>``): ids built from it (alert keys) then match."""

    at: datetime
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None


@dataclass(frozen=True)
class Consent:
    """The person signs a single TPO consent that day (recorded, then the ``consent.recorded`` event applied);
    ``consent_id`` defaults to ``cn-<person>`` (:data:`EPISODE` in it stands for the episode's id)."""

    at: datetime
    consent_id: str | None = None


@dataclass(frozen=True)
class Acknowledge:
    """Staff take on the escalation of rung ``rung``: its id without the leading ``<episode id>/``."""

    at: datetime
    rung: str


Action = Enroll | Record | Consent | Acknowledge


@dataclass(frozen=True)
class Person:
    """One person's actions, the first an :class:`Enroll`, in time order."""

    ref: str
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Script:
    """A cohort on one pathway, run until ``until`` (deadlines due by then fire)."""

    pathway_id: str
    people: tuple[Person, ...]
    until: datetime


@dataclass
class Replay:
    """Each person's history and what was refused: (person, action index, one-line reason)."""

    histories: dict[str, EpisodeHistory]
    refused: list[tuple[str, int, str]] = field(default_factory=list)


def _consent(person: str, action: Consent, episode_id: str) -> SignedConsent:
    return single_tpo_consent(
        (action.consent_id or f"cn-{person}").replace(EPISODE, episode_id),
        person,
        discloser="Carepath replay program",
        information="SUD diagnosis, medications and referral details",
        signed_on=action.at.date(),
    )


def _event_id(person: str, n: int, action: Record) -> str:
    """The same id on both paths: ids built from events (alert keys) then match."""
    return action.event_id or f"{person}-e{n}"


def _data(action: Record, episode_id: str) -> dict[str, Any]:
    """The event's payload with :data:`EPISODE` replaced by this path's episode id."""
    swapped: dict[str, Any] = _swap(dict(action.data), EPISODE, episode_id)
    return swapped


# ------------------------------------------------------------------------------------------- the service


def _advance(app: App, target: datetime) -> None:
    """Move the clock to ``target``, starting each scheduled deadline run when it comes due (as Prefect would)."""
    clock, scheduler = app.clock, app.scheduler
    assert isinstance(clock, ManualClock) and isinstance(scheduler, MemoryScheduler)
    while (waiting := scheduler.waiting()) and waiting[0].timer.at <= target:
        clock.set(max(waiting[0].timer.at, clock.now()))
        scheduler.run_due(app, clock.now())
    clock.set(max(target, clock.now()))


def through_service(app: App, script: Script) -> Replay:
    """Run ``script`` through the service on ``app`` (an inline app on a :class:`ManualClock`), then read every
    person's history back from the store with :func:`load_histories`."""
    steps = sorted(
        ((a.at, p, n, person.ref, a) for p, person in enumerate(script.people) for n, a in enumerate(person.actions)),
        key=lambda s: s[:3],
    )
    clock = app.clock
    assert isinstance(clock, ManualClock)
    if steps and clock.now() > steps[0][0]:  # time cannot go back: every action would happen late
        raise ValueError(f"the app's clock ({clock.now():%Y-%m-%d %H:%M}) is past the script's first action")
    episodes: dict[str, str] = {}
    refused: list[tuple[str, int, str]] = []
    for at, _p, n, ref, action in steps:
        _advance(app, at)
        try:
            if isinstance(action, Enroll):
                episodes[ref] = enroll(app, script.pathway_id, ref, facts=action.facts)
            elif isinstance(action, Record):
                data = _data(action, episodes[ref])
                record_event(app, episodes[ref], action.name, data, event_id=_event_id(ref, n, action))
            elif isinstance(action, Consent):
                record_consent(app, episodes[ref], _consent(ref, action, episodes[ref]))
            else:
                with Session(app.engine) as session:
                    rung_id = f"{episodes[ref]}/{action.rung}"
                    found = session.exec(select(EscalationRecord).where(EscalationRecord.rung_id == rung_id)).first()
                if found is None or found.id is None:
                    raise EpisodeError(f"rung {action.rung} has not escalated")
                acknowledge(app, found.id, STAFF)
        except (EventRejected, InvalidInput, EpisodeError) as exc:
            refused.append((ref, n, str(exc)))
    _advance(app, script.until)
    with Session(app.engine) as session:
        loaded = {h.id: h for h in load_histories(session, pathway=script.pathway_id)}
    return Replay({ref: loaded[episode] for ref, episode in episodes.items()}, refused)


# ------------------------------------------------------------------------------------------- the pure rules


class _Rules:
    """One person on the pure rules, recording every outcome applied."""

    def __init__(self, plan: Plan, ref: str, episode_id: str) -> None:
        self.plan, self.ref, self.episode_id = plan, ref, episode_id
        self.recorder = HistoryRecorder(plan.pathway_id, plan.version)
        self.state: EpisodeState | None = None
        self.now: datetime | None = None

    def fire_due(self, target: datetime) -> None:
        """Fire each rung due by ``target``, soonest first, at its due time (at once if it was due earlier)."""
        while self.state is not None:
            due = [r for i in self.state.items for r in i.rungs if r.status == "pending" and r.due_at <= target]
            if not due:
                return
            rung = min(due, key=lambda r: r.due_at)
            at = max(rung.due_at, self.now or rung.due_at)
            out = fire_rung(self.plan, self.state, rung.id, at)
            self.recorder.record(out, at)
            self.state, self.now = out.state, at

    def act(self, n: int, action: Action) -> None:
        at = action.at
        if isinstance(action, Enroll):
            out = enroll_rules(self.plan, self.episode_id, at, action.facts)
            out.state.person = self.ref
            self.recorder.record(out, at)
            self.state, self.now = out.state, at
            return
        assert self.state is not None, "the first action must enroll"
        self.now = at
        if isinstance(action, Acknowledge):
            self._acknowledge(f"{self.episode_id}/{action.rung}", at)
            return
        if isinstance(action, Consent):
            consent = _consent(self.ref, action, self.episode_id)
            self.state.consents.append(consent)
            event = Event(id=f"{self.ref}-consent-{n}", name="consent.recorded", data={"consent": consent.id}, at=at)
        else:
            data = _data(action, self.episode_id)
            event = Event(id=_event_id(self.ref, n, action), name=action.name, data=data, at=at)
        out = apply_event(self.plan, self.state, event, at)
        self.recorder.record(out, at, event)
        self.state = out.state

    def _acknowledge(self, rung_id: str, at: datetime) -> None:
        """As the store does: the escalation is acknowledged once and its item's later rungs never fire."""
        raised = {r.rung_id: r for r in self.recorder.history().escalations}.get(rung_id)
        if raised is None:
            raise EpisodeError(f"rung {rung_id} has not escalated")
        if raised.acknowledged_at is not None:
            raise EpisodeError(f"the escalation of rung {rung_id} was already acknowledged")
        self.recorder.acknowledge(rung_id, at)
        assert self.state is not None
        for item in self.state.items:
            if any(r.id == rung_id for r in item.rungs):
                for r in item.rungs:
                    r.status = "cancelled" if r.status == "pending" else r.status


def through_rules(plan: Plan, script: Script) -> Replay:
    """Run ``script`` on the pure rules alone (no store, no service): each person's history from the recorder."""
    histories: dict[str, EpisodeHistory] = {}
    refused: list[tuple[str, int, str]] = []
    for p, person in enumerate(script.people):
        run = _Rules(plan, person.ref, f"ep-rules-{p:06d}")
        for n, action in enumerate(person.actions):
            run.fire_due(action.at)
            try:
                run.act(n, action)
            except (EventRejected, EpisodeError) as exc:
                refused.append((person.ref, n, str(exc)))
            run.fire_due(action.at)  # what came due at once (an alert's first rung)
        run.fire_due(script.until)
        histories[person.ref] = run.recorder.history()
    return Replay(histories, refused)


# ------------------------------------------------------------------------------------------- comparing


def _swap(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {_swap(k, old, new): _swap(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_swap(v, old, new) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: _swap(getattr(value, f.name), old, new) for f in dataclasses.fields(value)}
        )
    return value


def normalised(history: EpisodeHistory, name: str = "EP") -> EpisodeHistory:
    """``history`` with its episode id, wherever it appears (item, rung and handoff ids), replaced by ``name``."""
    swapped: EpisodeHistory = _swap(history, history.id, name)
    return swapped


def normalised_all(replay: Replay, people: Sequence[str]) -> dict[str, EpisodeHistory]:
    """Each person's normalised history."""
    return {ref: normalised(replay.histories[ref]) for ref in people}


# ------------------------------------------------------------------------------------------- a simulated cohort


def from_simulation(scripts: Sequence[Any], until: datetime, *, tag: str = "") -> Script:
    """The script of a simulated cohort (:attr:`engine.simulate.SimulationResult.script`: per person an
    ``episode_id``, ``pathway_id`` and actions of ``kind`` enroll / consent / event / acknowledge) in this module's
    format, so the very same cohort replays through the service. The simulator's event ids are kept (alert keys are
    built from them); its episode id in payloads becomes :data:`EPISODE`; its consent and the ``consent.recorded``
    event after it are one :class:`Consent`, as the service records them.

    ``tag`` is added to each person's ref (``P-SIM-000001-<tag>``): two simulated cohorts number their people
    alike, and in one store a person's consents reach all their episodes, so cohorts replayed into one store need
    people of their own."""
    people = []
    for script in scripts:
        episode, actions = script.episode_id, []
        consented = False
        for n, action in enumerate(script.actions):
            if action.kind == "enroll":
                actions.append(Enroll(action.at, dict(action.data.get("facts", {}))))
            elif action.kind == "consent":
                actions.append(Consent(action.at, action.name.replace(episode, EPISODE)))
                consented = True
            elif action.kind == "acknowledge":
                actions.append(Acknowledge(action.at, action.name.removeprefix(f"{episode}/")))
            elif consented and action.name == "consent.recorded":
                consented = False  # applied by the Consent above
            else:
                data = _swap(dict(action.data), episode, EPISODE)
                actions.append(Record(action.at, action.name, data, event_id=f"{episode}-{n}"))
        people.append(Person(f"{script.person}-{tag}" if tag else script.person, tuple(actions)))
    return Script(scripts[0].pathway_id if scripts else "", tuple(people), until)
