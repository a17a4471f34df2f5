"""The coordinators of :mod:`bench.bench_caseload`: a synthetic caseload from the simulator, and a pool of threads
recording each person's actions when their pathway time comes, through the same use cases the CLI calls.

- :func:`caseload` simulates each shipped pathway's share of the people (``engine.simulate.simulate``, the
  default behaviour model: work done on time, late or never; a fixed seed) and turns each person's script into
  :class:`Step` s: enroll, a signed consent (with its ``consent.recorded``), events, acknowledgements.
- :class:`Coordinators` runs them: each person's steps in order, one at a time, each no earlier than its wall
  time (the store's clock), over one thread per App given (the bench gives one App many times: the coordinators'
  desk, a long-lived process like the API, answering from the store and following up after). A step the service refuses
  (an event no longer expected: the person moved on) is counted, not retried; a step that failed because Carepath
  or Prefect did not answer is tried again every :data:`RETRY_SECONDS` with the same event id, as a coordinator
  sends a command again. Steps not started when the drive ends are counted as not started.
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["GRACE", "RETRY_SECONDS", "Coordinators", "Done", "Person", "Step", "caseload"]

#: A step that failed for want of an answer (Prefect or the store down) is sent again this many seconds later.
RETRY_SECONDS = 5.0
#: At the end of the drive, how long the steps in flight get to answer before they are counted as unanswered.
GRACE = 60.0
#: An acknowledgement of an escalation not raised yet is tried this many times (the escalation may be late).
ACK_TRIES = 6


@dataclass(frozen=True)
class Step:
    """One coordinator action at pathway time ``at``: ``enroll`` (``data``: facts), ``consent``, ``event``
    (``name``, ``data`` with the simulated episode id still in it) or ``acknowledge`` (``name``: the rung id
    without its episode id)."""

    at: datetime
    kind: str
    name: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None


@dataclass
class Person:
    """A synthetic person on one pathway, their steps, and their episode once enrolled."""

    ref: str
    pathway_id: str
    sim_episode: str
    steps: list[Step]
    episode_id: str | None = None
    next: int = 0
    tries: int = 0


@dataclass(frozen=True)
class Done:
    """What one attempt of a step did: ``outcome`` is ``ok``, ``refused`` (the service said no: counted, not
    retried), ``failed`` (no answer: retried) or ``skipped``; ``lag``: wall seconds it started after its time;
    ``took``: how long the call took to answer."""

    kind: str
    outcome: str
    due: float
    started: float
    took: float
    reason: str = ""

    @property
    def lag(self) -> float:
        return self.started - self.due


def caseload(
    pathways: list[Path], people: int, days: int, seed: int, start: datetime, arrivals: timedelta
) -> list[Person]:
    """``people`` synthetic people spread over ``pathways`` (as evenly as they divide), each simulated from
    ``start`` for ``days`` days, arriving within ``arrivals``."""
    from engine.language.loader import load_pathway
    from engine.plan.build import compile_plan
    from engine.simulate import default_model, simulate

    out: list[Person] = []
    for n, path in enumerate(sorted(pathways)):
        share = people // len(pathways) + (1 if n < people % len(pathways) else 0)
        if share == 0:
            continue
        loaded = load_pathway(path)
        if loaded.spec is None:
            raise ValueError(f"{path}: {loaded.diagnostics[0] if loaded.diagnostics else 'not valid'}")
        plan = compile_plan(loaded.spec)
        model = replace(default_model(plan), arrivals_over=arrivals)
        result = simulate(plan, model, share, days, seed + n, start)
        for script in result.script:
            ref = f"P-BENCH-{n}-{script.person.removeprefix('P-SIM-')}"
            out.append(Person(ref, plan.pathway_id, script.episode_id, _steps(ref, script)))
    return out


def _steps(ref: str, script: Any) -> list[Step]:
    """The script's actions as steps; a consent and the ``consent.recorded`` after it are one step, as the
    service records them (``record_consent``)."""
    steps: list[Step] = []
    consented = False
    for n, action in enumerate(script.actions):
        if action.kind == "enroll":
            steps.append(Step(action.at, "enroll", data=dict(action.data.get("facts", {}))))
        elif action.kind == "consent":
            steps.append(Step(action.at, "consent"))
            consented = True
        elif action.kind == "acknowledge":
            steps.append(Step(action.at, "acknowledge", action.name.removeprefix(f"{script.episode_id}/")))
        elif consented and action.name == "consent.recorded":
            consented = False
        else:
            steps.append(Step(action.at, "event", action.name, dict(action.data), event_id=f"{ref}-e{n}"))
    return steps


def _swap(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _swap(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, old, new) for v in value]
    return value


class Coordinators:
    """Records every person's steps at their time on ``threads`` threads until ``until`` (wall, epoch s)."""

    def __init__(self, people: list[Person], apps: list[Any], until: float, to_wall: Callable[[datetime], float]):
        self.people = people
        self.until = until
        self.to_wall = to_wall
        self.done: list[Done] = []
        self.reasons: Counter[str] = Counter()
        self.not_started = 0
        self.unanswered = 0
        self._busy: set[int] = set()
        self._closed = False
        self._apps: queue.Queue[Any] = queue.Queue()
        for app in apps:
            self._apps.put(app)
        self._threads = len(apps)
        self._heap: list[tuple[float, int]] = []
        self._lock = threading.Condition()
        self._finished = threading.Event()

    # ------------------------------------------------------------------------------------------- running

    def run(self) -> None:
        """Drive until ``until``; then wait up to :data:`GRACE` s for the steps in flight to answer (a call that
        hangs, e.g. on a server that died under it, is left behind and counted as ``unanswered``)."""
        work: queue.Queue[tuple[int, float] | None] = queue.Queue()
        for n in range(self._threads):  # daemon threads: a hung call cannot hold the bench at exit
            threading.Thread(target=self._worker, args=(work,), name=f"coordinator-{n}", daemon=True).start()
        with self._lock:
            for index, person in enumerate(self.people):
                self._push(index, self.to_wall(person.steps[0].at))
        while True:
            with self._lock:
                now = time.time()
                if now >= self.until:
                    break
                if not self._heap or len(self._busy) >= self._threads:
                    self._lock.wait(0.2)
                    continue
                due, index = self._heap[0]
                if due > now:
                    self._lock.wait(min(due - now, 0.2))
                    continue
                heapq.heappop(self._heap)
                self._busy.add(index)
            work.put((index, due))
        deadline = time.time() + GRACE
        with self._lock:
            while self._busy and time.time() < deadline:
                self._lock.wait(0.5)
            self._closed = True
            self.unanswered = len(self._busy)
            waiting = [i for _, i in self._heap] + list(self._busy)
            self.not_started = sum(len(self.people[i].steps) - self.people[i].next for i in waiting)
            self.not_started -= self.unanswered  # a step in flight was started
        for _ in range(self._threads):
            work.put(None)
        self._finished.set()

    def _worker(self, work: queue.Queue[tuple[int, float] | None]) -> None:
        while (item := work.get()) is not None:
            self._one(*item)

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    def finished(self) -> bool:
        return self._finished.is_set()

    def behind(self) -> int:
        """People whose next step is due and not started yet (waiting for a free coordinator)."""
        now = time.time()
        with self._lock:
            return sum(1 for due, _ in self._heap if due <= now)

    def snapshot(self) -> list[Done]:
        with self._lock:
            return list(self.done)

    def _push(self, index: int, due: float) -> None:
        heapq.heappush(self._heap, (due, index))
        self._lock.notify_all()

    def _one(self, index: int, due: float) -> None:
        person = self.people[index]
        step = person.steps[person.next]
        app = self._apps.get()
        started = time.time()
        try:
            outcome, reason = self._act(app, person, step)
        except Exception as exc:  # a bug in the bench or an unexpected error: counted, the person moves on
            outcome, reason = "refused", f"unexpected {type(exc).__name__}"
        finally:
            self._apps.put(app)
        took = time.time() - started
        with self._lock:
            if self._closed:  # answered after the drive gave up on it: not counted
                return
            self._busy.discard(index)
            self._lock.notify_all()
            self.done.append(Done(step.kind, outcome, due, started, took, reason))
            if reason:
                self.reasons[f"{step.kind} {outcome}: {reason}"] += 1
            retry = outcome == "failed" or (outcome == "skipped" and person.tries < ACK_TRIES)
            if retry:
                person.tries += 1
                self._push(index, time.time() + RETRY_SECONDS)
                return
            person.tries = 0
            person.next += 1
            if step.kind == "enroll" and outcome != "ok":  # never enrolled: the rest cannot happen
                self.reasons["not enrolled: steps dropped"] += len(person.steps) - person.next
                return
            if person.next >= len(person.steps):
                return
            self._push(index, max(self.to_wall(person.steps[person.next].at), time.time()))

    def _act(self, app: Any, person: Person, step: Step) -> tuple[str, str]:
        """One attempt: (outcome, reason)."""
        from engine.app import acknowledge, enroll, record_event
        from engine.app.safety import record_consent
        from engine.episode.domain.consent import single_tpo_consent
        from engine.errors import EpisodeError, EventRejected, InvalidInput, NotFound, OrchestrationError

        try:
            if step.kind == "enroll":
                found = _enrolled(app, person)  # an earlier attempt that stored the episode and then failed
                person.episode_id = found or enroll(app, person.pathway_id, person.ref, facts=step.data)
                return "ok", ""
            episode = person.episode_id
            if episode is None:
                return "refused", "not enrolled"
            if step.kind == "consent":
                consent = single_tpo_consent(
                    f"cn-{episode}",
                    person.ref,
                    discloser="Carepath bench program",
                    information="SUD diagnosis, medications and referral details",
                    signed_on=app.clock.now().date(),
                )
                if not app.service.consent_known(consent.id):
                    record_consent(app, episode, consent)
                return "ok", ""
            if step.kind == "acknowledge":
                escalation = _escalation(app, f"{episode}/{step.name}")
                if escalation is None:
                    return "skipped", "not raised yet"
                acknowledge(app, escalation, "staff-bench")
                return "ok", ""
            data = _swap(step.data, person.sim_episode, episode)
            record_event(app, episode, step.name, data, event_id=step.event_id)
            return "ok", ""
        except (EventRejected, InvalidInput, NotFound) as exc:
            return "refused", type(exc).__name__
        except OrchestrationError as exc:
            return "failed", _short(str(exc))
        except EpisodeError as exc:
            return ("failed", "received, not applied") if "not applied yet" in str(exc) else ("refused", "EpisodeError")
        except Exception as exc:  # the store locked or gone: a coordinator tries again
            text = str(getattr(exc, "orig", None) or exc)
            return "failed", _short(text.split("[SQL:")[0]) or type(exc).__name__


def _short(text: str) -> str:
    """An error's gist for counting: no ids, no addresses."""
    import re

    flat = re.sub(r"(ep|in)-[0-9a-f]+|[0-9a-f-]{36}|https?://\S+|\d+", "#", " ".join(text.split()))
    return flat[:90]


def _enrolled(app: Any, person: Person) -> str | None:
    from sqlmodel import Session, select

    from engine.store import EpisodeRecord

    with Session(app.engine) as session:
        row = session.exec(
            select(EpisodeRecord.id).where(
                EpisodeRecord.person_ref == person.ref, EpisodeRecord.pathway_id == person.pathway_id
            )
        ).first()
    return row


def _escalation(app: Any, rung_id: str) -> int | None:
    from sqlmodel import Session, select

    from engine.store import EscalationRecord

    with Session(app.engine) as session:
        return session.exec(select(EscalationRecord.id).where(EscalationRecord.rung_id == rung_id)).first()
