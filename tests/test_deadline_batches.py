"""Deadline runs shared by every rung of a pathway due in the same minute (issue 12), with in-memory ports.

Prefect's scheduler makes one run per pathway and wall minute; :class:`MemoryScheduler` with ``shared=True`` does
the same, so the follow-up, the reconciler and the sweep are checked here against shared runs in milliseconds:
one run fires every rung of its minute once, meeting one deadline never cancels the run the others wait for, a
run already under way is not joined, and a run whose rungs are all closed is cancelled. SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from store_fixtures import BACKENDS
from test_app import assert_every_escalation_reached_its_contacts, bridge_app, enrolled, escalations

from engine import store
from engine.app import App, deadlines, follow_up, sweep
from engine.app import reconcile as reconciler
from engine.app.deadlines import (
    LOOK_AGAIN,
    Behind,
    DeadlineRun,
    all_met,
    deadline_slot,
    fire_due_of_run,
    run_listing,
)
from engine.app.followup import schedule_timers
from engine.app.inline import MemoryScheduler, RecordingNotifier
from engine.app.ports import Timer
from engine.app.publish import publish_open_escalations
from engine.app.sweep import has_work
from engine.app.throttle import Throttle
from engine.clock import ManualClock, utc
from engine.notify.delivery import DeliveryReport, Notification
from engine.orchestration.names import deadline_batch_name, deadline_batch_title
from engine.store import ReleasedRunRecord, RungRecord

NALOXONE = "1/s.ed.task.naloxone"


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    with bridge_app(request.param, tmp_path, MemoryScheduler(shared=True)) as app:
        yield app


def clock(app: App) -> ManualClock:
    assert isinstance(app.clock, ManualClock)
    return app.clock


def runs(app: App) -> MemoryScheduler:
    assert isinstance(app.scheduler, MemoryScheduler)
    return app.scheduler


def rung(app: App, rung_id: str) -> RungRecord:
    with Session(app.engine) as s:
        found = s.get(RungRecord, rung_id)
    assert found is not None
    return found


def naloxone(episode_id: str) -> str:
    return f"{episode_id}/{NALOXONE}#r0"


def test_rungs_due_in_the_same_minute_share_one_run_that_fires_each_once(app: App) -> None:
    episodes = []
    for _ in range(5):
        episodes.append(enrolled(app))
        clock(app).advance(timedelta(seconds=7))  # due 7 s apart: all within one wall minute (35 s)
    rungs = [rung(app, naloxone(ep)) for ep in episodes]
    assert len({deadline_slot(utc(r.due_at)) for r in rungs}) == 1, "the test's deadlines must share a minute"
    assert len({r.flow_run_id for r in rungs}) == 1, "one run for the pathway's minute, not one per rung"
    clock(app).set(max(utc(r.due_at) for r in rungs) + timedelta(seconds=1))
    before = app.publisher.versions.get("open-escalations", 0)  # type: ignore[attr-defined]
    calls_before = app.publisher.calls  # type: ignore[attr-defined]
    schedule, calls = runs(app).schedule, []
    runs(app).schedule = lambda timers: calls.append(len(timers)) or schedule(timers)  # type: ignore[method-assign]
    runs(app).run_due(app, clock(app).now())
    assert calls == [len(rungs)], "the next rungs of every episode fired are scheduled in one call, not one each"
    assert all(rung(app, f"{ep}/{NALOXONE}#r1").flow_run_id for ep in episodes)
    assert sorted(e.rung_id for e in escalations(app)) == sorted(r.id for r in rungs)
    assert_every_escalation_reached_its_contacts(app)
    assert sweep(app).fired == 0, "nothing was left for the safety net"
    published = app.publisher.versions  # type: ignore[attr-defined]
    assert published["open-escalations"] == before + 1, "the program's table once per run, not once per rung"
    assert len(app.publisher.artifacts["open-escalations"]) == len(rungs)  # type: ignore[attr-defined]
    assert app.publisher.calls == calls_before + 1, "every episode's artifact and the table in one call"  # type: ignore[attr-defined]
    assert all(published[f"episode-{ep}".lower()] >= 2 for ep in episodes)  # enrolled, then fired


def test_a_run_inside_the_throttle_interval_leaves_the_programs_table_to_one_trailing_version(app: App) -> None:
    """A serving process rebuilds the program-wide artifacts at most once per interval (engine.app.throttle): a run
    that fires inside it does not send the table, and one version follows when the interval ends, with every
    escalation raised meanwhile. Escalating never waits for it."""
    ticks, trailing = [100.0], []
    app.throttle = Throttle(10.0, now=lambda: ticks[0], after=lambda delay, work: trailing.append((delay, work)))
    episodes = [enrolled(app) for _ in range(3)]
    rungs = [rung(app, naloxone(ep)) for ep in episodes]
    publish_open_escalations(app)  # the interval begins (at 100 s)
    published = app.publisher.versions  # type: ignore[attr-defined]
    before = published["open-escalations"]
    ticks[0] += 4.0
    clock(app).set(max(utc(r.due_at) for r in rungs) + timedelta(seconds=1))
    for run_id in {r.flow_run_id for r in rungs}:
        assert run_id is not None
        fire_due_of_run(app, run_id)
    assert sorted(e.rung_id for e in escalations(app)) == sorted(r.id for r in rungs), "escalated at once"
    assert published.get("open-escalations", 0) == before, "inside the interval: not rebuilt"
    assert [delay for delay, _work in trailing] == [6.0], "one trailing version, when the interval ends"
    trailing[0][1]()
    assert published["open-escalations"] == before + 1
    assert len(app.publisher.artifacts["open-escalations"]) == len(rungs), "it shows everything raised meanwhile"  # type: ignore[attr-defined]


class SlowFirstContact(RecordingNotifier):
    """The first delivery asked for waits until another escalation has been delivered: a contact whose webhook
    hangs, or is being retried, while the rest of the minute's escalations are due too."""

    def __init__(self, contacts: Mapping[str, Sequence[str]]) -> None:
        super().__init__(contacts)
        self.first: str | None = None
        self.another_delivered = threading.Event()
        self.waited_for_another: bool | None = None

    def deliver(self, notification: Notification, **kwargs: Any) -> DeliveryReport:
        with self._lock:
            first = self.first is None
            self.first = self.first or notification.rung_id
        if first:  # a failure, not a wall-clock bound: one at a time, nothing else is delivered meanwhile
            self.waited_for_another = self.another_delivered.wait(timeout=30)
            return super().deliver(notification, **kwargs)
        report = super().deliver(notification, **kwargs)
        self.another_delivered.set()
        return report


