"""A burst of writers: a unit of work waits for the store's lock within a bounded budget, then says so in one line.

Issue 14 saw ``database is locked [SQL: BEGIN IMMEDIATE]`` shown to a coordinator under a burst on SQLite. Here
another connection holds the write lock (as a burst's writer would) while a coordinator records an event.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlmodel import Session, select
from store_fixtures import BACKENDS, database_url
from test_app import CONTACTS, PATHWAY, enrolled, escalations

from engine import store
from engine.app import App, Settings, record_event
from engine.app.delivery import deliver
from engine.app.inline import RecordingNotifier, inline_app
from engine.clock import ManualClock, utc
from engine.errors import StoreBusy
from engine.language.loader import load_pathway_text
from engine.process import run_entry_point
from engine.store import InboundEventRecord, RungRecord

BUDGET = 1.5
NALOXONE = "1/s.ed.task.naloxone"


def _app(tmp_path: Path, url: str, *, budget: float = BUDGET) -> App:
    settings = Settings.from_env({"CAREPATH_HOME": str(tmp_path), "CAREPATH_DATABASE_URL": url})
    app = inline_app(settings, ManualClock(), notifier=RecordingNotifier(CONTACTS))
    engine = store.make_engine(url, busy_timeout=0.2, write_budget=budget)
    store.migrate(engine)
    app.__dict__["engine"] = engine  # a short budget, so the test does not wait the production minute
    result = load_pathway_text(PATHWAY, "bridge-test.yaml")
    assert result.ok and result.spec is not None
    app.service.register_pathway(result.spec, PATHWAY)
    return app


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[App]:
    with database_url("sqlite", tmp_path) as url:
        app = _app(tmp_path, url)
        yield app
        app.close()


class WriteLock:
    """Another process's writer, holding SQLite's write lock until released."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.connection.execute("ROLLBACK")
        self.connection.close()


def _db_path(app: App) -> str:
    return app.settings.database_url.removeprefix("sqlite:///")


