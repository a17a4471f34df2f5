"""A deadline run's body: fire every rung linked to the run as each comes due.

One scheduled run carries every rung of a pathway that falls due in the same wall minute (see
:class:`engine.orchestration.adapters.PrefectScheduler`): a thousand deadlines in a minute cost one process start,
not a thousand. The run finds its rungs by its own id in the store (the store is the truth; a rung that joins the
run while it is waiting is found too), fires those due, and is told how long to wait for the next. Each rung is
fired by :func:`engine.app.episodes.fire`, exactly as a run of its own would: at most one escalation per rung, then
the episode's follow-up. A rung the run never got to (its process died) is fired by the sweep.

Joining a run and the run's look at the store are not one step: a follow-up finds the minute's run not started,
and links its rung a moment later, when the run may already have looked. :class:`DeadlineRun` closes that gap: a
waiting run looks again every :data:`LOOK_AGAIN` seconds, and a run with nothing left to wait for closes itself to
new rungs in the store (a rung scheduled into it after that is refused and goes to its minute's next run, see
:func:`engine.app.followup.schedule_timers`) and looks once more before it ends. Measured (SQLite, 1,000 episodes
at 1440x): 30 of the 47 rungs escalated 10 s or more late had been linked to a run that had already ended, and
waited for the sweep (20-43 s late).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from engine import store
from engine.app.context import App
from engine.app.episodes import fire
from engine.app.followup import FollowUp, batched
from engine.app.publish import Later
from engine.app.side_by_side import side_by_side
from engine.app.views import when
from engine.clock import utc
from engine.store.mapper import Changes

__all__ = [
    "DEADLINE_SLOT",
    "FIRING_AT_ONCE",
    "LOOK_AGAIN",
    "MAX_EARLY_WAIT",
    "MET_OUTCOME",
    "OUTCOMES",
    "Behind",
    "DeadlineRun",
    "RunStep",
    "all_met",
    "close_run",
    "deadline_slot",
    "fire_due_of_run",
    "run_listing",
]

logger = logging.getLogger("carepath.deadlines")

#: The wall time one deadline run covers: every rung of a pathway due in the same minute shares a run.
DEADLINE_SLOT = timedelta(minutes=1)

#: At most this many episodes' due rungs are fired at once by one pass of a run (each firing mostly waits on its
#: contacts' delivery and on the store).
FIRING_AT_ONCE = 4

#: A run waits up to this many wall seconds for its next rung's time; a rung due later is left to the sweep.
MAX_EARLY_WAIT = 120.0

#: A waiting run looks at the store again at least this often (wall seconds): a rung linked to it after its last
#: look is fired at its time, not when the run next meant to wake.
LOOK_AGAIN = 2.0

#: What the listing says of a rung, by its status once the run is done (a cancelled one whose work was done:
#: :data:`MET_OUTCOME`).
OUTCOMES = {"fired": "escalated", "cancelled": "closed before due (acknowledged or ended)", "pending": "pending"}
MET_OUTCOME = "met before due"


@dataclass
class RunStep:
    """What one pass over a run's rungs did, and how long (wall seconds) until the next of them is due (None: no
    rung of the run is still waiting)."""

    fired: list[tuple[Changes, FollowUp]] = field(default_factory=list)
    wait: float | None = None


def deadline_slot(at: datetime) -> datetime:
    """The start of the wall minute ``at`` falls in (:data:`DEADLINE_SLOT`): when the run that fires it starts."""
    return at.replace(second=0, microsecond=0)


def fire_due_of_run(app: App, run_id: str, *, later: Later | None = None) -> RunStep:
    """Fire the run's pending rungs that are due now, oldest first within an episode; report when the next one is
    due. Episodes are fired side by side (at most :data:`FIRING_AT_ONCE`): each firing waits on its contacts'
    delivery, and one slow or retried contact must not hold every other escalation of the minute. The pass's
    scheduling and publishing go to ``later`` when given (see :func:`engine.app.followup.batched`), so the run can
    fire the rungs that come due meanwhile."""
    step = RunStep()
    with Session(app.engine) as session:
        pending = [r for r in store.linked_rungs(session, run_id) if r.status == "pending"]
    now = app.clock.now()
    by_episode: dict[str, list[str]] = {}
    for rung in pending:
        if utc(rung.due_at) <= now:
            by_episode.setdefault(rung.episode_id, []).append(rung.rung_id)
    # scheduling and the program's tables once per pass, not once per rung; a look that fires nothing only reads
    with batched(app, later=later) if by_episode else contextlib.nullcontext():
        groups = by_episode.values()
        for fired in side_by_side(lambda rungs: [fire(app, r) for r in rungs], groups, FIRING_AT_ONCE, "fire"):
            step.fired.extend(result for result in fired if result is not None)
    ahead = [utc(r.due_at) for r in pending if utc(r.due_at) > now]
    if ahead:
        clock = app.clock
        step.wait = (clock.wall_time(min(ahead)) - clock.wall_time(clock.now())).total_seconds()
    return step


def close_run(app: App, run_id: str) -> None:
    """From now on no rung joins this run: :func:`engine.store.set_rung_run` refuses it, as for a run being
    cancelled. The run looks at the store once more after this, so a rung linked before it is still fired."""
    with store.session_scope(app.engine) as session:
        store.release_runs(session, [run_id], app.clock.wall_time(app.clock.now()))


class DeadlineRun:
    """A deadline run's passes from its start to its end: each :meth:`step` fires what is due and says how long to
    wait before the next (``wait``), or that the run is done (``wait`` None).

    While a rung of the run is due within :data:`MAX_EARLY_WAIT`, the run waits for it, looking again at least
    every :data:`LOOK_AGAIN` seconds. With nothing left to wait for it closes itself (:func:`close_run`) and looks
    once more; it ends when a look after closing fired nothing and found nothing to wait for."""

    def __init__(self, app: App, run_id: str, *, later: Later | None = None) -> None:
        self.app, self.run_id, self.later = app, run_id, later
        self.closed = False

    def step(self) -> RunStep:
        step = fire_due_of_run(self.app, self.run_id, later=self.later)
        if step.wait is not None and step.wait <= MAX_EARLY_WAIT:
            step.wait = min(step.wait, LOOK_AGAIN)
            return step
        if self.closed and not step.fired:
            step.wait = None
            return step
        close_run(self.app, self.run_id)
        self.closed = True
        step.wait = 0.0  # look once more, at once: a rung may have been linked since this pass read the store
        return step


class Behind:
    """A run's follow-through behind its firing: one thread that does each pass's scheduling and publishing (handed
    over as :data:`~engine.app.publish.Later`) in order, each in a copy of the context it was handed over in (the
    run's Prefect context: the artifacts are linked to the run). :meth:`close` waits for all of it."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carepath-behind")
        self._done: list[Future[None]] = []

    def __call__(self, work: Callable[[], None]) -> None:
        self._done.append(self._pool.submit(contextvars.copy_context().run, work))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for future in self._done:
            if (exc := future.exception()) is not None:  # the sweep schedules and publishes what this left
                logger.error("a deadline run's follow-through failed: %s: %s", type(exc).__name__, exc)


def run_listing(app: App, run_id: str) -> list[dict[str, str]]:
    """The run's rungs as operators read them (opaque ids and the pathway's words): one row per rung."""
    with Session(app.engine) as session:
        rungs = store.linked_rungs(session, run_id)
    return [
        {
            "episode": r.episode_id,
            "work": r.title,
            "rung": str(r.index + 1),
            "role": r.role,
            "severity": r.severity,
            "due": when(app.clock, r.due_at),
            "outcome": MET_OUTCOME if r.met else OUTCOMES.get(r.status, r.status),
        }
        for r in rungs
    ]


def all_met(listing: list[dict[str, str]]) -> bool:
    """Whether every rung the run carried was met before due: the run ends ``Met``, as a run ended while it still
    waited does, however far it had got (picked up, waiting for its time, running)."""
    return bool(listing) and all(row["outcome"] == MET_OUTCOME for row in listing)