def test_a_slow_contact_does_not_hold_the_other_escalations_of_the_run(app: App) -> None:
    assert isinstance(app.notifier, RecordingNotifier)
    slow = SlowFirstContact(app.notifier.contacts)
    app.notifier = slow
    episodes = []
    for _ in range(3):
        episodes.append(enrolled(app))
        clock(app).advance(timedelta(seconds=5))
    rungs = [rung(app, naloxone(ep)) for ep in episodes]
    assert len({r.flow_run_id for r in rungs}) == 1, "the test's rungs must share a run"
    clock(app).set(max(utc(r.due_at) for r in rungs) + timedelta(seconds=1))

    runs(app).run_due(app, clock(app).now())

    assert slow.waited_for_another is True, "the others were delivered while the first contact was slow"
    assert sorted(e.rung_id for e in escalations(app)) == sorted(r.id for r in rungs)
    assert_every_escalation_reached_its_contacts(app)


def test_the_shared_run_fires_each_rung_at_its_own_time_not_the_minutes_start(app: App) -> None:
    first = enrolled(app)
    clock(app).advance(timedelta(seconds=30))
    second = enrolled(app)
    run_id = rung(app, naloxone(first)).flow_run_id
    assert run_id is not None and rung(app, naloxone(second)).flow_run_id == run_id
    clock(app).set(utc(rung(app, naloxone(first)).due_at))
    step = fire_due_of_run(app, run_id)
    assert [changes.escalations[0][0] for changes, _done in step.fired] == [naloxone(first)]
    assert step.wait == pytest.approx(30.0), "the run waits for the next rung rather than firing it early"
    assert rung(app, naloxone(second)).status == "pending"
    clock(app).advance(timedelta(seconds=30))
    step = fire_due_of_run(app, run_id)
    assert [changes.escalations[0][0] for changes, _done in step.fired] == [naloxone(second)]
    outcomes = {(row["episode"], row["outcome"]) for row in run_listing(app, run_id)}
    assert {(first, "escalated"), (second, "escalated")} <= outcomes