def test_a_writer_that_waits_past_the_budget_gets_one_line_without_sql_and_nothing_is_stored(
    sqlite_app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = enrolled(sqlite_app)
    lock = WriteLock(_db_path(sqlite_app))
    started = time.monotonic()
    try:
        code = run_entry_point(lambda: record_event(sqlite_app, ep, "ed.discharged") and 0)
    finally:
        lock.release()
    waited = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: the store stayed busy with other writers for 1.5 s (database is locked)"), err
    assert "SQL" not in err and "BEGIN" not in err
    assert BUDGET <= waited < BUDGET + 10, f"gave up after {waited:.1f} s"
    with Session(sqlite_app.engine) as s:
        assert list(s.exec(select(InboundEventRecord))) == [], "nothing was stored"
    assert sqlite_app.service.episode(ep).stage == "ed"


def test_a_writer_that_gets_the_lock_within_the_budget_succeeds(sqlite_app: App) -> None:
    ep = enrolled(sqlite_app)
    lock = WriteLock(_db_path(sqlite_app))
    releaser = threading.Timer(0.8, lock.release)  # longer than one attempt's busy timeout (0.2 s)
    releaser.start()
    try:
        result = record_event(sqlite_app, ep, "ed.discharged")
    finally:
        releaser.join()
    assert (result.status, result.stage) == ("applied", "clinic")


def test_a_burst_of_writers_each_waiting_longer_than_one_attempt_loses_nothing(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path) as url:
        app = _app(tmp_path, url, budget=60)  # each attempt waits 0.2 s: a burst of nine needs retries
        episodes = [enrolled(app) for _ in range(6)]
        errors: list[BaseException] = []
        senders = [(ep, f"burst-{ep}") for ep in episodes] + [(ep, f"burst-{ep}") for ep in episodes[:3]]
        barrier = threading.Barrier(len(senders))

        def send(ep: str, event_id: str) -> None:
            barrier.wait()
            try:
                app.service.record_event(ep, "ed.discharged", {}, event_id=event_id)
            except Exception as exc:  # asserted below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=sender) for sender in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert [app.service.episode(ep).stage for ep in episodes] == ["clinic"] * len(episodes)
        with Session(app.engine) as s:
            applied = [r.status for r in s.exec(select(InboundEventRecord))]
        assert sorted(applied) == ["applied"] * len(episodes) + ["duplicate"] * 3
        app.close()


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.id == "postgresql"])
def test_a_postgresql_lock_conflict_is_one_line_too(backend: str, tmp_path: Path) -> None:
    with database_url(backend, tmp_path) as url:
        app = _app(tmp_path, url)
        ep = enrolled(app)
        with psycopg.connect(url) as holder:
            holder.execute("LOCK TABLE episode IN ACCESS EXCLUSIVE MODE")
            busy_error = pytest.raises(StoreBusy, match=r"^the store stayed busy .*lock")
            with busy_error as busy, store.session_scope(app.engine) as session:
                session.execute(text("SET LOCAL lock_timeout = '200ms'"))
                store.lock_episode(session, ep)
            holder.rollback()
        assert "\n" not in str(busy.value) and "SELECT" not in str(busy.value)
        app.close()


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.id == "postgresql"])
def test_an_acknowledgement_takes_the_episode_before_it_stops_rungs(backend: str, tmp_path: Path) -> None:
    """Seen under load: an acknowledgement stopped the escalation's later rungs, then waited at its commit for the
    episode (its audit row's key) that a firing held while the firing waited for those rungs; PostgreSQL broke the
    deadlock by refusing one of them. The acknowledgement now takes the episode first, as every writer of an
    episode's rows does, so the firing gets its rungs and the acknowledgement goes through after it."""
    with database_url(backend, tmp_path) as url:
        app = _app(tmp_path, url)
        ep, _first = _raised(app)
        later = f"{ep}/{NALOXONE}#r1"
        [escalation] = escalations(app)
        outcome: dict[str, object] = {}

        def acknowledge() -> None:
            try:
                outcome["stopped"] = app.service.acknowledge(escalation.id, by="staff-1")[1]
            except Exception as exc:  # the test reports it
                outcome["error"] = exc

        with psycopg.connect(url) as firing, psycopg.connect(url, autocommit=True) as watcher:
            firing.execute("SELECT id FROM episode WHERE id = %s FOR UPDATE", (ep,))  # a firing under way
            thread = threading.Thread(target=acknowledge)
            thread.start()
            _until_a_writer_waits(watcher, "the acknowledgement never waited for the episode a firing held")
            firing.execute("SET LOCAL lock_timeout = '10s'")
            firing.execute("UPDATE rung SET status = status WHERE id = %s", (later,))  # what the firing writes next
            firing.commit()
        thread.join(timeout=60)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["stopped"] == 1
        with Session(app.engine) as s:
            stopped = s.get(RungRecord, later)
            assert stopped is not None and stopped.status == "cancelled"
        app.close()


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.id == "postgresql"])
def test_a_delivery_takes_the_episode_before_it_finishes_the_escalation(backend: str, tmp_path: Path) -> None:
    """Seen under load after the acknowledgement's fix: a delivery marked its escalation finished, then waited at its
    commit for the episode (its audit row's key) that an acknowledgement held while it waited for that escalation.
    The delivery's finish now takes the episode first too (its contacts are told before, outside any lock)."""
    with database_url(backend, tmp_path) as url:
        app = _app(tmp_path, url)
        ep, first = _raised(app)  # raised, not yet delivered
        told, go, outcome = threading.Event(), threading.Event(), dict[str, object]()
        notifier = app.notifier

        class Pausing:  # the contacts are told, then the test takes the episode before the delivery finishes
            def deliver(self, *args: Any, **kwargs: Any) -> Any:
                report = notifier.deliver(*args, **kwargs)
                told.set()
                go.wait(timeout=60)
                return report

        app.__dict__["notifier"] = Pausing()

        def deliver_it() -> None:
            try:
                outcome["reports"] = deliver(app, [first])
            except Exception as exc:  # the test reports it
                outcome["error"] = exc

        thread = threading.Thread(target=deliver_it)
        thread.start()
        assert told.wait(timeout=60), "the contacts were never told"
        with psycopg.connect(url) as acknowledging, psycopg.connect(url, autocommit=True) as watcher:
            acknowledging.execute("SELECT id FROM episode WHERE id = %s FOR UPDATE", (ep,))  # an acknowledgement
            go.set()
            _until_a_writer_waits(watcher, "the delivery never waited for the episode an acknowledgement held")
            acknowledging.execute("SET LOCAL lock_timeout = '10s'")
            acknowledging.execute(  # what the acknowledgement writes next
                "UPDATE escalation SET acknowledged_at = now(), acknowledged_by = 'staff-1' WHERE rung_id = %s",
                (first,),
            )
            acknowledging.commit()
        thread.join(timeout=60)
        assert "error" not in outcome, outcome.get("error")
        [escalation] = escalations(app)
        assert escalation.delivery_done_at is not None and escalation.acknowledged_by == "staff-1"
        app.close()


def _raised(app: App) -> tuple[str, str]:
    """An enrolled episode whose first naloxone rung has fired (its escalation raised, not delivered): the episode and
    the rung."""
    ep = enrolled(app)
    first = f"{ep}/{NALOXONE}#r0"
    with Session(app.engine) as s:
        due = s.get(RungRecord, first)
        assert due is not None
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.set(utc(due.due_at) + timedelta(seconds=1))
    assert app.service.fire_rung(first) is not None
    return ep, first


def _until_a_writer_waits(watcher: psycopg.Connection[Any], failure: str) -> None:
    """Until some connection to this database waits on a lock (state, bounded at a minute)."""
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    for _ in range(600):
        row = watcher.execute(waiting).fetchone()
        if row is not None and row[0] >= 1:
            return
        time.sleep(0.1)
    pytest.fail(failure)
