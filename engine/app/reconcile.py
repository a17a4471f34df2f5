"""The reconciler: brings the scheduler's runs back into agreement with the store after a crash.

The store is the truth; a timer's run only carries it out. Crashes leave two kinds of disagreement, and each
would otherwise last for ever (or until a run due in days starts a process for nothing):

- a run waits, but no rung linked to it is pending any more: an event met the deadline, then its process died
  before cancelling the run (or a later rung fired, or the episode ended). It is **cancelled**;
- a run no process will finish: picked up (``pending``) by a serving process or a server that died, being
  cancelled (``cancelling``) with no serving process left to do it, or ``running`` in a process that died. A
  picked-up run of a rung still pending is **requeued** (it runs again; the flow re-checks the store, so it
  escalates at most once); any other such run is **ended** (cancelled, or crashed when it was running).

A live serving process holds a picked-up run for up to its prefetch window plus a process start (a minute on a
loaded 2-core machine), hence the bounds below; acting too early costs one wasted process, never a double alert.
Runs no rung of this store is linked to (another store's, or one being linked right now) are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from engine import store
from engine.app.context import App
from engine.app.followup import release_runs
from engine.app.ports import RunView

__all__ = ["PICKED_UP_STUCK", "RUNNING_STUCK", "ReconcilePlan", "plan", "reconcile"]

#: A run picked up (or being cancelled) this long after its time, with no progress, belongs to a dead process.
PICKED_UP_STUCK = timedelta(seconds=120)
#: A deadline run takes seconds (delivery retries included); one running this long lost its process.
RUNNING_STUCK = timedelta(minutes=15)
#: Runs examined per pass (the scheduler's listing is paged).
LIMIT = 1000


@dataclass(frozen=True)
class ReconcilePlan:
    """What a reconcile pass would do: run ids to cancel, to requeue, to end."""

    cancel: tuple[str, ...] = ()
    requeue: tuple[str, ...] = ()
    end: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.cancel or self.requeue or self.end)


@dataclass
class _Builder:
    cancel: list[str] = field(default_factory=list)
    requeue: list[str] = field(default_factory=list)
    end: list[str] = field(default_factory=list)


def plan(app: App, *, include_scheduled: bool, limit: int = LIMIT) -> ReconcilePlan:
    """Compare the scheduler's unfinished runs with the store; raises if the scheduler cannot be read."""
    runs = app.scheduler.unfinished(include_scheduled=include_scheduled, limit=limit)
    if not runs:
        return ReconcilePlan()
    with Session(app.engine) as session:
        needs = store.run_needs(session, (r.run_id for r in runs))
    wall_now = app.clock.wall_time(app.clock.now())
    out = _Builder()
    for run in runs:
        if run.run_id in needs:  # else another store's run, or one created a moment ago and not linked yet
            _decide(run, needs[run.run_id], wall_now, out)
    return ReconcilePlan(tuple(out.cancel), tuple(out.requeue), tuple(out.end))


def _decide(run: RunView, live: bool, wall_now: datetime, out: _Builder) -> None:
    if run.state == "scheduled":
        if not live:
            out.cancel.append(run.run_id)
    elif run.state == "pending":
        if wall_now - max(run.since, run.at or run.since) >= PICKED_UP_STUCK:
            (out.requeue if live else out.end).append(run.run_id)
        elif not live:
            out.cancel.append(run.run_id)  # its serving process is alive: it stops the waiting child
    elif run.state == "cancelling":
        if wall_now - run.since >= PICKED_UP_STUCK:
            out.end.append(run.run_id)
    elif run.state == "running" and wall_now - run.since >= RUNNING_STUCK:
        out.end.append(run.run_id)


def reconcile(app: App, *, include_scheduled: bool, limit: int = LIMIT) -> tuple[int, int, int]:
    """Carry out :func:`plan`; returns how many runs were (cancelled, requeued, ended)."""
    todo = plan(app, include_scheduled=include_scheduled, limit=limit)
    cancelled = release_runs(app, list(todo.cancel), checked=True)
    requeued = app.scheduler.requeue(list(todo.requeue)) if todo.requeue else 0
    ended = app.scheduler.end(list(todo.end)) if todo.end else 0
    return cancelled, requeued, ended
