"""Crashes and outages with in-memory ports (no Prefect): the reconciler, the sweep's catch-up, its timer and lease.

The fault each test plays is one seen with real processes (issue 14): an event's process that died between its
commit and cancelling the run; a serving process that died holding runs it had picked up; a long outage; two
serving processes sweeping at once; a Prefect server that does not answer. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select
from store_fixtures import BACKENDS, database_url, migrated_database_url
from test_app import CONTACTS, PATHWAY, assert_every_escalation_reached_its_contacts, enrolled, escalations, scheduler

from engine import store
from engine.app import App, Settings, sweep
from engine.app import reconcile as reconciler
from engine.app.followup import batched, follow_up
from engine.app.inline import InlineDispatcher, MemoryRun, MemoryScheduler, RecordingNotifier, inline_app
from engine.app.ports import SweepReport, Timer
from engine.app.sweep import LEASE, LEASE_TTL, SCHEDULE_AHEAD, UNLINKED_GRACE, has_work, sweep_tick
from engine.clock import ManualClock
from engine.errors import OrchestrationError, PartlyScheduled
from engine.language.loader import load_pathway_text
from engine.notify.delivery import DeliveryReport, Notification
from engine.store import DeliveryRecord, RungRecord

NALOXONE = "1/s.ed.task.naloxone"


def _app(backend: str, folder: Path, url: str) -> App:
    settings = Settings.from_env({"CAREPATH_HOME": str(folder), "CAREPATH_DATABASE_URL": url})
    app = inline_app(settings, ManualClock(), notifier=RecordingNotifier(CONTACTS))
    result = load_pathway_text(PATHWAY, "bridge-test.yaml")
    assert result.ok and result.spec is not None, result.diagnostics
    app.service.register_pathway(result.spec, PATHWAY)
    return app


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    with migrated_database_url(request.param, tmp_path) as url:
        app = _app(request.param, tmp_path, url)
        yield app
        app.close()


def clock(app: App) -> ManualClock:
    assert isinstance(app.clock, ManualClock)
    return app.clock


def run_of(app: App, rung_id: str) -> MemoryRun:
    return scheduler(app).runs[rung_id]


def rung(app: App, rung_id: str) -> RungRecord:
    with Session(app.engine) as s:
        found = s.get(RungRecord, rung_id)
    assert found is not None
    return found


# ------------------------------------------------------------------------------------------- the reconciler


def test_a_run_waiting_for_a_deadline_an_event_met_is_cancelled_when_the_event_process_died(app: App) -> None:
    ep = enrolled(app)
    rung_id = f"{ep}/{NALOXONE}#r0"
    app.service.record_event(ep, "naloxone.given")  # committed; its process died before the follow-up cancelled
    assert rung(app, rung_id).status != "pending"
    assert run_of(app, rung_id).state == "scheduled", "nothing cancelled the run: it would start a process at 4 h"
    assert has_work(app, thorough=True)
    report = sweep(app)
    assert report.cancelled == 1 and run_of(app, rung_id).state == "cancelled"
    assert not has_work(app, thorough=True)
    assert sweep(app).idle


def test_a_run_a_dead_serving_process_had_picked_up_is_requeued_after_the_bound_and_fires_once(app: App) -> None:
    ep = enrolled(app)
    rung_id = f"{ep}/{NALOXONE}#r0"
    due = rung(app, rung_id).due_at
    clock(app).set(due - timedelta(seconds=10))
    scheduler(app).orphan(lambda _r: True, "pending", clock(app).now())  # prefetched, then the process died
    clock(app).set(due + reconciler.PICKED_UP_STUCK - timedelta(seconds=1))
    assert reconciler.reconcile(app, include_scheduled=False) == (0, 0, 0), "a live process may still hold it"
    clock(app).advance(timedelta(seconds=1))
    assert reconciler.reconcile(app, include_scheduled=False) == (0, 1, 0)
    assert run_of(app, rung_id).state == "scheduled"
    assert scheduler(app).run_due(app, clock(app).now()) == 1
    assert [e.rung_id for e in escalations(app)] == [rung_id]
    assert_every_escalation_reached_its_contacts(app)


def test_a_picked_up_run_of_a_rung_the_sweep_fired_is_ended_not_run(app: App) -> None:
    ep = enrolled(app)
    rung_id = f"{ep}/{NALOXONE}#r0"
    due = rung(app, rung_id).due_at
    clock(app).set(due - timedelta(seconds=10))
    scheduler(app).orphan(lambda _r: True, "pending", clock(app).now())
    clock(app).set(due + timedelta(minutes=1))
    first = sweep(app)  # fires the overdue rung; its follow-up asks the run's (dead) process to cancel it
    assert first.fired == 1 and run_of(app, rung_id).state == "cancelling"
    clock(app).advance(reconciler.PICKED_UP_STUCK)
    assert sweep(app).ended == 1 and run_of(app, rung_id).state == "cancelled"
    assert [e.rung_id for e in escalations(app)] == [rung_id]


def test_a_run_whose_process_died_while_running_is_ended_after_the_bound(app: App) -> None:
    ep = enrolled(app)
    rung_id = f"{ep}/{NALOXONE}#r0"
    clock(app).set(rung(app, rung_id).due_at)
    scheduler(app).orphan(lambda _r: True, "running", clock(app).now())
    app.service.fire_rung(rung_id)  # it escalated, then its process died before finishing
    clock(app).advance(reconciler.RUNNING_STUCK - timedelta(seconds=1))
    assert reconciler.reconcile(app, include_scheduled=True) == (0, 0, 0)
    clock(app).advance(timedelta(seconds=1))
    assert reconciler.reconcile(app, include_scheduled=True) == (0, 0, 1)
    assert run_of(app, rung_id).state == "crashed"


def test_runs_of_rungs_another_store_owns_are_left_alone(app: App) -> None:
    other = Timer("ep-other/1/x#r0", "ep-other", "bridge-test", clock(app).now(), "other", ("deadline",))
    scheduler(app).schedule([other])
    scheduler(app).orphan(lambda r: r.timer.rung_id == other.rung_id, "pending", clock(app).now())
    clock(app).advance(timedelta(hours=1))
    assert not reconciler.plan(app, include_scheduled=True)
    assert run_of(app, other.rung_id).state == "pending"


# --------------------------------------------------------------------------------------- one pass catches up


def test_one_pass_catches_up_an_outage_larger_than_a_batch(app: App) -> None:
    episodes = [enrolled(app) for _ in range(7)]
    scheduler(app).lose()  # the outage: no run will start
    for ep in episodes:  # and some rungs never got a run (crash between commit and scheduling)
        app.service.record_event(ep, "ed.discharged")
    clock(app).advance(timedelta(days=2))
    report = sweep(app, limit=3)
    assert report.fired >= 7 * 2 and report.problems == []
    with Session(app.engine) as s:
        assert store.episodes_with_due_rungs(s, clock(app).now(), 100) == []
        assert store.unscheduled_timers(s, None, 100) == []
    assert_every_escalation_reached_its_contacts(app)
    assert sweep(app, limit=3).idle, "nothing left for a second pass"


class _Slow(RecordingNotifier):
    """Each episode's first delivery answers only once another episode's delivery has begun (at most 20 s)."""

    def __init__(self, contacts: dict[str, list[str]]) -> None:
        super().__init__(contacts)
        self.began: set[str] = set()
        self.overlapped: dict[str, bool] = {}
        self.changed = threading.Condition()

    def deliver(self, notification: Notification, **kwargs: Any) -> DeliveryReport:
        episode = notification.episode_id
        with self.changed:
            self.began.add(episode)
            self.changed.notify_all()
            if episode not in self.overlapped:
                self.overlapped[episode] = self.changed.wait_for(lambda: len(self.began) > 1, timeout=20)
        return super().deliver(notification, **kwargs)


def test_a_catch_up_follows_late_episodes_up_side_by_side_so_a_slow_contact_holds_no_other_escalation(
    app: App,
) -> None:
    """After an outage, one episode's contact taking long to answer must not hold every other overdue escalation:
    at 10,000 episodes a catch-up one episode at a time took 90 s for 594 rungs."""
    episodes = [enrolled(app) for _ in range(3)]
    scheduler(app).lose()
    app.notifier = slow = _Slow(CONTACTS)
    clock(app).advance(timedelta(hours=4, minutes=1))
    report = sweep(app)
    assert report.fired == 3 and report.problems == []
    assert slow.overlapped == dict.fromkeys(episodes, True), "each waited on another episode's delivery"
    assert_every_escalation_reached_its_contacts(app)


class _Clockwork(RecordingNotifier):
    """Contacts that take two pathway hours to answer the first alert: the clock moves on during the pass."""

    def __init__(self, contacts: dict[str, list[str]], clock: ManualClock) -> None:
        super().__init__(contacts)
        self.clock, self.moved = clock, False

    def deliver(self, notification: Notification, **kwargs: Any) -> DeliveryReport:
        if not self.moved:
            self.moved = True
            self.clock.advance(timedelta(hours=2))
        return super().deliver(notification, **kwargs)


def test_a_pass_catches_up_the_backlog_it_found_and_leaves_what_came_due_meanwhile_to_the_next(app: App) -> None:
    """A restart's catch-up that chased rungs coming due while it ran would never end under a busy caseload (and
    `up` serves only after it): a pass works through the backlog as it stood when it began."""
    early = [enrolled(app) for _ in range(3)]
    clock(app).advance(timedelta(hours=1))
    later = [enrolled(app) for _ in range(3)]
    scheduler(app).lose()
    clock(app).advance(timedelta(hours=3, minutes=1))  # the early ones' first rungs are due, the later ones' are not
    app.notifier = _Clockwork(CONTACTS, clock(app))
    sweep(app, limit=2, reconcile=False)
    assert {e.episode_id for e in escalations(app)} == set(early), "only the backlog the pass found"
    sweep(app, limit=2, reconcile=False)
    assert {e.episode_id for e in escalations(app)} == set(early + later), "the next pass takes the rest"
    assert_every_escalation_reached_its_contacts(app)


def test_rungs_with_runs_never_crowd_out_a_rung_that_has_none(app: App) -> None:
    for _ in range(5):
        enrolled(app)  # each has its first rung scheduled, due at 4 h
    clock(app).advance(timedelta(minutes=1))
    lost = app.service.enroll("bridge-test", "P-REL-001").episode_id  # crashed before its timers were scheduled
    with Session(app.engine) as s:
        [row] = store.unscheduled_timers(s, None, 1)
    assert (row.episode_id, row.index) == (lost, 0)


# ------------------------------------------------------------------------------------- the timer and lease


def dispatched(app: App) -> int:
    assert isinstance(app.dispatcher, InlineDispatcher)
    return app.dispatcher.sweeps


def test_an_idle_tick_makes_no_run_and_a_tick_with_work_makes_one(app: App) -> None:
    enrolled(app)
    assert sweep_tick(app, "serve-a") is None and dispatched(app) == 0
    scheduler(app).lose()
    clock(app).advance(timedelta(hours=4, minutes=1))
    report = sweep_tick(app, "serve-a")
    assert report is not None and report.fired == 1 and dispatched(app) == 1
    assert sweep_tick(app, "serve-a") is None and dispatched(app) == 1
    assert store.lease_holder(app.engine, LEASE, clock(app).now()) is None, "the lease is given back"


def test_one_process_sweeps_at_a_time_and_a_dead_holder_frees_the_lease(app: App) -> None:
    enrolled(app)
    scheduler(app).lose()
    clock(app).advance(timedelta(hours=5))
    assert store.acquire_lease(app.engine, LEASE, "serve-dead", clock(app).now(), LEASE_TTL)  # then it died
    assert sweep_tick(app, "serve-b") is None and escalations(app) == []
    clock(app).advance(LEASE_TTL)
    report = sweep_tick(app, "serve-b")
    assert report is not None and report.fired == 1


def test_two_serving_processes_sweeping_at_once_double_nothing(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path) as url:
        first = _app("sqlite", tmp_path, url)
        second = inline_app(first.settings, first.clock, notifier=first.notifier, scheduler=first.scheduler)
        episodes = [enrolled(first) for _ in range(4)]
        scheduler(first).lose()
        clock(first).advance(timedelta(hours=7))
        barrier = threading.Barrier(2)
        reports: list[SweepReport | None] = []

        def tick(app: App, holder: str) -> None:
            barrier.wait()
            for _ in range(3):
                reports.append(sweep_tick(app, holder))

        threads = [threading.Thread(target=tick, args=(a, h)) for a, h in ((first, "a"), (second, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(r.fired for r in reports if r) >= len(episodes)
        assert len(escalations(first)) == len({e.rung_id for e in escalations(first)}) == len(episodes) * 2
        with Session(first.engine) as s:
            keys = [d.key for d in s.exec(select(DeliveryRecord))]
        assert len(keys) == len(set(keys)), "no contact alerted twice"
        assert_every_escalation_reached_its_contacts(first)
        first.close()
        second.close()


class _Down:
    """A port whose Prefect server does not answer; ``calls`` lists what was tried."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        def fail(*_args: object, **_kwargs: object) -> object:
            self.calls.append(name)
            raise OrchestrationError("the Prefect server at http://127.0.0.1:4200/api is not answering")

        return fail


