"""Benchmark: reading a cohort's episode histories (``load_histories``, what ``carepath measures`` reads) with
10,000 episodes in the store.

Rows that look like production's are made by production: a template cohort of six synthetic people runs through
the whole service (``engine.app`` with in-memory ports on a manual clock, a SQLite store) on a pathway written for
this benchmark: detox with a closed-loop handoff, a decline fallback, a reconciliation with MOUD critical, weekly
check-ins; on time, late, escalated and acknowledged, MOUD omitted then corrected, declined, without consent,
idle, over 30 days. Its rows (every table ``load_histories`` reads) are then copied into a fresh store, episode
after episode, with new ids and times shifted by up to six months, through SQLAlchemy Core ``executemany``, then
``ANALYZE``. ``--other`` more episodes go on a second pathway, so choosing one pathway has something to leave out.

Timed, each the median of ``--repeat`` calls in a fresh read transaction (after one warm-up): the whole store,
the benchmark pathway's episodes, the other pathway's. The SQL statements each call sends are counted.

Run from the repository root::

    .venv/bin/python -m bench.bench_cohort_load                   # 10,000 episodes (+1,000 other), median of 5
    .venv/bin/python -m bench.bench_cohort_load --episodes 2000 --backend sqlite
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, event, text
from sqlmodel import Session, SQLModel, select

from bench import pg
from bench.timing import measure
from engine import store
from engine.store import records as _records  # noqa: F401  (the tables, registered on SQLModel.metadata)
from engine.store.queries.cohort import load_histories

__all__ = ["fill", "main", "run_script", "template"]

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CHUNK = 2_000

#: The pathway of tests/test_history.py (its template cohort is that test's kind of script).
PATHWAY = (
    (Path(__file__).resolve().parents[1] / "tests" / "data" / "history-test.yaml")
    .read_text(encoding="utf-8")
    .replace("id: history-test", "id: bench-cohort", 1)
)

BUP = [{"name": "buprenorphine", "dose": "16 mg"}]
OTHER = [{"name": "gabapentin", "dose": "300 mg"}]
#: (hours after T0, person, what): ``enroll`` with facts, ``consent``, an event (name, payload), ``ack`` a rung.
SCRIPT: list[tuple[float, int, str, Any]] = [
    (0, 0, "enroll", {"insurance": "medicaid"}),
    (0, 1, "enroll", {"insurance": "commercial"}),
    (0, 2, "enroll", {"insurance": "medicaid"}),
    (0, 3, "enroll", {"insurance": "commercial"}),
    (0, 4, "enroll", {"insurance": "medicaid"}),
    (0, 5, "enroll", {"insurance": "commercial"}),
    (0.5, 0, "consent", None),
    (0.5, 1, "consent", None),
    (0.5, 2, "consent", None),
    (0.5, 3, "consent", None),
    (1, 0, "contact.made", {}),
    (1, 2, "contact.made", {}),
    (1, 3, "contact.made", {}),
    (2, 0, "intake.completed", {}),
    (2, 2, "intake.completed", {}),
    (2, 3, "intake.completed", {}),
    (3, 0, "handoff.accepted", {}),
    (3, 2, "handoff.accepted", {}),
    (4, 0, "medications.sending-list", {"medications": BUP}),
    (4, 2, "medications.sending-list", {"medications": BUP + OTHER}),
    (5, 0, "medications.receiving-list", {"medications": BUP}),
    (5, 2, "medications.receiving-list", {"medications": OTHER}),
    (6, 3, "handoff.move", {"action": "decline", "reason": "no bed"}),
    (8, 2, "medications.receiving-list", {"medications": BUP + OTHER}),
    (10, 0, "handoff.visit-kept", {}),
    (12, 2, "handoff.visit-kept", {}),
    (25, 1, "ack", "1/s.intake.task.screen#r0"),
    (30, 4, "ack", "1/s.intake.task.screen#r0"),
    (31, 4, "contact.made", {}),
    (32, 4, "intake.completed", {}),
    (40, 1, "contact.made", {}),
    (41, 1, "detox.completed", {}),  # refused: not expected in intake
    (42, 1, "intake.completed", {}),
    (47, 1, "handoff.accepted", {}),
    (48, 3, "iop.completed", {}),
    (50, 1, "handoff.visit-kept", {}),
    (72, 0, "detox.completed", {}),
    (72, 2, "detox.completed", {}),
    (120, 1, "detox.completed", {"occurred_at": (T0 + timedelta(hours=100)).isoformat()}),
    (240, 0, "contact.made", {}),
    (240, 2, "contact.made", {}),
    (408, 0, "care.completed", {}),
]
UNTIL = T0 + timedelta(days=30)


def template(folder: Path) -> Engine:
    """Run the template cohort through the service into a SQLite store in ``folder``; returns its engine."""
    url = f"sqlite:///{folder / 'template.db'}"
    store.migrate(store.make_engine(url))
    run_script(url, folder)
    return store.make_engine(url)


def run_script(url: str, folder: Path, people: str = "P-SIM", until: datetime = UNTIL) -> list[str]:
    """The template cohort's script through the service on the store at ``url`` (migrated) up to ``until``, its
    people named ``<people>-000001``...; the pathway is registered when it is not yet. Returns the episode ids."""
    from engine.app import Settings, acknowledge, enroll, record_event
    from engine.app.inline import MemoryScheduler, inline_app
    from engine.app.safety import record_consent
    from engine.clock import ManualClock
    from engine.episode.domain.consent import single_tpo_consent
    from engine.errors import EventRejected
    from engine.language.loader import load_pathway_text
    from engine.store import EscalationRecord

    clock = ManualClock(T0)
    app = inline_app(Settings.from_env({"CAREPATH_HOME": str(folder), "CAREPATH_DATABASE_URL": url}), clock)
    scheduler = app.scheduler
    assert isinstance(scheduler, MemoryScheduler)
    result = load_pathway_text(PATHWAY, "bench-cohort.yaml")
    assert result.ok and result.spec is not None, result.diagnostics
    app.service.register_pathway(result.spec, PATHWAY)

    def advance(to: datetime) -> None:
        while (waiting := scheduler.waiting()) and waiting[0].timer.at <= to:
            clock.set(max(waiting[0].timer.at, clock.now()))
            scheduler.run_due(app, clock.now())
        clock.set(max(to, clock.now()))

    episodes: dict[int, str] = {}
    for hours, person, what, arg in SCRIPT:
        if T0 + timedelta(hours=hours) > until:
            break
        advance(T0 + timedelta(hours=hours))
        ref = f"{people}-{person + 1:06d}"
        try:
            if what == "enroll":
                episodes[person] = enroll(app, "bench-cohort", ref, facts=arg)
            elif what == "consent":
                consent = single_tpo_consent(
                    f"cn-{ref}", ref, discloser="bench", information="SUD care", signed_on=T0.date()
                )
                record_consent(app, episodes[person], consent)
            elif what == "ack":
                with Session(app.engine) as s:
                    rung = f"{episodes[person]}/{arg}"
                    found = s.exec(select(EscalationRecord).where(EscalationRecord.rung_id == rung)).first()
                assert found is not None, rung
                assert found.id is not None
                acknowledge(app, found.id, "staff-bench")
            else:
                record_event(app, episodes[person], what, arg)
        except EventRejected:
            pass
    advance(until)
    app.close()
    return list(episodes.values())


#: What is copied, parents first; ``None``: the table's autoincrement id is left to the target database.
_TABLES: dict[str, str | None] = {
    "episode": "id",
    "handoff": "id",
    "work_item": "id",
    "rung": "id",
    "escalation": None,
    "stage_visit": None,
    "processed_event": "event_id",
    "inbound_event": "id",
    "audit": None,
    "medication_list": None,
    "discrepancy": "id",
}
#: Ids a copy must rename: episodes (``ep-``) and inbound events (``in-``, their ids when none was given).
_IDS = re.compile(r"\b(?:ep|in)-[0-9a-f]{8,12}\b")


def _tables() -> dict[str, Table]:
    """The store's tables as the models declare them (UTC datetimes, JSON), not as a database reflects them."""
    return dict(SQLModel.metadata.tables)


