"""The sweep: the safety net that finishes whatever a lost run, a crash or an outage left undone.

It is cheap when there is nothing to do, and after an outage **one pass catches up everything**: it works through
the backlog batch by batch until none is left, rather than leaving the rest to later passes. Each pass:

- applies inbound events that were stored but never applied (their run died);
- follows up every episode holding a rung due more than ``grace`` ago (its run was lost or is late), or a rung
  that never got a run due more than :data:`UNLINKED_GRACE` ago (its scheduling failed): the follow-up fires it,
  delivers it and schedules what comes next; :data:`FOLLOW_UPS_AT_ONCE` episodes side by side;
- schedules rungs that have no run yet (a crash between a commit and scheduling);
- delivers escalations nobody finished delivering (never claimed, or claimed by a process that died);
- publishes again the artifacts of episodes changed more than :data:`REPUBLISH_AFTER` ago whose artifacts show an
  older revision (their follow-up's publishing failed, was dropped while Prefect was down, or died with its process),
  at most :data:`REPUBLISH_AT_MOST` a pass, unless the pass runs in process because Prefect is down;
- reconciles the scheduler's runs with the store (:mod:`engine.app.reconcile`).

Who runs it: every serving process has a timer (:func:`sweep_tick` every :data:`SWEEP_EVERY`). A tick takes a
lease in the store, so with several serving processes one sweeps at a time; it looks for work with a few indexed
reads and, only when there is some, runs the pass through the dispatcher (a flow run named for what it did, e.g.
``sweep · fired 3 · scheduled 2``, tagged ``sweep``). An idle tick leaves no trace, so the runs list is not
buried, and an outage is caught up by the first tick after it, not replayed interval by interval.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from sqlmodel import Session

from engine import store
from engine.app import reconcile as reconciler
from engine.app.context import App, bound
from engine.app.delivery import CLAIM_STALE, deliver_pending
from engine.app.episodes import process_event
from engine.app.followup import FollowUp, batched, follow_up, prefect_skipped, schedule_timers, without_prefect
from engine.app.ports import SweepReport
from engine.app.publish import publish_episodes, publish_program_overview
from engine.app.side_by_side import side_by_side
from engine.errors import CarepathError

__all__ = [
    "DEFAULT_GRACE",
    "FOLLOW_UPS_AT_ONCE",
    "LEASE",
    "LEASE_TTL",
    "REPUBLISH_AFTER",
    "REPUBLISH_AT_MOST",
    "SWEEP_EVERY",
    "UNLINKED_GRACE",
    "SweepReport",
    "has_work",
    "sweep",
    "sweep_tick",
]

logger = logging.getLogger("carepath.sweep")

#: A rung this late (wall time) has lost its run: the sweep fires it. Deadline runs normally start within seconds.
DEFAULT_GRACE = timedelta(seconds=20)
#: A due rung that has no run at all (its scheduling failed: Prefect was down or busy) waits only this long: no run
#: will come for it, and the follow-up that made it due fires it itself within this time if it is still going.
UNLINKED_GRACE = timedelta(seconds=3)
#: An inbound event still unapplied this long after it was stored lost its run.
STUCK_AFTER = timedelta(seconds=60)
#: An episode whose artifacts still show an older revision this long (wall time) after its change lost its
#: publishing. Follow-ups queue behind bursts (a minute and more at 10,000 episodes on a compressed clock): sooner,
#: the sweep would publish again what a queued follow-up is about to, when the machine is busiest.
REPUBLISH_AFTER = timedelta(minutes=5)
#: Episodes one pass publishes again at most: after a long Prefect outage thousands are behind, and a pass that
#: published them all would hold the sweep (the safety net) for minutes; the next passes take the rest. At 500 a
#: restart's catch-up at 10,000 episodes republished 500 and served again 77.6 s after the restart (58.8 before).
REPUBLISH_AT_MOST = 100
#: The shared setting holding when a pass last failed to publish artifacts again (cleared when one succeeds): for
#: REPUBLISH_BACKOFF after, only a thorough look starts a pass for them (a publisher that keeps failing costs a pass
#: every 5 minutes, not every tick).
REPUBLISH_FAILED = "sweep.republish_failed_at"
REPUBLISH_BACKOFF = timedelta(minutes=5)
#: How often each serving process's timer ticks (wall time).
SWEEP_EVERY = timedelta(seconds=10)
#: The store lease that lets one serving process sweep at a time; a holder that dies frees it after LEASE_TTL.
LEASE = "sweep"
LEASE_TTL = timedelta(minutes=5)
#: A quick tick looks for rungs without a run only when they are due this soon (wall time).
SCHEDULE_AHEAD = timedelta(minutes=2)
#: How long the store remembers a deadline run it cancelled (no rung may join it meanwhile): its minute is long past.
RELEASES_KEPT = timedelta(days=1)
#: Late episodes a pass follows up side by side: each mostly waits (deliveries, the store, Prefect's cancels), and
#: after a 10-minute outage at 10,000 episodes one at a time took 90 s for 594 rungs.
FOLLOW_UPS_AT_ONCE = 4
#: Batches one pass works through at most (each up to ``limit`` episodes): a bound, not a budget one expects to use.
MAX_BATCHES = 50


def _wall_now(app: App) -> datetime:
    return app.clock.wall_time(app.clock.now())


def sweep(
    app: App, grace: timedelta = DEFAULT_GRACE, limit: int = 200, *, reconcile: bool = True, prefect: bool = True
) -> SweepReport:
    """One pass of the safety net (see the module docstring); it works through the whole backlog as it stood when
    the pass began. Rungs that come due meanwhile are their runs' (or the next pass's): a restart's catch-up that
    chased them would not end while the caseload keeps rungs coming due faster than it fires them (it ran for over
    ten minutes at 10,000 episodes on a compressed clock, and `up` serves only after it). ``prefect=False`` (a pass
    run in the serving process because Prefect is down) fires, delivers and applies, and leaves what needs Prefect
    (scheduling, cancelling, reconciling, publishing) to the first pass through it (see :func:`without_prefect`)."""
    if prefect:
        return _sweep(app, grace, limit, reconcile=reconcile)
    with without_prefect():
        return _sweep(app, grace, limit, reconcile=reconcile)


def _sweep(app: App, grace: timedelta, limit: int, *, reconcile: bool) -> SweepReport:
    prefect = not prefect_skipped()  # the flag every follow-up of the pass reads too
    report = SweepReport()
    clock = app.clock
    wall_now = _wall_now(app)
    for _batch in range(MAX_BATCHES):
        with Session(app.engine) as session:
            stuck = store.stuck_inbound_events(session, clock.pathway_time(wall_now - STUCK_AFTER), limit)
            late = _late_episodes(app, session, wall_now, grace, limit)
        with batched(app):  # scheduling and the program's tables once per batch, not once per episode
            for inbound_id in stuck:
                try:
                    _changes, done, refused = process_event(app, inbound_id)
                except CarepathError as exc:  # one event the store could not take now must not stop the pass
                    report.problems.append(f"apply {inbound_id}: {exc}")
                    continue
                report.applied += refused is None
                report.problems += done.problems if done else []
            for episode_id, result in side_by_side(partial(_follow_up, app), late, FOLLOW_UPS_AT_ONCE, "sweep"):
                if isinstance(result, CarepathError):
                    report.problems.append(f"follow up {episode_id}: {result}")
                    continue
                report.fired += result.fired
                report.problems += result.problems
        if len(stuck) < limit and len(late) < limit:
            break
    if prefect:
        _schedule_all(app, limit, report)
    for _batch in range(MAX_BATCHES):
        delivered = len(deliver_pending(app, limit))
        report.delivered += delivered
        if delivered < limit:
            break
    if prefect:
        _republish(app, wall_now, limit, report)
    with store.session_scope(app.engine) as session:
        store.prune_releases(session, _wall_now(app) - RELEASES_KEPT)
    if reconcile and prefect:
        try:
            report.cancelled, report.requeued, report.ended = reconciler.reconcile(app, include_scheduled=True)
        except CarepathError as exc:
            report.problems.append(f"reconcile runs: {exc}")
    if not report.idle:
        if prefect:
            try:  # the program's numbers move with what the pass did (fired, applied, delivered)
                publish_program_overview(app)
            except CarepathError as exc:
                report.problems.append(f"publish overview: {exc}")
        logger.info(
            "sweep: fired %d, scheduled %d, delivered %d, applied %d, runs cancelled %d, requeued %d, ended %d, "
            "artifacts republished %d%s",
            *(report.fired, report.scheduled, report.delivered, report.applied),
            *(report.cancelled, report.requeued, report.ended, report.republished),
            f"; problems: {'; '.join(report.problems)}" if report.problems else "",
        )
    return report


def _follow_up(app: App, episode_id: str) -> tuple[str, FollowUp | CarepathError]:
    """One late episode's follow-up; an error is returned, not raised: one episode must not stop the pass."""
    try:
        return episode_id, follow_up(app, episode_id)
    except CarepathError as exc:
        return episode_id, exc