def test_with_prefect_down_a_tick_still_fires_and_delivers_in_process_and_leaves_prefects_work(app: App) -> None:
    """The pass fires and delivers without Prefect, and does not try what needs it (cancelling, scheduling,
    reconciling, publishing): each call would only fail after the client's retries, and the pass came every ~15 s
    instead of every 3 (rungs up to 20 s late during a Prefect outage at 10,000). The first pass through Prefect
    again does that work, found in the store."""
    enrolled(app)
    clock(app).advance(timedelta(hours=6, minutes=1))  # their runs never started: Prefect is down
    runs = scheduler(app).waiting()
    real = app.dispatcher, app.scheduler, app.publisher
    app.dispatcher, app.scheduler, app.publisher = _Down(), _Down(), _Down()  # type: ignore[assignment]

    report = sweep_tick(app, "serve-a")

    assert report is not None and report.in_process and report.fired == 2 and report.problems == []
    assert app.scheduler.calls == [] and app.publisher.calls == [], "nothing tried that needs Prefect"  # type: ignore[attr-defined]
    assert_every_escalation_reached_its_contacts(app)
    assert runs and all(run.state == "scheduled" for run in runs), "not cancelled while Prefect was down"
    app.dispatcher, app.scheduler, app.publisher = real
    after = sweep_tick(app, "serve-a", thorough=True, stalled=True)
    assert after is not None and not after.in_process and after.cancelled == len(runs), "cancelled once it is back"
    assert all(run.state == "cancelled" for run in runs)