def test_a_pass_hands_its_scheduling_then_its_publishing_over_and_fires_before_they_are_done(app: App) -> None:
    episodes = [enrolled(app)]
    clock(app).advance(timedelta(seconds=20))
    episodes.append(enrolled(app))
    run_id = rung(app, naloxone(episodes[0])).flow_run_id
    assert run_id is not None and rung(app, naloxone(episodes[1])).flow_run_id == run_id
    handed: list[Callable[[], None]] = []
    calls = app.publisher.calls  # type: ignore[attr-defined]

    clock(app).set(utc(rung(app, naloxone(episodes[0])).due_at))
    first = fire_due_of_run(app, run_id, later=handed.append)
    clock(app).set(utc(rung(app, naloxone(episodes[1])).due_at))
    second = fire_due_of_run(app, run_id, later=handed.append)  # the first pass's follow-through is not done yet

    assert [len(step.fired) for step in (first, second)] == [1, 1]
    assert len(handed) == 4, "each pass hands over its timers and its artifacts"
    assert rung(app, f"{episodes[0]}/{NALOXONE}#r1").flow_run_id is None, "nothing scheduled until handed work runs"
    assert app.publisher.calls == calls  # type: ignore[attr-defined]
    handed[0]()  # the first pass's timers, before its artifacts: the next rungs' runs matter more
    assert rung(app, f"{episodes[0]}/{NALOXONE}#r1").flow_run_id is not None
    assert app.publisher.calls == calls  # type: ignore[attr-defined]
    for work in handed[1:]:
        work()
    assert rung(app, f"{episodes[1]}/{NALOXONE}#r1").flow_run_id is not None
    assert app.publisher.calls == calls + 2  # type: ignore[attr-defined]
    assert sorted(e.rung_id for e in escalations(app)) == sorted(naloxone(ep) for ep in episodes)


def test_behind_does_the_handed_work_in_order_in_the_context_it_was_handed_in() -> None:
    label: contextvars.ContextVar[str] = contextvars.ContextVar("label", default="none")
    behind, seen = Behind(), []
    for n in range(3):
        label.set(f"pass {n}")
        behind(lambda: seen.append(label.get()))
    behind(lambda: 1 / 0)  # a failure is logged, not raised into the run
    behind.close()
    assert seen == ["pass 0", "pass 1", "pass 2"]


def test_meeting_one_deadline_keeps_the_run_the_others_wait_for_and_the_last_one_cancels_it(app: App) -> None:
    first, second = enrolled(app), enrolled(app)
    shared = runs(app).runs[naloxone(first)]
    assert runs(app).runs[naloxone(second)] is shared
    follow_up(app, first, app.service.record_event(first, "naloxone.given"))
    assert shared.state == "scheduled", "meeting one deadline cancelled the run another rung waits for"
    follow_up(app, second, app.service.record_event(second, "naloxone.given"))
    assert shared.state == "cancelled", "no rung needs the run: it must not start a process"
    clock(app).advance(timedelta(hours=5))
    runs(app).run_due(app, clock(app).now())
    assert [e.rung_id for e in escalations(app) if e.rung_id.endswith(f"{NALOXONE}#r0")] == []