def _republish(app: App, wall_now: datetime, limit: int, report: SweepReport) -> None:
    """Publish again, ``limit`` episodes per call and :data:`REPUBLISH_AT_MOST` in all, the artifacts of episodes
    behind the store, the longest behind first; record a failure (or clear one) for :func:`has_work`."""
    for _batch in range(-(-REPUBLISH_AT_MOST // limit)):
        with Session(app.engine) as session:
            behind = _behind(app, session, wall_now, min(limit, REPUBLISH_AT_MOST - report.republished))
        if not behind:
            break
        try:
            publish_episodes(app, behind)
        except CarepathError as exc:  # still behind: a later pass tries again
            report.problems.append(f"publish artifacts: {exc}")
            store.put_setting(app.engine, REPUBLISH_FAILED, wall_now.isoformat())
            return
        report.republished += len(behind)
    if report.republished and store.get_setting(app.engine, REPUBLISH_FAILED) is not None:
        store.put_setting(app.engine, REPUBLISH_FAILED, None)


def _behind(app: App, session: Session, wall_now: datetime, limit: int) -> list[str]:
    return store.unpublished_episodes(session, app.clock.pathway_time(wall_now - REPUBLISH_AFTER), limit)


def _republish_failing(session: Session, wall_now: datetime) -> bool:
    """True if a pass failed to publish artifacts again less than a thorough interval ago."""
    failed = store.get_setting(session, REPUBLISH_FAILED)
    return failed is not None and wall_now - datetime.fromisoformat(failed) < REPUBLISH_BACKOFF


def _schedule_all(app: App, limit: int, report: SweepReport) -> None:
    for _batch in range(MAX_BATCHES):
        try:
            scheduled = schedule_timers(app, None, limit)
        except CarepathError as exc:
            report.problems.append(f"schedule timers: {exc}")
            return
        report.scheduled += scheduled
        if scheduled < limit:
            return


def _late_episodes(app: App, session: Session, wall_now: datetime, grace: timedelta, limit: int) -> list[str]:
    """Episodes with a rung due ``grace`` ago, or one without a run due :data:`UNLINKED_GRACE` ago."""
    unlinked = min(grace, UNLINKED_GRACE)
    horizon, unlinked_horizon = (app.clock.pathway_time(wall_now - g) for g in (grace, unlinked))
    return store.episodes_with_due_rungs(session, horizon, limit, unlinked_horizon=unlinked_horizon)


def has_work(app: App, grace: timedelta = DEFAULT_GRACE, *, thorough: bool = False, stalled: bool = False) -> bool:
    """True if a pass would do something: a few indexed reads of the store, then the scheduler's unfinished runs.

    A quick look (every tick) leaves out what can wait and what a live follow-up is probably doing right now:
    rungs without a run that are not due within :data:`SCHEDULE_AHEAD` (a follow-up schedules them within
    seconds of its commit; the sweep fires them when due in any case) and runs still waiting for their time.
    A ``thorough`` look includes both. Episodes whose artifacts are behind the store count unless the last pass
    could not run through Prefect (``stalled``: it would not publish) or publishing them failed in the last 5
    minutes; then only a thorough look counts them (a publisher that keeps failing costs a pass that often, not
    every tick). A scheduler that cannot be read (Prefect down) has nothing to reconcile.
    """
    clock = app.clock
    wall_now = _wall_now(app)
    with Session(app.engine) as session:
        if store.stuck_inbound_events(session, clock.pathway_time(wall_now - STUCK_AFTER), 1):
            return True
        if _late_episodes(app, session, wall_now, grace, 1):
            return True
        if store.escalations_to_deliver(session, wall_now - CLAIM_STALE, 1):
            return True
        soon = None if thorough else clock.pathway_time(wall_now + SCHEDULE_AHEAD)
        if store.unscheduled_timers(session, None, 1, due_before=soon):
            return True
        if (thorough or not (stalled or _republish_failing(session, wall_now))) and _behind(app, session, wall_now, 1):
            return True
    try:
        return bool(reconciler.plan(app, include_scheduled=thorough))
    except CarepathError as exc:
        logger.debug("sweep: runs not reconciled this tick: %s", exc)
        return False


def sweep_tick(app: App, holder: str, *, thorough: bool = False, stalled: bool = False) -> SweepReport | None:
    """One tick of a serving process's sweep timer; None when another process holds the lease or there is nothing
    to do (see :func:`has_work` for ``thorough``). Otherwise the pass runs through the dispatcher (a flow run
    operators see), or here when that fails (Prefect down: rungs still fire and escalations are still delivered).

    A pass that could not run through the dispatcher says so (``in_process``), and the caller passes ``stalled``
    until one can: while Prefect is down no deadline run starts either, so a due rung has nothing to wait for and
    gets :data:`UNLINKED_GRACE`, not :data:`DEFAULT_GRACE` (rungs due during a 10-minute Prefect outage at 10,000
    episodes escalated 22-45 s late, in waves, waiting out a grace for runs that could not come).
    """
    if not store.acquire_lease(app.engine, LEASE, holder, _wall_now(app), LEASE_TTL):
        return None
    try:
        if not has_work(app, UNLINKED_GRACE if stalled else DEFAULT_GRACE, thorough=thorough, stalled=stalled):
            return None
        try:
            with bound(app):
                return app.dispatcher.sweep()
        except CarepathError as exc:
            logger.warning("sweep: no flow run (%s); sweeping in this process", exc)
            report = sweep(app, UNLINKED_GRACE, prefect=False)
            report.in_process = True
            return report
    finally:
        store.release_lease(app.engine, LEASE, holder)
