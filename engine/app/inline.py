"""In-memory ports: Carepath without Prefect and without a network, for the fast tests and simulations.

:class:`MemoryScheduler` keeps each timer as a run that :meth:`MemoryScheduler.run_due` starts when its wall time
comes (as Prefect's serving process would), and can lose runs or orphan them on purpose (a serving process that
picked runs up and died); :class:`RecordingNotifier` delivers to
contacts given per role and can fail some; :class:`MemoryPublisher` keeps the latest version of each artifact;
:class:`InlineDispatcher` runs each unit of work in the calling thread. :func:`inline_app` wires them together.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.app.context import App
from engine.app.deadlines import deadline_slot
from engine.app.ports import Artifact, RunState, RunView, Timer
from engine.app.settings import Settings
from engine.clock import Clock
from engine.notify.delivery import DeliveryOutcome, DeliveryReport, Notification

if TYPE_CHECKING:
    from engine.app.ports import SweepReport

__all__ = [
    "InlineDispatcher",
    "MemoryPublisher",
    "MemoryRun",
    "MemoryScheduler",
    "RecordingNotifier",
    "inline_app",
]


_UNFINISHED = ("scheduled", "pending", "running", "cancelling")


@dataclass
class MemoryRun:
    """A scheduled run of a deadline: ``state`` is ``scheduled``, ``pending``, ``running`` or ``cancelling`` until it
    is ``cancelled``, ``completed``, ``crashed`` or ``lost``; ``since`` is the wall time it entered that state."""

    id: str
    timer: Timer
    state: str = "scheduled"
    since: datetime | None = None


class MemoryScheduler:
    """Scheduled runs in memory, one per rung id (the same rung scheduled twice is the same run); ``runs`` maps each
    rung id to its run. With ``shared``, as Prefect's: the rungs of a pathway due in the same wall minute share one
    run, made for the minute's start, which a run already under way does not take (see ``run_due``)."""

    def __init__(self, *, shared: bool = False) -> None:
        self.runs: dict[str, MemoryRun] = {}
        self.shared = shared
        self._batches: dict[tuple[str, datetime], MemoryRun] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def schedule(self, timers: Sequence[Timer]) -> dict[str, str]:
        out = {}
        with self._lock:
            for timer in timers:
                run = self.runs.get(timer.rung_id)
                if run is None or (self.shared and run.state != "scheduled"):
                    run = self.runs[timer.rung_id] = self._run_for(timer)
                out[timer.rung_id] = run.id
        return out

    def _run_for(self, timer: Timer) -> MemoryRun:
        if not self.shared:
            return MemoryRun(f"run-{next(self._ids)}", timer)
        key = (timer.pathway_id, deadline_slot(timer.at))
        run = self._batches.get(key)
        if run is None or run.state != "scheduled":
            slot = replace(timer, at=key[1])
            run = self._batches[key] = MemoryRun(f"run-{next(self._ids)}", slot)
        return run

    def cancel(self, run_ids: Sequence[str], *, met: bool = False) -> int:
        """A waiting run is cancelled (met or not); a picked-up one becomes ``cancelling`` (its serving process
        would stop it)."""
        wanted, done = set(run_ids), 0
        with self._lock:
            for run in self._all():
                if run.id in wanted and run.state in ("scheduled", "pending", "cancelling"):
                    run.state = "cancelled" if run.state == "scheduled" else "cancelling"
                    done += 1
        return done

    def unfinished(self, *, include_scheduled: bool, limit: int) -> list[RunView]:
        states = _UNFINISHED if include_scheduled else _UNFINISHED[1:]
        with self._lock:
            runs = sorted((r for r in self._all() if r.state in states), key=lambda r: r.timer.at)
        return [self._view(r) for r in runs[:limit]]

    def requeue(self, run_ids: Sequence[str]) -> int:
        return self._move(run_ids, {"pending": "scheduled"})

    def end(self, run_ids: Sequence[str]) -> int:
        return self._move(run_ids, {"pending": "cancelled", "cancelling": "cancelled", "running": "crashed"})

    def orphan(self, predicate: Callable[[MemoryRun], bool], state: RunState, since: datetime) -> int:
        """A serving process took matching waiting runs to ``state`` (picked up, or started) and died."""
        with self._lock:
            runs = [r for r in self._all() if r.state == "scheduled" and predicate(r)]
            for run in runs:
                run.state, run.since = state, since
        return len(runs)

    def _move(self, run_ids: Sequence[str], moves: dict[str, str]) -> int:
        wanted, done = set(run_ids), 0
        with self._lock:
            for run in self._all():
                if run.id in wanted and run.state in moves:
                    run.state, done = moves[run.state], done + 1
        return done

    @staticmethod
    def _view(run: MemoryRun) -> RunView:
        state: RunState = run.state  # type: ignore[assignment]
        return RunView(run.id, state, run.since or run.timer.at, run.timer.at)

    def _all(self) -> list[MemoryRun]:
        """Each run once (a shared run is the run of several rungs)."""
        return list({id(r): r for r in self.runs.values()}.values())

    def waiting(self) -> list[MemoryRun]:
        """Runs still scheduled, soonest first."""
        return sorted((r for r in self._all() if r.state == "scheduled"), key=lambda r: r.timer.at)

    def lose(self, predicate: Callable[[MemoryRun], bool] = lambda _run: True) -> int:
        """Lose scheduled runs (a server that dropped them): nothing will start them."""
        lost = [r for r in self.waiting() if predicate(r)]
        for run in lost:
            run.state = "lost"
        return len(lost)

    def run_due(self, app: App, wall_now: datetime) -> int:
        """Start every scheduled run whose time has come (as Prefect would), oldest first; returns how many."""
        from engine.app.deadlines import fire_due_of_run
        from engine.app.episodes import fire

        started = 0
        while True:
            due = [r for r in self.waiting() if r.timer.at <= wall_now]
            if not due:
                return started
            run = due[0]
            run.state = "completed"
            started += 1
            if not self.shared:
                fire(app, run.timer.rung_id)
                continue
            step = fire_due_of_run(app, run.id)  # Prefect's run loops until its last rung: it ends when that fired
            if step.wait is not None:  # it waits for its next rung (counted again when that comes due)
                run.state, run.timer = "scheduled", replace(run.timer, at=wall_now + timedelta(seconds=step.wait))


