"""Benchmark: how many bytes an episode takes in Carepath's store on PostgreSQL, for the README's sizing estimate.

Rows that look like production's are made by production (``engine.app`` with in-memory ports on a manual clock),
in a throwaway database at 127.0.0.1:5432 (``CAREPATH_BENCH_PG_URL`` overrides):

- **enrolled**: ``--enrolled`` people (default 300) enrolled across the shipped pathways, each with a signed TPO
  consent: an episode on its first day (its work items and rungs, the audit trail, the consent);
- **lived**: the cohort benchmark's template (``bench_cohort_load``: six people over 30 days on time, late,
  escalated and acknowledged, handoffs, medication lists, events) run again until ``--lived`` more episodes
  (default 300): an episode after a month of care;
- **template enrolled**: the same template stopped right after its enrollments, as many episodes: what a lived
  episode was on its first day, so lived minus this is a month's growth.

Size is ``pg_total_relation_size`` (heap, indexes, TOAST) summed over the store's tables after ``VACUUM ANALYZE``,
minus the store's before, divided by the episodes added (the pathways' own rows left out); the rows each kind
added are counted too. Prints a summary and one JSON line (``--json``: only the line).

    .venv/bin/python -m bench.bench_store_size
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench import pg
from bench.bench_cohort_load import T0, UNTIL, run_script
from engine import store

__all__ = ["main", "measure"]

ROOT = Path(__file__).resolve().parents[1]


def _sizes(engine: Engine) -> dict[str, tuple[int, int]]:
    """table -> (bytes, rows) for the store's tables, after VACUUM ANALYZE."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    with engine.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
            )
        ]
        out = {}
        for table in tables:
            size = conn.execute(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": table}).scalar_one()
            rows = conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
            out[table] = (int(size), int(rows))
    return out


def _enroll(url: str, folder: Path, people: int) -> int:
    """``people`` episodes across the shipped pathways, each with a signed TPO consent, on their first day."""
    from engine.app import Settings, enroll
    from engine.app.inline import inline_app
    from engine.app.pathways import register_pathways
    from engine.app.safety import record_consent
    from engine.clock import ManualClock
    from engine.episode.domain.consent import single_tpo_consent

    app = inline_app(Settings.from_env({"CAREPATH_HOME": str(folder), "CAREPATH_DATABASE_URL": url}), ManualClock(T0))
    pathways = [spec.id for spec in register_pathways(app, ROOT / "pathways")]
    for n in range(people):
        ref = f"P-SIZE-{n + 1:06d}"
        episode_id = enroll(app, pathways[n % len(pathways)], ref)
        consent = single_tpo_consent(f"cn-{ref}", ref, discloser="bench", information="SUD care", signed_on=T0.date())
        record_consent(app, episode_id, consent)
    app.close()
    return people


def _template(url: str, folder: Path, episodes: int, until: datetime, people: str) -> int:
    """Rounds of the cohort template up to ``until`` until ``episodes`` more episodes; returns how many."""
    made, rounds = 0, 0
    while made < episodes:
        made += len(run_script(url, folder, people=f"{people}{rounds:04d}", until=until))
        rounds += 1
    return made


#: Rows per pathway or per store, not per episode.
_FIXED = {"pathway_version", "setting"}


def _delta(after: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]], episodes: int) -> dict[str, Any]:
    tables = {
        t: (size - before.get(t, (0, 0))[0], rows - before.get(t, (0, 0))[1])
        for t, (size, rows) in after.items()
        if t not in _FIXED
    }
    total = sum(size for size, _rows in tables.values())
    return {
        "episodes": episodes,
        "bytes_per_episode": round(total / episodes),
        "rows_per_episode": {t: round(r / episodes, 2) for t, (_s, r) in sorted(tables.items()) if r},
        "bytes_by_table": {t: s for t, (s, _r) in sorted(tables.items(), key=lambda kv: -kv[1][0]) if s},
    }


def _kind(make: Callable[[str, Path], int]) -> tuple[dict[str, Any], str]:
    """``make(url, folder)`` on a fresh, migrated throwaway database; its delta record and the server's version.

    Each kind gets its own database: rows added after others were updated would fill the space VACUUM freed and
    look smaller than they are."""
    with pg.throwaway_database() as url, tempfile.TemporaryDirectory(prefix="carepath-bench-") as folder:
        if url is None:
            raise SystemExit("no PostgreSQL answers at 127.0.0.1:5432 (set CAREPATH_BENCH_PG_URL)")
        engine = store.make_engine(url)
        store.migrate(engine)
        empty = _sizes(engine)
        episodes = make(url, Path(folder))
        record = _delta(_sizes(engine), empty, episodes)
        record["empty_store_bytes"] = sum(size for size, _rows in empty.values())
        with engine.connect() as conn:
            server = str(conn.execute(text("SHOW server_version")).scalar_one())
        engine.dispose()
    return record, server


def measure(enrolled: int, lived: int) -> dict[str, Any]:
    """The three kinds, each on its own database; the JSON record."""
    t0 = time.perf_counter()
    first, server = _kind(lambda url, folder: _enroll(url, folder, enrolled))
    month, _ = _kind(lambda url, folder: _template(url, folder, lived, UNTIL, "P-LIVED"))
    day_one, _ = _kind(lambda url, folder: _template(url, folder, lived, T0, "P-DAY1-"))
    return {
        "bench": "store_size",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "postgresql": server,
        "python": platform.python_version(),
        "enrolled": first,
        "lived_30_days": month,
        "template_enrolled": day_one,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _report(record: dict[str, Any]) -> None:
    print(f"carepath bench: store size on PostgreSQL {record['postgresql']}, Python {record['python']}")
    print(f"empty store: {record['enrolled']['empty_store_bytes'] / 1e6:.2f} MB")
    for kind in ("enrolled", "lived_30_days", "template_enrolled"):
        part = record[kind]
        top = ", ".join(f"{t} {b / part['episodes']:,.0f}" for t, b in list(part["bytes_by_table"].items())[:5])
        rows = ", ".join(f"{t} {n:g}" for t, n in part["rows_per_episode"].items())
        print(f"{kind}: {part['episodes']} episodes, {part['bytes_per_episode']:,} bytes an episode ({top} ...)")
        print(f"  rows an episode: {rows}")
    month = record["lived_30_days"]["bytes_per_episode"] - record["template_enrolled"]["bytes_per_episode"]
    print(f"a month of care on the template added {month:,} bytes an episode; made in {record['seconds']} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_store_size", description=__doc__.splitlines()[0])
    parser.add_argument("--enrolled", type=int, default=300, help="episodes enrolled (default 300)")
    parser.add_argument("--lived", type=int, default=300, help="episodes after 30 days of care (default 300)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    record = measure(args.enrolled, args.lived)
    if not args.json:
        _report(record)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