def test_a_rung_scheduled_into_a_run_as_it_is_cancelled_is_refused_and_scheduled_again(app: App) -> None:
    first, second = enrolled(app), enrolled(app)
    shared = runs(app).runs[naloxone(first)]
    with store.session_scope(app.engine) as session:  # the second rung is not linked yet when the first is met
        session.get(RungRecord, naloxone(second)).flow_run_id = None  # type: ignore[union-attr]
    cancel = runs(app).cancel
    refused: list[int] = []

    def joined_meanwhile(run_ids: Sequence[str], *, met: bool = False) -> int:
        with store.session_scope(app.engine) as session:  # another process links it between check and cancel
            refused.append(store.set_rung_runs(session, {naloxone(second): shared.id}, clock(app).now()))
        return cancel(run_ids, met=met)

    runs(app).cancel = joined_meanwhile  # type: ignore[method-assign]
    follow_up(app, first, app.service.record_event(first, "naloxone.given"))
    assert refused == [0], "a rung joined a run already being cancelled"
    assert shared.state == "cancelled" and rung(app, naloxone(second)).flow_run_id is None
    assert has_work(app, thorough=True), "the sweep schedules it (a quick tick, once it is due within 2 minutes)"
    assert sweep(app).scheduled == 1
    fresh = runs(app).runs[naloxone(second)]
    assert fresh is not shared and fresh.state == "scheduled" and rung(app, naloxone(second)).flow_run_id == fresh.id
    clock(app).set(utc(rung(app, naloxone(second)).due_at))
    runs(app).run_due(app, clock(app).now())
    assert [e.rung_id for e in escalations(app)] == [naloxone(second)], "it fired at its time, by its own run"


def test_a_rung_linked_between_the_check_and_the_mark_keeps_the_run(app: App) -> None:
    first, second = enrolled(app), enrolled(app)
    shared = runs(app).runs[naloxone(first)]
    with store.session_scope(app.engine) as session:
        session.get(RungRecord, naloxone(second)).flow_run_id = None  # type: ignore[union-attr]
    needs = store.run_needs
    calls: list[int] = []

    def linked_after_first_look(session: Session, run_ids: Iterable[str]) -> dict[str, bool]:
        calls.append(1)
        if len(calls) == 2:  # the second look, after the mark: the other process's link had committed first
            with store.session_scope(app.engine) as other:
                other.get(RungRecord, naloxone(second)).flow_run_id = shared.id  # type: ignore[union-attr]
        return needs(session, run_ids)

    store.run_needs = linked_after_first_look  # type: ignore[assignment]
    try:
        follow_up(app, first, app.service.record_event(first, "naloxone.given"))
    finally:
        store.run_needs = needs  # type: ignore[assignment]
    assert shared.state == "scheduled", "the run was cancelled although a rung had joined it"
    with store.session_scope(app.engine) as session:  # not released: rungs may join it again
        assert store.set_rung_runs(session, {naloxone(first): shared.id}, clock(app).now()) == 0  # (not pending)
        assert session.get(ReleasedRunRecord, shared.id) is None


def test_a_run_already_under_way_is_not_joined(app: App) -> None:
    first = enrolled(app)
    runs(app).orphan(lambda _r: True, "running", clock(app).now())  # its minute's run has started
    second = enrolled(app)
    slots = {deadline_slot(utc(rung(app, naloxone(ep)).due_at)) for ep in (first, second)}
    assert len(slots) == 1, "both deadlines fall in the minute whose run is under way"
    assert rung(app, naloxone(second)).flow_run_id != rung(app, naloxone(first)).flow_run_id
    assert runs(app).runs[naloxone(second)].state == "scheduled"


