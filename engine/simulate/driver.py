"""One simulated person, event-driven: a heap of what happens next, fed to the pure episode rules.

The heap holds the person's scheduled events, the rungs of their open work and their acknowledgements; nothing is
polled. At equal times a due rung fires before an event, and an event before an acknowledgement (a deadline passes
as the clock reaches it, as the service's follow-up fires what is due). Every draw comes from a stream of its own
(``seed/person/purpose``: the acceptance of handoffs, the timing of contacts, ...), so two versions of a pathway
simulated on the same seed give the same person the same draws wherever their events agree.

The default rule for an event the model does not name (README, *Simulating a cohort*):

- the event a work item waits for (its ``done_on``) happens with chance ``work.p`` (0.9), uniformly between the
  item's opening and 1.2 times its deadline, so about one in six of those done are late; a handoff's steps and its
  authorization follow one another in deadline order (each from when the one before it was met, so a missed step
  stops the ones after it); a reconciliation is the two medication lists;
- leaving a stage: the first event of the pathway's moves out of the stage happens, uniformly within the stage's
  ``expected_duration`` (``min`` to ``max``; twice ``min`` without ``max``, half ``max`` without ``min``; 7 to 28 days
  without either); other ways out happen only when the model names them (chance per stage visit, delay from entry).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.episode.copying import structural_copy
from engine.episode.domain.consent import single_tpo_consent
from engine.episode.history import EpisodeHistory, HistoryRecorder
from engine.episode.rules import EpisodeState, Event, Outcome, WorkItem, apply_event, enroll, fire_rung
from engine.errors import EventRejected
from engine.language.spans import nominal
from engine.plan.model import Plan
from engine.simulate.model import Behaviour, BehaviourModel, Delay
from engine.simulate.payloads import medication_names, pick, synthetic_payload

__all__ = ["Action", "PersonResult", "PersonScript", "simulate_person"]

_RUNG, _EVENT, _ACK = 0, 1, 2
_SILENT = frozenset({"stay", "timeout", "alert"})
#: A handoff's steps and its insurance authorization happen one after another, in deadline order.
_CHAINED = frozenset({"handoff-step", "authorization"})
_WEEK = 7 * 86400.0


@dataclass(frozen=True)
class Action:
    """One thing the replay does: ``enroll`` (``data``: person, facts), ``consent`` (``data``: the consent's
    fields), ``event`` (``name``, ``data``) or ``acknowledge`` (``name``: the rung id), at ``at``. Ids in ``data``
    and rung ids start with the simulated episode id: a replay substitutes the store's."""

    kind: str
    at: datetime
    name: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PersonScript:
    """A person's time-ordered actions, enough to replay the same episode through the service and the store."""

    person: str
    episode_id: str
    pathway_id: str
    pathway_version: int
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class PersonResult:
    """What one person's simulation produced: the history the measures read, the script, and where they ended
    (stage, and the open work past its deadline at the end: where the episode stalls)."""

    history: EpisodeHistory
    script: PersonScript
    stage: str
    status: str
    overdue: tuple[str, ...]
    refused: dict[str, int]


def _stay(plan: Plan, stage: str) -> Delay:
    sp = plan.stages[stage]
    lo = nominal(sp.min_stay).total_seconds() if sp.min_stay is not None else None
    hi = nominal(sp.max_stay).total_seconds() if sp.max_stay is not None else None
    if lo is not None and hi is not None:
        return Delay("uniform", lo, hi)
    if lo is not None:
        return Delay("uniform", lo, 2 * lo)
    if hi is not None:
        return Delay("uniform", hi / 2, hi)
    return Delay("uniform", 7 * 86400.0, 28 * 86400.0)