@dataclass
class Sent:
    """One message a contact received."""

    contact: str
    notification: Notification
    at: datetime


class RecordingNotifier:
    """Delivers to ``contacts`` (role -> contact names); contacts in ``failing`` fail every attempt."""

    def __init__(self, contacts: Mapping[str, Sequence[str]], failing: Sequence[str] = ()) -> None:
        self.contacts = {role: list(names) for role, names in contacts.items()}
        self.failing = set(failing)
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def deliver(
        self,
        notification: Notification,
        *,
        already_delivered: set[str],
        on_outcome: Callable[[DeliveryOutcome], None],
    ) -> DeliveryReport:
        rung, role = notification.rung_id, notification.role
        names = self.contacts.get(role, [])
        if not names:
            outcome = DeliveryOutcome(
                f"{rung}@-", rung, role, None, "", "no-contact", 0, f"no contact for role '{role}' in the roster"
            )
            on_outcome(outcome)
            return DeliveryReport(rung, notification.episode_id, role, (outcome,))
        outcomes = []
        for index, name in enumerate(names):
            key = f"{rung}@{role}[{index}]"
            if key in already_delivered:
                outcome = DeliveryOutcome(key, rung, role, name, name, "skipped", 0)
            elif name in self.failing:
                outcome = DeliveryOutcome(key, rung, role, name, name, "failed", 3, "refused by test")
            else:
                now = datetime.now(UTC)
                with self._lock:
                    self.sent.append(Sent(name, notification, now))
                outcome = DeliveryOutcome(key, rung, role, name, name, "delivered", 1, None, now)
            on_outcome(outcome)
            outcomes.append(outcome)
        return DeliveryReport(rung, notification.episode_id, role, tuple(outcomes))


@dataclass
class MemoryPublisher:
    """The latest version of each artifact, by key; ``calls`` counts the publishing calls (a batch is one)."""

    artifacts: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    calls: int = 0

    def publish(self, artifacts: Sequence[Artifact]) -> None:
        self.calls += 1
        for artifact in artifacts:
            content = artifact.content
            self.artifacts[artifact.key] = content if isinstance(content, str) else [dict(r) for r in content]
            self.versions[artifact.key] = self.versions.get(artifact.key, 0) + 1


class InlineDispatcher:
    """Runs enrollments, events and sweeps in the calling thread, exactly as their flow runs would; ``sweeps``
    counts the sweep passes dispatched (what would be visible flow runs)."""

    def __init__(self) -> None:
        self.app: App | None = None
        self.sweeps = 0

    def ready(self) -> None:
        return None

    def enroll(self, pathway_id: str, version: int, episode_id: str) -> None:
        from engine.app.episodes import follow_up_enrollment

        assert self.app is not None
        follow_up_enrollment(self.app, episode_id)

    def event(self, pathway_id: str, version: int, episode_id: str, event: str, inbound_id: str) -> None:
        from engine.app.episodes import process_event

        assert self.app is not None
        process_event(self.app, inbound_id)

    def acknowledged(self, episode_id: str, escalation_id: int, run_ids: list[str]) -> None:
        from engine.app.episodes import follow_up_acknowledgement

        assert self.app is not None
        follow_up_acknowledgement(self.app, run_ids)

    def flush(self, timeout: float | None = None) -> bool:
        return True  # nothing waits: each follow-up ran in its caller's thread

    def sweep(self) -> SweepReport:
        from engine.app.sweep import sweep

        assert self.app is not None
        self.sweeps += 1
        return sweep(self.app)


def inline_app(
    settings: Settings,
    clock: Clock,
    *,
    notifier: Any | None = None,
    scheduler: MemoryScheduler | None = None,
) -> App:
    """Carepath with in-memory ports on ``settings``' store, running on ``clock``."""
    dispatcher = InlineDispatcher()
    app = App(
        settings=settings,
        scheduler=scheduler or MemoryScheduler(),
        notifier=notifier or RecordingNotifier({}),
        publisher=MemoryPublisher(),
        dispatcher=dispatcher,
        fixed_clock=clock,
    )
    dispatcher.app = app
    return app