def run_to_its_end(app: App, run_id: str) -> list[str]:
    """A deadline run's passes at the current time until it ends (as the flow loops); the rungs it escalated."""
    run, fired = DeadlineRun(app, run_id), []
    for _ in range(10):
        step = run.step()
        fired += [changes.escalations[0][0] for changes, _done in step.fired if changes.escalations]
        if step.wait is None:
            return fired
        assert step.wait == 0.0, "nothing is waiting: the run only looks once more"
    raise AssertionError("the run never ended")


def unlinked(app: App, rung_id: str) -> None:
    with store.session_scope(app.engine) as session:
        session.get(RungRecord, rung_id).flow_run_id = None  # type: ignore[union-attr]


def test_a_rung_scheduled_into_a_run_that_ended_meanwhile_goes_to_the_minutes_next_run(app: App) -> None:
    """Prefect answered the minute's run while it was still waiting; the run started, found nothing and ended
    before the follow-up linked its rung (measured: such rungs waited for the sweep, 20-43 s late). The ended run
    refuses the link and the rung is scheduled again at once, into a run of its own minute."""
    episode = enrolled(app)
    ended = runs(app).runs[naloxone(episode)]
    unlinked(app, naloxone(episode))
    schedule = runs(app).schedule

    def answered_then_ran(timers: Sequence[Timer]) -> dict[str, str]:
        answer = schedule(timers)
        if ended.state == "scheduled":  # the run starts and ends between the answer and the link
            ended.state = "completed"
            assert run_to_its_end(app, ended.id) == []
        return answer

    runs(app).schedule = answered_then_ran  # type: ignore[method-assign]
    assert schedule_timers(app, episode) == 1
    fresh = rung(app, naloxone(episode)).flow_run_id
    assert fresh is not None and fresh != ended.id, "the rung was linked to a run that had ended"
    assert deadline_slot(runs(app).runs[naloxone(episode)].timer.at) == deadline_slot(ended.timer.at)
    clock(app).set(utc(rung(app, naloxone(episode)).due_at))
    assert run_to_its_end(app, fresh) == [naloxone(episode)], "escalated at its time by the minute's next run"
    assert sweep(app).fired == 0


