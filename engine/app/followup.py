"""The follow-up: what must happen after *any* change to an episode, whatever triggered it.

An event, a deadline run, the sweep, a coordinator's command and the API all end here, so no trigger can forget a
step (the sweep once raised escalations it never delivered). In order:

1. fire at once every rung of the episode that is already due (an alert's rungs are due when raised, so every
   ``critical_to`` role is alerted in the same run that found the problem; a deadline found late fires now);
2. deliver every escalation raised, concurrently, storing each contact's outcome;
3. cancel the runs of rungs that closed or fired here, unless another pending rung still needs the run (a deadline
   run carries every rung of its pathway due in its minute); a deadline met in time ends ``Met``;
4. schedule the next rung of each open work item that has no run yet;
5. publish the episode's artifacts (and the open-escalations table when escalations changed, the program overview
   when any work opened an escalation or closed).

A Prefect outage in steps 3-5 does not undo 1-2: it is logged, reported, and the sweep finishes the job. Inside
:func:`without_prefect` (a sweep pass run in the serving process because Prefect is down) steps 3-5 are not tried:
each would only fail, and a failing call waits on the client's retries (a pass took 6 s instead of under one, so
rungs due during a Prefect outage at 10,000 episodes fired in waves, up to 20 s late); the first pass through
Prefect again finds that work in the store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial

from sqlmodel import Session

from engine import store
from engine.app.context import App
from engine.app.delivery import deliver
from engine.app.ports import Timer
from engine.app.publish import Later, publish_episode, publish_program_overview, publishing_once, right_away
from engine.app.views import when
from engine.clock import utc
from engine.errors import CarepathError, PartlyScheduled
from engine.store.mapper import Changes

__all__ = [
    "MAX_FIRED",
    "FollowUp",
    "batched",
    "follow_up",
    "prefect_skipped",
    "release_runs",
    "schedule_timers",
    "without_prefect",
]

logger = logging.getLogger("carepath.followup")

#: At most this many due rungs are fired by one follow-up (after a long outage the sweep fires the rest).
MAX_FIRED = 200


@dataclass
class FollowUp:
    """What one follow-up did; ``problems`` lists steps that failed (the sweep retries them)."""

    episode_id: str
    fired: int = 0
    escalations: list[str] = field(default_factory=list)
    #: (severity, role) of each escalation raised here: what the run's state and tags say.
    raised: list[tuple[str, str]] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    cancelled: int = 0
    scheduled: int = 0
    problems: list[str] = field(default_factory=list)


def follow_up(app: App, episode_id: str, changes: Changes | None = None) -> FollowUp:
    """Do everything a change to ``episode_id`` calls for (see the module docstring); never raises for Prefect."""
    report = FollowUp(episode_id)
    everything = [changes] if changes else []
    for rung_id in app.service.due_rungs(episode_id, MAX_FIRED):
        fired = app.service.fire_rung(rung_id)
        if fired is not None and fired.escalations:
            report.fired += 1
            everything.append(fired)
    raised = [rung for c in everything for rung, _role in c.escalations]
    cancel = [run for c in everything for run in c.cancel_runs]
    met = [run for c in everything for run in c.met_runs if run not in cancel]
    report.escalations = raised
    report.raised = [(c.severities.get(rung, "normal"), role) for c in everything for rung, role in c.escalations]
    if raised:
        report.delivered = [r.summary() for r in deliver(app, raised)]
    if prefect_skipped():
        return report
    report.cancelled = _step(report, "cancel timers", lambda: release_runs(app, cancel))
    report.cancelled += _step(report, "end met timers", lambda: release_runs(app, met, met=True))
    report.scheduled = _step(report, "schedule timers", lambda: _schedule_or_defer(app, episode_id))
    work_changed = bool(raised or cancel or met)
    _step(report, "publish", partial(publish_episode, app, episode_id, escalations_changed=bool(raised)))
    _step(report, "publish overview", lambda: publish_program_overview(app) if work_changed else None)
    return report


#: Set inside :func:`without_prefect`.
_WITHOUT_PREFECT: ContextVar[bool] = ContextVar("carepath_without_prefect", default=False)


@contextlib.contextmanager
def without_prefect() -> Iterator[None]:
    """Within (and in threads started with the context, :func:`~engine.app.side_by_side.side_by_side`), follow-ups
    fire and deliver but leave runs, timers and artifacts alone: Prefect is known to be down."""
    token = _WITHOUT_PREFECT.set(True)
    try:
        yield
    finally:
        _WITHOUT_PREFECT.reset(token)


def prefect_skipped() -> bool:
    """True inside :func:`without_prefect`."""
    return _WITHOUT_PREFECT.get()


def release_runs(app: App, run_ids: list[str], *, met: bool = False, checked: bool = False) -> int:
    """Cancel those of these runs no pending rung needs any more; returns how many were cancelled.

    A deadline run carries every rung of its pathway due in its minute, so one rung met or fired must not cancel
    the run the others wait for (``checked``: the caller has just asked the store, as the reconciler does). Another
    process may schedule a rung into the run meanwhile, so the run is first marked released in the store (a rung can
    no longer join it: it is scheduled again instead), then asked about once more, then cancelled; a rung linked in
    between is unlinked and scheduled again rather than left for the sweep.
    """
    run_ids = list(dict.fromkeys(run_ids))
    if not checked and run_ids:
        run_ids = _unneeded(app, run_ids)
    if not run_ids:
        return 0
    with store.session_scope(app.engine) as session:
        store.release_runs(session, run_ids, app.clock.wall_time(app.clock.now()))
    joined_before = set(run_ids) - set(_unneeded(app, run_ids))
    if joined_before:
        with store.session_scope(app.engine) as session:
            store.forget_releases(session, joined_before)
        run_ids = [run for run in run_ids if run not in joined_before]
    if not run_ids:
        return 0
    try:
        cancelled = app.scheduler.cancel(run_ids, met=met)
    except CarepathError:  # not cancelled: rungs may join them again (the sweep's reconciler tries later)
        with store.session_scope(app.engine) as session:
            store.forget_releases(session, run_ids)
        raise
    with store.session_scope(app.engine) as session:
        joined = store.unlink_pending_rungs(session, run_ids)
    if joined:
        logger.info("%d rung(s) joined a run as it was cancelled: scheduling them again", joined)
        schedule_timers(app)
    return cancelled


def _unneeded(app: App, run_ids: list[str]) -> list[str]:
    with Session(app.engine) as session:
        needs = store.run_needs(session, run_ids)
    return [run for run in run_ids if not needs.get(run, False)]


#: Inside :func:`batched`: the episodes whose timers are scheduled when it ends.
_DEFERRED: ContextVar[set[str] | None] = ContextVar("carepath_deferred_scheduling", default=None)


@contextlib.contextmanager
def batched(app: App, *, later: Later | None = None) -> Iterator[None]:
    """Within, follow-ups leave scheduling their next timers to the end, where one call schedules them all (one
    Prefect call per pathway and minute, not one per episode), and the program's artifacts are published once: what
    a deadline run firing many rungs, or a sweep pass after an outage, does. Timers first, then artifacts; with
    ``later``, both are handed to it, in that order, instead of done at the end (see :func:`publishing_once`). A
    process that dies before they are done leaves rungs without a run, which the sweep schedules (as after any
    crash between a commit and scheduling)."""
    if _DEFERRED.get() is not None:  # already inside one: the outer one schedules
        yield
        return
    episodes: set[str] = set()
    publishing: list[Callable[[], None]] = []
    token = _DEFERRED.set(episodes)
    try:
        with publishing_once(app, later=publishing.append):
            yield
    finally:
        _DEFERRED.reset(token)
        for work in (lambda: _schedule_deferred(app, episodes), *publishing):
            (later or right_away)(work)


def _schedule_deferred(app: App, episodes: set[str]) -> None:
    try:
        if episodes:
            schedule_timers(app, sorted(episodes))
    except CarepathError as exc:
        logger.warning("timers of %d episode(s) not scheduled (the sweep will): %s", len(episodes), exc)


def _schedule_or_defer(app: App, episode_id: str) -> int:
    deferred = _DEFERRED.get()
    if deferred is None:
        return schedule_timers(app, episode_id)
    deferred.add(episode_id)
    return 0


def schedule_timers(app: App, episodes: str | Sequence[str] | None = None, limit: int = 500) -> int:
    """Give the next rung of each open item (of one episode, of these episodes, or of all) a scheduled run; returns
    how many were linked to one.

    A rung the store refuses to link (its run closed to new rungs between the scheduler's answer and the link: it
    ended, or is being cancelled) is scheduled once more at once, into its minute's next run, rather than left
    without a run for the sweep."""
    linked = 0
    for _attempt in range(2):
        timers = _unscheduled(app, episodes, limit)
        if not timers:
            break
        try:
            run_ids = app.scheduler.schedule(timers)
        except PartlyScheduled as exc:  # link the runs that were made; the rest stay without one (the sweep's)
            _link(app, exc.scheduled)
            raise
        done = _link(app, run_ids)
        linked += done
        if done == len(run_ids):
            break
    return linked


def _unscheduled(app: App, episodes: str | Sequence[str] | None, limit: int) -> list[Timer]:
    with Session(app.engine) as session:
        rows = store.unscheduled_timers(session, episodes, limit)
    return [
        Timer(
            rung_id=row.rung_id,
            episode_id=row.episode_id,
            pathway_id=row.pathway_id,
            at=app.clock.wall_time(utc(row.due_at)),
            name=f"{row.episode_id} · {row.title} · rung {row.index + 1} → {row.role} · due "
            f"{when(app.clock, row.due_at)}",
            tags=(f"pathway:{row.pathway_id}", "deadline", f"role:{row.role}", f"severity:{row.severity}"),
        )
        for row in rows
    ]


def _link(app: App, run_ids: dict[str, str]) -> int:
    """Link each rung to its run; returns how many the store took (not one already linked, fired, or whose run was
    closed meanwhile)."""
    if not run_ids:
        return 0
    with store.session_scope(app.engine) as session:
        return store.set_rung_runs(session, run_ids, app.clock.now())


def _step(report: FollowUp, name: str, action: Callable[[], int | None]) -> int:
    try:
        return int(action() or 0)
    except CarepathError as exc:
        report.problems.append(f"{name}: {exc}")
        logger.warning("episode %s: %s failed (the sweep will retry): %s", report.episode_id, name, exc)
        return 0