def test_while_prefect_is_down_a_due_rung_waits_only_the_short_grace_for_a_run_that_cannot_start(app: App) -> None:
    """No deadline run starts while Prefect is down: once a tick of the serving process's sweep timer had to sweep
    in process, the timer ticks every :data:`UNLINKED_GRACE` and due rungs are fired that long after due, not after
    the usual grace (a 10-minute
    Prefect outage at 10,000 episodes: 22-45 s late, in waves); a pass that runs through Prefect again brings the
    usual grace back, and a rung whose run is about to start is left to it."""
    from test_app import _consent

    from engine.app import enroll
    from engine.app.sweep import DEFAULT_GRACE, SWEEP_EVERY
    from engine.orchestration.sweep_timer import SweepTimer

    episodes = []
    for n in range(3):  # three linked rungs, due an hour apart
        episodes.append(enroll(app, "bridge-test", f"P-REL-10{n}"))
        app.service.add_consent(episodes[-1], _consent(episodes[-1]))
        clock(app).advance(timedelta(hours=1))
    first, second, third = (rung(app, f"{ep}/{NALOXONE}#r0") for ep in episodes)
    assert all(r.flow_run_id is not None for r in (first, second, third))
    real = app.dispatcher, app.scheduler
    app.dispatcher = app.scheduler = _Down()  # type: ignore[assignment]
    timer = SweepTimer(app)

    clock(app).set(first.due_at + UNLINKED_GRACE)
    assert timer.tick(1) is None and not timer.stalled, "not known to be down yet: the run gets its grace"
    clock(app).set(first.due_at + DEFAULT_GRACE + timedelta(seconds=1))
    report = timer.tick(2)
    assert report is not None and report.in_process and report.fired == 1 and timer.stalled
    assert timer.interval == UNLINKED_GRACE.total_seconds(), "the next tick comes 3 s later, not 10 (no waves)"

    clock(app).set(second.due_at + UNLINKED_GRACE)
    report = timer.tick(3)
    assert report is not None and report.fired == 1, "3 s after due, not 20: its run cannot start"
    assert {e.rung_id for e in escalations(app)} == {first.id, second.id}

    app.dispatcher, app.scheduler = real
    clock(app).set(third.due_at + UNLINKED_GRACE)
    report = timer.tick(4)
    assert report is not None and not report.in_process and not timer.stalled, "a pass through Prefect again"
    assert timer.interval == SWEEP_EVERY.total_seconds()
    assert third.id not in {e.rung_id for e in escalations(app)} and run_of(app, third.id).state == "scheduled"
    assert_every_escalation_reached_its_contacts(app)


