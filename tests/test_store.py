"""The store on real databases: SQLite in a temporary folder and PostgreSQL (skipped only when unreachable).

What the engine relies on: migrations that build exactly the declared schema, idempotently and from several
processes at once; aware UTC times; the due lookup; and the exactly-once and no-lost-update guarantees under
concurrent writers.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, func, select
from store_fixtures import head_revision

from engine import store
from engine.errors import StoreError, UnknownEpisode
from engine.store import (
    AuditRecord,
    EpisodeRecord,
    EscalationRecord,
    PathwayVersionRecord,
    ProcessedEventRecord,
    RungRecord,
    WorkItemRecord,
    readmodels,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TABLES = {
    "audit",
    "episode",
    "escalation",
    "handoff",
    "pathway_version",
    "processed_event",
    "rung",
    "setting",
    "stage_visit",
    "work_item",
}


def add_episode(session: Session, episode_id: str = "ep-0000a001", stage: str = "intake", at: datetime = T0) -> None:
    if session.get(PathwayVersionRecord, ("reentry", 1)) is None:
        session.add(
            PathwayVersionRecord(
                pathway_id="reentry", version=1, source_text="id: reentry\n", source_sha256="0" * 64, registered_at=at
            )
        )
    session.add(
        EpisodeRecord(
            id=episode_id,
            person_ref="P-000123",
            pathway_id="reentry",
            pathway_version=1,
            stage=stage,
            enrolled_at=at,
            stage_entered_at=at,
            updated_at=at,
        )
    )


def add_item(
    session: Session, episode_id: str, key: str, due_at: datetime, rung_offsets: tuple[timedelta, ...] = (timedelta(),)
) -> list[str]:
    """A work item with one rung per offset after ``due_at``; returns the rung ids."""
    item_id = f"{episode_id}/1/{key}"
    session.add(
        WorkItemRecord(
            id=item_id,
            episode_id=episode_id,
            kind="handoff",
            key=key,
            title=f"{key} by deadline",
            owner="care-coordinator",
            due_at=due_at,
            done_on="handoff.accepted",
            opened_at=T0,
        )
    )
    ids = [f"{item_id}#r{k}" for k in range(len(rung_offsets))]
    for k, offset in enumerate(rung_offsets):
        session.add(
            RungRecord(
                id=ids[k],
                work_item_id=item_id,
                episode_id=episode_id,
                index=k,
                due_at=due_at + offset,
                role="supervisor",
            )
        )
    return ids


def race(worker: Callable[[], object], n: int) -> list[object]:
    """Run ``worker`` in ``n`` threads released together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            barrier.wait()
            results[k] = worker()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


# ------------------------------------------------------------------------------------------ configuration


def test_database_url_prefers_the_environment_then_the_data_folder(tmp_path: Path) -> None:
    assert store.database_url(tmp_path, {"CAREPATH_DATABASE_URL": "postgresql://u@h/db"}) == "postgresql://u@h/db"
    assert store.database_url(tmp_path, {}) == f"sqlite:///{tmp_path.resolve()}/carepath.db"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgres_urls_use_psycopg_3(scheme: str) -> None:
    engine = store.make_engine(f"{scheme}://someone@db.invalid:5432/carepath")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


def test_sqlite_is_wal_with_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'new' / 'carepath.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == int(store.BUSY_TIMEOUT_S * 1000)
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


# -------------------------------------------------------------------------------------------- migrations


def test_migrate_builds_the_declared_schema_and_is_idempotent(empty_engine: Engine) -> None:
    store.migrate(empty_engine)
    store.migrate(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) >= TABLES
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), store.metadata)
    assert diffs == []


def test_processes_starting_together_migrate_once(db_url: str) -> None:
    code = "import sys; from engine import store; e = store.make_engine(sys.argv[1]); store.migrate(e); e.dispose()"
    procs = [subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE) for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    engine = store.make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
    engine.dispose()


# ----------------------------------------------------------------------------------------- transactions