def _renamed(value: Any, suffix: str, shift: timedelta) -> Any:
    if isinstance(value, str):
        return _IDS.sub(lambda m: f"{m.group(0)}{suffix}", value)
    if isinstance(value, datetime):
        return value + shift
    if isinstance(value, dict):
        return {k: _renamed(v, suffix, shift) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, suffix, shift) for v in value]
    return value


def _rows(source: Engine, episodes: int, other: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(table, rows) chunks of ``episodes`` + ``other`` copies of the template's episodes."""
    tables = _tables()
    with source.connect() as conn:
        rows = {name: [dict(r._mapping) for r in conn.execute(tables[name].select())] for name in _TABLES}
    per = len(rows["episode"])
    for table, key in _TABLES.items():
        if key is None:
            for row in rows[table]:
                row.pop("id", None)
    copies = -(-(episodes + other) // per)
    for base in range(0, copies, max(1, CHUNK // per)):
        out: dict[str, list[dict[str, Any]]] = {name: [] for name in _TABLES}
        for n in range(base, min(base + max(1, CHUNK // per), copies)):
            suffix, shift = f"x{n:05d}", timedelta(hours=(n * 7) % (24 * 182))
            pathway = "bench-cohort" if n * per < episodes else "bench-other"
            for table in _TABLES:
                for row in rows[table]:
                    copy = {k: _renamed(v, suffix, shift) for k, v in row.items()}
                    if table == "episode":
                        copy["pathway_id"] = pathway
                    out[table].append(copy)
        yield from out.items()


def fill(source: Engine, target: Engine, episodes: int, other: int) -> dict[str, int]:
    """Copy the template into ``target`` (migrated); returns row counts per table."""
    tables = _tables()
    with source.connect() as conn:
        versions = [dict(r._mapping) for r in conn.execute(tables["pathway_version"].select())]
    counts = dict.fromkeys(_TABLES, 0)
    with target.begin() as conn:
        conn.execute(tables["pathway_version"].insert(), versions)
        conn.execute(tables["pathway_version"].insert(), [{**v, "pathway_id": "bench-other"} for v in versions])
        for table, rows in _rows(source, episodes, other):
            if rows:
                conn.execute(tables[table].insert(), rows)
                counts[table] += len(rows)
    with target.begin() as conn:
        conn.execute(text("ANALYZE"))
    return counts


def run_backend(label: str, url: str, source: Engine, episodes: int, other: int, repeat: int) -> None:
    """Fill and time one backend; print its lines."""
    engine = store.make_engine(url)
    try:
        store.migrate(engine)
        t0 = time.perf_counter()
        counts = fill(source, engine, episodes, other)
        shown = ", ".join(f"{n:,} {table}" for table, n in counts.items())
        print(f"{label}: filled in {time.perf_counter() - t0:.1f} s: {shown}")
        statements = [0]

        def count(*_args: Any) -> None:
            statements[0] += 1

        event.listen(engine, "before_cursor_execute", count)
        for what, pathway in (
            ("every episode", None),
            ("bench-cohort", "bench-cohort"),
            ("bench-other", "bench-other"),
        ):

            def run(pathway: str | None = pathway) -> int:
                with Session(engine) as s:
                    return len(load_histories(s, pathway=pathway))

            statements[0] = 0
            found = run()
            sent = statements[0]
            ms = measure(run, repeat)
            print(
                f"{label}: load_histories({what}): {found:,} histories in {ms:,.0f} ms median of {repeat} "
                f"({ms / max(found, 1) * 1000:.0f} µs a history, {sent} SQL statements)"
            )
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_cohort_load", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10_000, help="episodes on the pathway (default 10,000)")
    parser.add_argument("--other", type=int, default=1_000, help="episodes on another pathway (default 1,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls each; the median is reported")
    parser.add_argument("--backend", choices=("all", "sqlite", "postgresql"), default="all")
    args = parser.parse_args(argv)
    print(
        f"carepath bench: cohort load, {args.episodes:,} + {args.other:,} episodes, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="carepath-bench-") as folder:
        t0 = time.perf_counter()
        source = template(Path(folder))
        print(f"template: {len(SCRIPT)} actions of 6 people through the service in {time.perf_counter() - t0:.1f} s")
        if args.backend in ("all", "sqlite"):
            url = f"sqlite:///{Path(folder) / 'carepath.db'}"
            run_backend("sqlite", url, source, args.episodes, args.other, args.repeat)
        if args.backend in ("all", "postgresql"):
            with pg.throwaway_database() as pg_url:
                if pg_url is None:
                    print("postgresql: skipped (no server answers at 127.0.0.1:5432; set CAREPATH_BENCH_PG_URL)")
                else:
                    run_backend("postgresql", pg_url, source, args.episodes, args.other, args.repeat)
        source.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