def test_a_due_rung_whose_scheduling_failed_is_fired_by_the_next_tick_without_waiting_out_the_grace(app: App) -> None:
    """A rung whose run may still come gets ``DEFAULT_GRACE``; one that never got a run (Prefect answered 503 to
    its scheduling) has nothing to wait for: the next tick fires it (the 30-day SQLite drive's late tail)."""
    linked = enrolled(app)
    real, app.scheduler = app.scheduler, _Down()  # type: ignore[assignment]
    unlinked = enrolled(app)  # its follow-up could not schedule the first rung
    app.scheduler = real
    first, lost = (rung(app, f"{ep}/{NALOXONE}#r0") for ep in (linked, unlinked))
    assert first.flow_run_id is not None and lost.flow_run_id is None and first.due_at == lost.due_at
    clock(app).set(lost.due_at + UNLINKED_GRACE)
    report = sweep_tick(app, "serve-a")
    assert report is not None and report.fired == 1, "the rung without a run, now"
    assert [e.rung_id for e in escalations(app)] == [lost.id]
    assert run_of(app, first.id).state == "scheduled", "the rung with a run is left to it within the grace"
    assert lost.id not in scheduler(app).runs, "fired, not given a run that would start after its time"
    assert_every_escalation_reached_its_contacts(app)