def test_times_come_back_as_aware_utc_and_naive_times_are_refused(engine: Engine) -> None:
    local = datetime(2026, 3, 1, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    with store.session_scope(engine) as s:
        add_episode(s, at=local)
    with Session(engine) as s:
        episode = s.get(EpisodeRecord, "ep-0000a001")
        assert episode is not None
        assert episode.enrolled_at == T0 and episode.enrolled_at.tzinfo == UTC
    with pytest.raises(StatementError, match="aware datetime"), store.session_scope(engine) as s:
        add_episode(s, "ep-0000a002", at=datetime(2026, 3, 1, 9, 0))


def test_session_scope_rolls_back_everything_on_error(engine: Engine) -> None:
    with pytest.raises(RuntimeError), store.session_scope(engine) as s:
        add_episode(s)
        s.flush()
        raise RuntimeError("boom")
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(EpisodeRecord)).one() == 0


def test_foreign_keys_are_checked_at_commit_in_any_insert_order(engine: Engine) -> None:
    with store.session_scope(engine) as s:  # children first: fine, the parent comes in the same transaction
        add_item(s, "ep-0000a001", "accept", T0)
        add_episode(s)
    with pytest.raises(IntegrityError), store.session_scope(engine) as s:
        add_item(s, "ep-missing", "accept", T0)