class _Person:
    def __init__(self, plan: Plan, model: BehaviourModel, seed: int, index: int, start: datetime, end: datetime):
        self.plan, self.model, self.seed, self.index, self.end = plan, model, seed, index, end
        self.person, self.episode_id = f"P-SIM-{index + 1:06d}", f"ep-sim-{index + 1:06d}"
        self.streams: dict[str, random.Random] = {}
        self.heap: list[tuple[datetime, int, int, str, Any]] = []
        self.seq = 0
        self.actions: list[Action] = []
        self.refused: Counter[str] = Counter()
        self.scheduled: set[str] = set()
        self.recorder = HistoryRecorder(plan.pathway_id, plan.version)
        names = medication_names(plan)
        meds = self.rng("medications")
        self.moud = meds.choice(names) if names and meds.random() < model.on_moud else None
        window = min(model.arrivals_over, end - start)  # everyone arrives within the simulation
        arrival = self.rng("arrival").uniform(0, window.total_seconds())
        self.enrolled_at = start + timedelta(minutes=int(arrival // 60))
        self.state: EpisodeState

    def rng(self, purpose: str) -> random.Random:
        found = self.streams.get(purpose)
        if found is None:
            found = self.streams[purpose] = random.Random(f"{self.seed}/{self.index}/{purpose}")
        return found

    def push(self, at: datetime, order: int, kind: str, payload: Any) -> None:
        if at <= self.end:
            self.seq += 1
            heapq.heappush(self.heap, (at, order, self.seq, kind, payload))

    # ------------------------------------------------------------------------------------------------ the run

    def run(self) -> PersonResult:
        now = self.enrolled_at
        facts = {name: pick(self.rng("facts"), w) for name, w in self.model.enrollment_facts.items() if w}
        out = enroll(self.plan, self.episode_id, now, facts)
        out.state.person = self.person
        self.state = out.state
        self.actions.append(Action("enroll", now, data={"person": self.person, "facts": facts}))
        self.react(out, now, None)
        self.plan_exits(now)
        if self.rng("consent").random() < self.model.consent:
            self.consent(now)
        if self.model.relapse_event and self.model.relapse_per_week > 0:
            self.next_relapse(now)
        while self.heap:
            at, _, _, kind, payload = heapq.heappop(self.heap)
            if self.state.status != "active" and kind != "ack":
                continue
            if kind == "rung":
                self.fire(payload, at)
            elif kind == "event":
                self.event(at, *payload)
            elif kind == "ack":
                self.acknowledge(payload, at)
            elif kind == "relapse":
                self.relapse(at)
        return self.result()

    def result(self) -> PersonResult:
        state = self.state
        overdue = tuple(
            sorted(i.key for i in state.items if i.kind != "alert" and i.status == "open" and i.due_at < self.end)
        )
        script = PersonScript(
            self.person, self.episode_id, self.plan.pathway_id, self.plan.version, tuple(self.actions)
        )
        history = self.recorder.history()
        return PersonResult(history, script, state.stage, state.status, overdue, dict(self.refused))

    # --------------------------------------------------------------------------------------------- happenings

    def apply(self, name: str, data: dict[str, Any], at: datetime) -> Outcome | None:
        event = Event(id=f"{self.episode_id}-{len(self.actions)}", name=name, data=data, at=at)
        try:
            out = apply_event(self.plan, self.state, event, at)
        except EventRejected:
            self.refused[name] += 1
            return None
        self.state = out.state
        self.actions.append(Action("event", at, name, data))
        self.react(out, at, event)
        return out

    def event(self, at: datetime, name: str, data: dict[str, Any], guard: tuple[str, Any]) -> None:
        kind, value = guard
        if kind == "visit" and value != self.state.visit:
            return  # a way out of a stage the person has already left
        if kind == "item":
            if not any(i.id == value for i in self.state.items):
                return  # the work ended some other way
            if name == "consent.recorded":
                return self.consent(at)
            if name == "medications.reconciled":
                return self.medication_lists(at)
        self.apply(name, data, at)

    def consent(self, at: datetime) -> None:
        consent = single_tpo_consent(
            f"cn-{self.episode_id}-{len(self.state.consents) + 1}",
            self.person,
            discloser="Carepath simulated program",
            information="SUD diagnosis, current medications, referral details",
            signed_on=at.date(),
        )
        self.state = structural_copy(self.state)
        self.state.consents = [*self.state.consents, consent]
        self.actions.append(Action("consent", at, consent.id, consent.model_dump(mode="json")))
        self.apply("consent.recorded", {"consent": consent.id}, at)

    def medication_lists(self, at: datetime) -> None:
        sending = [{"name": self.moud}] if self.moud else [{"name": "ibuprofen"}]
        omitted = self.rng("receiving").random() < self.model.receiving_omits
        receiving = [m for m in sending if not (omitted and m["name"] == self.moud)]
        self.apply("medications.sending-list", {"medications": sending}, at)
        self.apply("medications.receiving-list", {"medications": receiving}, at)

    def fire(self, rung_id: str, at: datetime) -> None:
        if not any(r.id == rung_id and r.status == "pending" for i in self.state.items for r in i.rungs):
            return  # met, cancelled or acknowledged since it was scheduled
        out = fire_rung(self.plan, self.state, rung_id, at)
        if out.fired_rungs:
            self.state = out.state
            self.react(out, at, None)

    def acknowledge(self, rung_id: str, at: datetime) -> None:
        """As the service does: the escalation is acknowledged and its item's pending rungs never fire."""
        self.recorder.acknowledge(rung_id, at)
        self.actions.append(Action("acknowledge", at, rung_id))
        item = next((i for i in self.state.items if any(r.id == rung_id for r in i.rungs)), None)
        if item is not None and any(r.status == "pending" for r in item.rungs):
            self.state = structural_copy(self.state)
            for r in next(i for i in self.state.items if i.id == item.id).rungs:
                r.status = "cancelled" if r.status == "pending" else r.status

    def next_relapse(self, now: datetime) -> None:
        rate = self.model.relapse_per_week / _WEEK
        self.push(now + timedelta(seconds=self.rng("relapse").expovariate(rate)), _EVENT, "relapse", None)

    def relapse(self, at: datetime) -> None:
        name = self.model.relapse_event
        assert name is not None
        if self.plan.transitions_on(self.state.stage, name) or any(i.done_on == name for i in self.state.items):
            self.apply(name, self.payload(name, at, None), at)
        self.next_relapse(at)

    # ------------------------------------------------------------------------------------------------ reacting

    def payload(self, name: str, at: datetime, match: dict[str, str] | None) -> dict[str, Any]:
        b = self.model.events.get(name)
        return synthetic_payload(
            self.plan, name, self.rng(f"data:{name}"), weights=b.data if b else {}, facts=self.state.facts,
            moud=self.moud, at=at, since=self.enrolled_at, match=match,
        )  # fmt: skip

    def react(self, out: Outcome, now: datetime, event: Event | None) -> None:
        self.recorder.record(out, now, event)
        for item in out.opened:
            for rung in item.rungs:
                if rung.status == "pending":
                    self.push(max(rung.due_at, now), _RUNG, "rung", rung.id)
            self.plan_work(item, now)
        for esc in out.escalations:
            ack = self.model.acknowledge
            draw = self.rng("acknowledge")
            if draw.random() < ack.p and ack.after is not None:
                self.push(esc.raised_at + ack.after.draw(draw), _ACK, "ack", esc.rung_id)
        for item in out.closed:
            if item.kind in _CHAINED and item.status == "done":
                nxt = self.next_step(item.handoff_id)
                if nxt is not None:
                    self.plan_work(nxt, now)
        if out.moved is not None and self.state.status == "active":
            self.plan_exits(now)

    def next_step(self, handoff_id: str | None) -> WorkItem | None:
        steps = [i for i in self.state.items if i.kind in _CHAINED and i.handoff_id == handoff_id]
        return min(steps, key=lambda i: (i.due_at, i.key)) if steps else None

    def plan_work(self, item: WorkItem, now: datetime) -> None:
        if item.kind in _SILENT or item.id in self.scheduled:
            return
        first = self.next_step(item.handoff_id) if item.kind in _CHAINED else None
        if first is not None and first.id != item.id:
            return  # steps follow one another: this one is planned when the one before it is met
        self.scheduled.add(item.id)
        name = {"reconcile": "medications.reconciled", "re-engagement": "handoff.move"}.get(item.kind, item.done_on)
        b = self.model.events.get(name)
        draw = self.rng(f"event:{name}")
        if draw.random() >= (b.p if b is not None else self.model.work_p):
            return
        base = max(now, item.opened_at)
        window = max((item.due_at - base).total_seconds(), 0.0)
        delay = b.after if b is not None and b.after is not None else Delay("uniform", 0.0, 1.2 * window)
        at = base + delay.draw(draw)
        data: dict[str, Any] = {}
        if item.kind == "re-engagement":
            data = {"action": "keep", "party": "receiver"}
        elif name not in ("consent.recorded", "medications.reconciled"):
            data = self.payload(name, at, dict(item.match))
        self.push(at, _EVENT, "event", (name, data, ("item", item.id)))

    def plan_exits(self, now: datetime) -> None:
        state = self.state
        names = list(dict.fromkeys(e for t in self.plan.transitions if state.stage in t.sources for e in t.on_events))
        for n, name in enumerate(names):
            b: Behaviour | None = self.model.events.get(name)
            if b is None and n > 0:
                continue
            draw = self.rng(f"exit:{name}")
            if draw.random() >= (b.p if b is not None else 1.0):
                continue
            delay = b.after if b is not None and b.after is not None else _stay(self.plan, state.stage)
            at = now + delay.draw(draw)
            self.push(at, _EVENT, "event", (name, self.payload(name, at, None), ("visit", state.visit)))


def simulate_person(
    plan: Plan, model: BehaviourModel, seed: int, index: int, start: datetime, end: datetime
) -> PersonResult:
    """Person ``index`` of the cohort of ``seed``, from enrollment (within the model's arrival window) to ``end``."""
    return _Person(plan, model, seed, index, start, end).run()