class _Refusing:
    """A scheduler whose server makes the runs of one pathway minute and refuses the others (a busy SQLite server)."""

    def __init__(self, real: MemoryScheduler, made: int) -> None:
        self.real, self.made = real, made

    def schedule(self, timers: Sequence[Timer]) -> dict[str, str]:
        done = self.real.schedule(timers[: self.made])
        raise PartlyScheduled(f"{len(timers) - self.made} of {len(timers)} run(s) not scheduled: 503", done)


def test_the_runs_a_refused_batch_did_make_are_linked_and_only_the_rest_wait_for_the_sweep(app: App) -> None:
    with batched(app):  # as a deadline run or the API's queue does: one scheduling call for all three
        episodes = [app.service.enroll("bridge-test", f"P-REL-{n:03}").episode_id for n in range(3)]
        real, app.scheduler = scheduler(app), _Refusing(scheduler(app), made=1)  # type: ignore[assignment]
        for episode_id in episodes:
            follow_up(app, episode_id)
    app.scheduler = real
    with Session(app.engine) as s:
        linked = [r.episode_id for r in s.exec(select(RungRecord).where(col(RungRecord.flow_run_id).is_not(None)))]
        left = [row.episode_id for row in store.unscheduled_timers(s, None, 10)]
    assert len(linked) == 1 and len(left) == 2 and set(linked + left) == set(episodes)
    assert [r.timer.episode_id for r in real.waiting()] == linked


def test_an_enrollment_a_crash_left_unscheduled_is_scheduled_by_a_thorough_tick_or_when_due_soon(app: App) -> None:
    episode_id = app.service.enroll("bridge-test", "P-REL-002").episode_id  # crashed before the follow-up
    assert scheduler(app).waiting() == []
    assert sweep_tick(app, "serve-a") is None, "due in 4 h: a quick tick leaves it (a follow-up may be on it)"
    clock(app).advance(timedelta(hours=4) - SCHEDULE_AHEAD + timedelta(seconds=1))
    report = sweep_tick(app, "serve-a")
    assert report is not None and report.scheduled == 1
    assert [r.timer.episode_id for r in scheduler(app).waiting()] == [episode_id]
    later = app.service.enroll("bridge-test", "P-REL-003").episode_id
    report = sweep_tick(app, "serve-a", thorough=True)
    assert report is not None and report.scheduled == 1
    assert {r.timer.episode_id for r in scheduler(app).waiting()} == {episode_id, later}


def test_a_restart_takes_over_the_lease_of_a_local_holder_that_died(app: App) -> None:
    import socket
    import subprocess

    from engine.orchestration.up import free_dead_lease

    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    now = clock(app).now()
    assert store.acquire_lease(app.engine, LEASE, f"{host}:{os.getppid()}:alive", now, LEASE_TTL)
    assert free_dead_lease(app) is False, "a live holder keeps its lease"
    store.release_lease(app.engine, LEASE, f"{host}:{os.getppid()}:alive")
    assert store.acquire_lease(app.engine, LEASE, f"{host}:{dead.pid}:killed", now, LEASE_TTL)
    assert free_dead_lease(app) is True
    assert store.lease_holder(app.engine, LEASE, now) is None
    assert store.acquire_lease(app.engine, LEASE, f"elsewhere:{dead.pid}:x", now, LEASE_TTL)
    assert free_dead_lease(app) is False, "a holder on another host is only freed by expiry"
