"""The sweep: the safety net that finishes whatever a lost run, a crash or an outage left undone.

It is cheap when there is nothing to do, and after an outage one sweep catches up everything (the scheduler's
missed intervals are not replayed one by one). Each pass:

- follows up every episode holding a rung due more than ``grace`` ago (its run was lost or is late): the
  follow-up fires it, delivers it and schedules what comes next;
- schedules rungs that have no run yet (a crash between a commit and scheduling);
- delivers escalations nobody finished delivering (never claimed, or claimed by a process that died);
- applies inbound events that were stored but never applied (their run died).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import Session

from engine import store
from engine.app.context import App
from engine.app.delivery import deliver_pending
from engine.app.episodes import process_event
from engine.app.followup import follow_up, schedule_timers
from engine.errors import CarepathError

__all__ = ["DEFAULT_GRACE", "SweepReport", "sweep"]

logger = logging.getLogger("carepath.sweep")

#: A rung this late (wall time) has lost its run: the sweep fires it. Deadline runs normally start within seconds.
DEFAULT_GRACE = timedelta(seconds=20)
#: An inbound event still unapplied this long after it was stored lost its run.
STUCK_AFTER = timedelta(seconds=60)


@dataclass
class SweepReport:
    """What one pass did."""

    fired: int = 0
    scheduled: int = 0
    delivered: int = 0
    applied: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not (self.fired or self.scheduled or self.delivered or self.applied or self.problems)


def sweep(app: App, grace: timedelta = DEFAULT_GRACE, limit: int = 200) -> SweepReport:
    """One pass of the safety net (see the module docstring)."""
    report = SweepReport()
    clock = app.clock
    wall_now = clock.wall_time(clock.now())
    with Session(app.engine) as session:
        stuck = store.stuck_inbound_events(session, clock.pathway_time(wall_now - STUCK_AFTER), limit)
        late = store.episodes_with_due_rungs(session, clock.pathway_time(wall_now - grace), limit)
    for inbound_id in stuck:
        _changes, done, refused = process_event(app, inbound_id)
        report.applied += refused is None
        report.problems += done.problems if done else []
    for episode_id in late:
        done = follow_up(app, episode_id)
        report.fired += done.fired
        report.problems += done.problems
    try:
        report.scheduled = schedule_timers(app, None, limit)
    except CarepathError as exc:
        report.problems.append(f"schedule timers: {exc}")
    report.delivered = len(deliver_pending(app, limit))
    if not report.idle:
        logger.info(
            "sweep: fired %d, scheduled %d, delivered %d, applied %d%s",
            *(report.fired, report.scheduled, report.delivered, report.applied),
            f"; problems: {'; '.join(report.problems)}" if report.problems else "",
        )
    return report