def test_readers_do_not_wait_for_a_writer_and_see_the_last_commit(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        add_episode(s)
    with store.session_scope(engine) as writer:
        episode = store.lock_episode(writer, "ep-0000a001")
        episode.stage = "community"
        writer.flush()
        started = time.perf_counter()
        with Session(engine) as reader:  # e.g. a status view opened while the write is in progress
            seen = reader.get(EpisodeRecord, "ep-0000a001")
            assert seen is not None and seen.stage == "intake"
        assert time.perf_counter() - started < 5
    with Session(engine) as reader:
        seen = reader.get(EpisodeRecord, "ep-0000a001")
        assert seen is not None and seen.stage == "community"


def test_locking_needs_a_write_scope(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        add_episode(s)
    with Session(engine) as s, pytest.raises(StoreError, match="session_scope"):
        store.lock_episode(s, "ep-0000a001")


def test_lock_episode_raises_unknown_episode(engine: Engine) -> None:
    with pytest.raises(UnknownEpisode, match="ep-nope"), store.session_scope(engine) as s:
        store.lock_episode(s, "ep-nope")


def test_two_writers_on_one_episode_lose_no_update(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        add_episode(s)
    per_thread = 15

    def writer() -> None:
        for _ in range(per_thread):
            with store.session_scope(engine) as s:
                episode = store.lock_episode(s, "ep-0000a001")
                seen = episode.revision
                time.sleep(0.002)  # widen the read-modify-write window
                episode.revision = seen + 1
                episode.facts = {**episode.facts, "writes": seen + 1}
                s.add(episode)

    race(writer, 2)
    with Session(engine) as s:
        episode = s.get(EpisodeRecord, "ep-0000a001")
        assert episode is not None
        assert episode.revision == 2 * per_thread
        assert episode.facts == {"writes": 2 * per_thread}


# ----------------------------------------------------------------------------------------- exactly once


def test_a_rung_escalates_once_under_racing_firers(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        add_episode(s)
        (rung_id,) = add_item(s, "ep-0000a001", "accept", T0)

    def fire() -> int | None:
        with store.session_scope(engine) as s:
            rung = s.get(RungRecord, rung_id)
            assert rung is not None
            escalation = store.record_escalation_once(s, rung, T0 + timedelta(minutes=1))
            return None if escalation is None else escalation.id

    results = race(fire, 6)
    assert len([r for r in results if r is not None]) == 1
    with Session(engine) as s:
        escalations = s.exec(select(EscalationRecord)).all()
        assert [(e.rung_id, e.role, e.raised_at) for e in escalations] == [
            (rung_id, "supervisor", T0 + timedelta(minutes=1))
        ]
        rung = s.get(RungRecord, rung_id)
        assert rung is not None and rung.status == "fired"
        assert store.due_pending_rungs(s, "ep-0000a001", T0 + timedelta(days=1)) == []


def test_an_event_id_is_processed_once_under_a_race(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        add_episode(s)

    def claim() -> bool:
        with store.session_scope(engine) as s:
            return store.mark_event_processed(s, "evt-1", "ep-0000a001", "handoff.accepted", T0)

    assert sorted(race(claim, 6)) == [False] * 5 + [True]
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(ProcessedEventRecord)).one() == 1


# -------------------------------------------------------------------------------------------------- reads


def test_due_rungs_are_pending_and_due_oldest_first_up_to_the_limit(engine: Engine) -> None:
    """What the follow-up fires at once (an episode's due rungs) and where the sweep looks (episodes with any)."""
    with store.session_scope(engine) as s:
        add_episode(s)
        add_episode(s, "ep-0000a002", at=T0 + timedelta(hours=1))
        ids = add_item(s, "ep-0000a001", "accept", T0, tuple(timedelta(hours=h) for h in (0, 5, 2, 48)))
        cancelled = add_item(s, "ep-0000a001", "visit", T0 - timedelta(days=1))[0]
        add_item(s, "ep-0000a002", "visit", T0 + timedelta(hours=4))
    with store.session_scope(engine) as s:
        rung = s.get(RungRecord, cancelled)
        assert rung is not None
        rung.status = "cancelled"
    now = T0 + timedelta(hours=5)
    with Session(engine) as s:
        assert [r.id for r in store.due_pending_rungs(s, "ep-0000a001", now)] == [ids[0], ids[2], ids[1]]
        assert [r.id for r in store.due_pending_rungs(s, "ep-0000a001", now, limit=2)] == [ids[0], ids[2]]
        # the same instant written in another zone compares as the same instant
        west = now.astimezone(timezone(timedelta(hours=-7)))
        assert [r.id for r in store.due_pending_rungs(s, "ep-0000a001", west)] == [ids[0], ids[2], ids[1]]
        assert store.due_pending_rungs(s, "ep-0000a001", T0 - timedelta(seconds=1)) == []
        assert store.episodes_with_due_rungs(s, now) == ["ep-0000a001", "ep-0000a002"], "most overdue first"
        assert store.episodes_with_due_rungs(s, now, limit=1) == ["ep-0000a001"]
        assert store.episodes_with_due_rungs(s, T0 + timedelta(hours=3)) == ["ep-0000a001"]


def test_a_due_rung_without_a_run_is_found_sooner_than_one_whose_run_may_still_come(engine: Engine) -> None:
    """The sweep waits ``grace`` for a rung's run to fire it, but a rung that never got a run (its scheduling
    failed) has nothing to wait for."""
    with store.session_scope(engine) as s:
        add_episode(s)
        add_episode(s, "ep-0000a002")
        linked = add_item(s, "ep-0000a001", "accept", T0 + timedelta(seconds=15))[0]
        add_item(s, "ep-0000a002", "visit", T0 + timedelta(seconds=20))
        add_episode(s, "ep-0000a003")  # its second rung has no run by design: the first one's run schedules it
        first, _second = add_item(
            s, "ep-0000a003", "call", T0 + timedelta(seconds=16), (timedelta(), timedelta(seconds=2))
        )
        store.set_rung_runs(s, {linked: "run-1", first: "run-2"}, T0)
    now = T0 + timedelta(seconds=30)
    with Session(engine) as s:
        assert store.episodes_with_due_rungs(s, now - timedelta(seconds=20)) == [], "all within the grace"
        found = store.episodes_with_due_rungs(s, now - timedelta(seconds=20), unlinked_horizon=now)
        assert found == ["ep-0000a002"], "the rung without a run, not those whose run may still come"
        found = store.episodes_with_due_rungs(s, now, unlinked_horizon=now - timedelta(seconds=25))
        assert found == ["ep-0000a001", "ep-0000a003", "ep-0000a002"], "past the grace, every due rung, oldest first"
        before = T0 + timedelta(seconds=19)
        assert store.episodes_with_due_rungs(s, T0, unlinked_horizon=before) == [], "neither due yet"
        statements = selects_of(engine, lambda: store.episodes_with_due_rungs(s, T0, unlinked_horizon=now))
    if engine.dialect.name == "sqlite":  # one range of the (status, due_at) index, not a scan of every rung
        with engine.connect() as conn:
            [(statement, parameters)] = statements
            plan = " ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
        assert "ix_rung_status_due (status=? AND due_at<?)" in plan, plan


def selects_of(engine: Engine, work: Callable[[], object]) -> list[tuple[str, object]]:
    """The SELECT statements (and their parameters) ``work`` sends to ``engine``, to read their plans."""
    statements: list[tuple[str, object]] = []

    def capture(_conn: object, _cursor: object, statement: str, parameters: object, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return statements


def test_an_episodes_rungs_are_read_through_its_own_index(engine: Engine) -> None:
    """Loading an episode and firing its due rungs must not read every pending rung of the store: with an index on
    the episode alone, SQLite's planner chose (status, due_at) and each lookup grew with the caseload (5 ms at
    1,000 episodes, many times per fired rung)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the planner examined here is SQLite's (PostgreSQL plans by its statistics)")
    with store.session_scope(engine) as s:
        add_episode(s)
        add_item(s, "ep-0000a001", "accept", T0, (timedelta(), timedelta(hours=1)))
    with Session(engine) as s:
        statements = selects_of(
            engine, lambda: (store.pending_rungs(s, "ep-0000a001"), store.due_pending_rungs(s, "ep-0000a001", T0))
        )
    assert len(statements) == 2
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = " ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "ix_rung_episode_status (episode_id=? AND status=?" in plan, plan


#: 3,000 open items of the test's episode with three pending rungs each, the lowest already scheduled (a run):
#: PostgreSQL-only SQL, inserted in one statement per table, never analyzed.
CASELOAD_OF_RUNGS = """
INSERT INTO work_item (id, episode_id, kind, key, title, due_at, done_on, match, visit, status, opened_at, occurrence,
                       severity)
SELECT 'ep-0000a001/bulk' || g, 'ep-0000a001', 'task', 'bulk' || g, 'T', now(), 'x', '{}', 1, 'open', now(), 0,
       'normal'
FROM generate_series(1, 3000) g;
INSERT INTO rung (id, work_item_id, episode_id, index, due_at, role, status, flow_run_id)
SELECT 'ep-0000a001/bulk' || g || '#r' || i, 'ep-0000a001/bulk' || g, 'ep-0000a001', i,
       now() + (g || ' seconds')::interval + (i || ' hours')::interval, 'r', 'pending',
       CASE WHEN i = 0 THEN 'run-' || g END
FROM generate_series(1, 3000) g, generate_series(0, 2) i;
"""


def test_the_look_for_unscheduled_rungs_reads_each_items_lower_rungs_through_its_own_index(engine: Engine) -> None:
    """Scheduling asks, for each candidate rung, whether its item has a lower pending rung. Through an index on the
    item alone and one on (status, due_at), PostgreSQL with statistics older than the caseload combined the two and
    read every pending rung per candidate: the sweep's look ran for over ten minutes at 10,000 episodes."""
    with store.session_scope(engine) as s:
        add_episode(s)
        add_item(s, "ep-0000a001", "accept", T0, (timedelta(), timedelta(hours=1)))
    if engine.dialect.name == "postgresql":  # a caseload enrolled faster than PostgreSQL's statistics follow
        with engine.begin() as conn:
            conn.exec_driver_sql(CASELOAD_OF_RUNGS)
    with Session(engine) as s:
        [(statement, parameters)] = selects_of(engine, lambda: store.unscheduled_timers(s, None, 10))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(explain + statement, parameters))
    assert "ix_rung_work_item_status" in plan, plan


def test_only_the_next_rung_of_an_item_waits_for_a_run_until_its_run_is_recorded(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        add_episode(s)
        ids = add_item(s, "ep-0000a001", "accept", T0, (timedelta(), timedelta(hours=1)))
    with store.session_scope(engine) as s:
        assert [t.rung_id for t in store.unscheduled_timers(s)] == [ids[0]], "the next rung only"
        assert store.set_rung_runs(s, {ids[0]: "run-1"}, T0) == 1
        assert store.set_rung_runs(s, {ids[0]: "run-2"}, T0) == 0, "a rung keeps its first run"
    with Session(engine) as s:
        assert store.unscheduled_timers(s) == [], "the first rung's run schedules the next one when it fires"
        rung = s.get(RungRecord, ids[0])
        assert rung is not None and rung.flow_run_id == "run-1"


def test_cancelling_a_met_deadline_returns_its_rungs_and_stops_them(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        add_episode(s)
        ids = add_item(s, "ep-0000a001", "accept", T0, (timedelta(), timedelta(hours=1)))
        store.set_rung_runs(s, {ids[0]: "run-1"}, T0)
    with store.session_scope(engine) as s:
        cancelled = store.cancel_pending_rungs(s, "ep-0000a001/1/accept")
        assert [(r.id, r.flow_run_id) for r in cancelled] == [(ids[0], "run-1"), (ids[1], None)]
    with Session(engine) as s:
        assert store.pending_rungs(s, "ep-0000a001") == []
        assert store.episodes_with_due_rungs(s, T0 + timedelta(days=1)) == []


def test_caseload_filters_by_pathway_stage_and_overdue(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        add_episode(s, "ep-0000a001", stage="release")
        add_episode(s, "ep-0000a002", stage="community", at=T0 + timedelta(hours=1))
        add_item(s, "ep-0000a001", "accept", T0 + timedelta(days=2))
        add_item(s, "ep-0000a002", "visit", T0 + timedelta(days=9))
    with Session(engine) as s:
        assert [e.id for e in store.list_episodes(s)] == ["ep-0000a001", "ep-0000a002"]
        assert [e.id for e in store.list_episodes(s, pathway="reentry", stage="community")] == ["ep-0000a002"]
        assert store.list_episodes(s, pathway="detox-to-aftercare") == []
        assert [e.id for e in store.list_episodes(s, overdue_at=T0 + timedelta(days=3))] == ["ep-0000a001"]
        assert [e.id for e in store.list_episodes(s, overdue_at=T0 + timedelta(days=10))] == [
            "ep-0000a001",
            "ep-0000a002",
        ]
        assert [i.key for i in store.open_work_items(s, "ep-0000a002")] == ["visit"]


def test_audit_tail_is_the_latest_lines_oldest_first(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        add_episode(s)
        for k in range(5):
            store.audit(s, "ep-0000a001", T0 + timedelta(minutes=k), "coordinator", f"step.{k}", {"k": k})
        store.audit(s, None, T0, "carepath", "pathway.registered", reason="startup")
    with Session(engine) as s:
        assert [a.action for a in store.audit_tail(s, "ep-0000a001", limit=3)] == ["step.2", "step.3", "step.4"]
        assert [a.action for a in store.audit_tail(s, None, limit=1)] == ["pathway.registered"]
        assert s.exec(select(func.count()).select_from(AuditRecord)).one() == 6


def test_escalations_can_be_acknowledged_once(engine: Engine) -> None:
    with store.session_scope(engine) as s:
        add_episode(s)
        (rung_id,) = add_item(s, "ep-0000a001", "accept", T0)
    with store.session_scope(engine) as s:
        rung = s.get(RungRecord, rung_id)
        assert rung is not None
        escalation = store.record_escalation_once(s, rung, T0)
        assert escalation is not None and escalation.id is not None
    assert [e.id for e, _work, _deliveries in readmodels.open_escalations(engine)] == [escalation.id]
    with store.session_scope(engine) as s:
        assert store.acknowledge_escalation(s, escalation.id, "supervisor", T0 + timedelta(hours=1))
        assert not store.acknowledge_escalation(s, escalation.id, "supervisor", T0 + timedelta(hours=2))
    assert readmodels.open_escalations(engine) == []


def test_settings_are_shared_json_values(engine: Engine) -> None:
    assert store.get_setting(engine, "clock") is None
    store.put_setting(engine, "clock", {"kind": "compressed", "factor": 3600})
    store.put_setting(engine, "clock", {"kind": "wall"})
    assert store.get_setting(engine, "clock") == {"kind": "wall"}
    assert store.get_setting(engine, "missing", default=7) == 7