def test_a_rung_linked_as_the_run_closes_is_fired_by_its_last_look(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = enrolled(app), enrolled(app)
    run_id = rung(app, naloxone(first)).flow_run_id
    assert run_id is not None
    unlinked(app, naloxone(second))
    clock(app).set(utc(rung(app, naloxone(second)).due_at))
    app.service.record_event(first, "naloxone.given")  # the run's only linked rung is met: nothing to wait for
    close = deadlines.close_run

    def linked_just_before(app: App, run_id: str) -> None:
        if rung(app, naloxone(second)).flow_run_id is None:  # another process's link commits first
            with store.session_scope(app.engine) as other:
                assert store.set_rung_runs(other, {naloxone(second): run_id}, clock(app).now()) == 1
        close(app, run_id)

    monkeypatch.setattr(deadlines, "close_run", linked_just_before)
    assert run_to_its_end(app, run_id) == [naloxone(second)], "a rung linked before the run closed was left behind"
    monkeypatch.setattr(deadlines, "close_run", close)
    with store.session_scope(app.engine) as session:  # closed: nothing joins it any more
        assert store.set_rung_runs(session, {f"{second}/{NALOXONE}#r1": run_id}, clock(app).now()) == 0


def test_a_waiting_run_looks_again_for_rungs_linked_after_its_pass(app: App) -> None:
    first = enrolled(app)
    clock(app).advance(timedelta(seconds=30))
    second = enrolled(app)
    run_id = rung(app, naloxone(first)).flow_run_id
    assert run_id is not None and rung(app, naloxone(second)).flow_run_id == run_id
    unlinked(app, naloxone(first))
    clock(app).set(utc(rung(app, naloxone(first)).due_at) - timedelta(seconds=5))
    run = DeadlineRun(app, run_id)
    step = run.step()
    assert step.fired == [] and step.wait == LOOK_AGAIN, "the run slept until the rung it knew of, 35 s away"
    with store.session_scope(app.engine) as session:  # linked after the run's pass (it was joined while pending)
        store.set_rung_runs(session, {naloxone(first): run_id}, clock(app).now())
    clock(app).set(utc(rung(app, naloxone(first)).due_at))
    step = run.step()
    assert [changes.escalations[0][0] for changes, _done in step.fired] == [naloxone(first)]
    assert step.wait == LOOK_AGAIN and not run.closed


def test_the_reconciler_keeps_a_shared_run_while_any_rung_needs_it(app: App) -> None:
    first, second = enrolled(app), enrolled(app)
    shared = runs(app).runs[naloxone(first)]
    app.service.record_event(first, "naloxone.given")  # committed; the process died before its follow-up
    assert not reconciler.plan(app, include_scheduled=True), "the second rung still needs the run"
    app.service.record_event(second, "naloxone.given")
    assert reconciler.plan(app, include_scheduled=True).cancel == (shared.id,)
    assert sweep(app).cancelled == 1 and shared.state == "cancelled"


def test_run_needs_reads_every_run_a_rung_of_this_store_links_to(app: App) -> None:
    first, second = enrolled(app), enrolled(app)
    run_id = rung(app, naloxone(first)).flow_run_id
    assert run_id is not None
    app.service.record_event(first, "naloxone.given")
    with Session(app.engine) as session:
        assert store.run_needs(session, [run_id, "run-of-another-store"]) == {run_id: True}
    app.service.record_event(second, "naloxone.given")
    with Session(app.engine) as session:
        assert store.run_needs(session, [run_id]) == {run_id: False}


def test_a_run_lists_met_work_apart_and_is_met_only_when_every_rung_was(app: App) -> None:
    """Operators read ``Met`` on a run whose every deadline was met in time, however far the run had got (the
    Prefect flow ends so when :func:`all_met` says so); a rung stopped by an acknowledgement is closed, not met."""
    first, second = enrolled(app), enrolled(app)
    run_id = rung(app, naloxone(first)).flow_run_id
    assert run_id is not None and rung(app, naloxone(second)).flow_run_id == run_id
    app.service.record_event(first, "naloxone.given")
    listing = run_listing(app, run_id)
    assert {(row["episode"], row["outcome"]) for row in listing} == {(first, "met before due"), (second, "pending")}
    assert not all_met(listing), "one deadline met, the other still waiting"
    app.service.record_event(second, "naloxone.given")
    assert all_met(run_listing(app, run_id))

    third = enrolled(app)
    clock(app).set(utc(rung(app, naloxone(third)).due_at) + timedelta(seconds=1))
    runs(app).run_due(app, clock(app).now())
    [escalation] = [e for e in escalations(app) if e.episode_id == third]
    later = rung(app, f"{third}/{NALOXONE}#r1").flow_run_id
    assert later is not None
    app.service.acknowledge(escalation.id, by="coordinator")
    listing = run_listing(app, later)
    assert {row["outcome"] for row in listing if row["episode"] == third} == {
        "closed before due (acknowledged or ended)"
    }
    assert not all_met(listing) and not all_met([])


def test_names_say_the_pathway_the_minute_and_what_the_run_found() -> None:
    slot = datetime(2026, 12, 2, 14, 5, tzinfo=UTC)
    assert deadline_batch_title("reentry", slot) == "reentry · deadlines 14:05 UTC"
    listing = [{"outcome": "escalated"}, {"outcome": "closed before due (acknowledged or ended)"}] * 2
    listing += [{"outcome": "escalated"}, {"outcome": "met before due"}]
    name = deadline_batch_name("reentry", "2026-12-02 14:05 UTC", listing)
    assert name == "reentry · deadlines 14:05 UTC · 3 escalated · 2 closed before due · 1 met before due"
    assert deadline_batch_name("reentry", "", []) == "reentry · deadlines · no rungs"
