"""Connecting and migrating: where the database is, how it is opened, and one transaction per unit of work.

SQLite (the default, a file in the data folder) is opened in WAL mode with a busy timeout and foreign keys on.
Carepath, not the driver, begins its transactions: a :func:`session_scope` (the only way the engine writes)
starts with ``BEGIN IMMEDIATE``, so writers queue for the database lock *before* they read and two
read-modify-write transactions on one episode cannot both read the old revision; any other session (a plain
``Session(engine)``, for reading) starts with a deferred ``BEGIN`` and reads a consistent snapshot without
waiting for writers or making them wait, even inside a write scope. PostgreSQL (by URL, psycopg 3) gets the
writers' guarantee row by row from ``SELECT ... FOR UPDATE`` in :func:`engine.store.queries.lock_episode`.

Under a burst (a dozen processes writing at once on a loaded machine) a writer can wait longer than SQLite's busy
timeout. A unit of work therefore retries taking the lock, with a jittered backoff, for a bounded budget
(``write_budget``, 60 s by default); retrying is safe because nothing has run yet. Past the budget, or when the
database reports a lock conflict later (PostgreSQL: deadlock, lock timeout, serialization failure), the caller
gets :class:`~engine.errors.StoreBusy`: one line, no SQL, and the transaction rolled back.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from engine.errors import StoreBusy, StoreError

__all__ = [
    "BUSY_TIMEOUT_S",
    "MIGRATIONS_DIR",
    "WRITE_BUDGET_S",
    "WRITE_OPTION",
    "database_url",
    "dialect_insert",
    "is_busy",
    "make_engine",
    "migrate",
    "session_scope",
]

#: How long one attempt waits for SQLite's write lock (its busy handler) before the unit of work retries.
BUSY_TIMEOUT_S = 10.0
#: How long, in all, a unit of work keeps trying to begin before it gives up with StoreBusy.
WRITE_BUDGET_S = 60.0
_BUDGET_OPTION = "carepath_write_budget"  # engine execution option: this engine's write budget in seconds
#: PostgreSQL SQLSTATEs that mean "another writer is in the way": lock not available, deadlock, serialization.
_PG_BUSY = frozenset({"55P03", "40P01", "40001"})
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
WRITE_OPTION = "carepath_sqlite_begin"  # execution option of a write scope's connection, read by _sqlite_begin
_WRITE = {WRITE_OPTION: "IMMEDIATE"}
_MIGRATE_LOCK = 0x43415245  # "CARE": the PostgreSQL advisory lock that serialises concurrent migrations


def database_url(data_dir: Path, env: Mapping[str, str]) -> str:
    """``CAREPATH_DATABASE_URL`` if set, else the SQLite file ``<data_dir>/carepath.db``."""
    if env.get("CAREPATH_DATABASE_URL"):
        return env["CAREPATH_DATABASE_URL"]
    return f"sqlite:///{Path(data_dir).resolve() / 'carepath.db'}"


def _normalise(url: str | URL) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(
    url: str | URL, *, busy_timeout: float = BUSY_TIMEOUT_S, write_budget: float = WRITE_BUDGET_S
) -> Engine:
    """An engine for ``url``: SQLite tuned for several processes, or PostgreSQL through psycopg 3.

    ``busy_timeout`` is one attempt's wait for SQLite's write lock; ``write_budget`` bounds a unit of work's
    retries in all (see :func:`session_scope`).
    """
    parsed = _normalise(url)
    if parsed.get_backend_name() != "sqlite":
        # small pools: every serving process and every flow-run process has its own, and a server's
        # max_connections (100 by default) is shared by all of them
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=3)
    else:
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": busy_timeout})
        event.listen(engine, "connect", lambda dbapi, record: _sqlite_connect(dbapi, busy_timeout))
        event.listen(engine, "begin", _sqlite_begin)
    engine.update_execution_options(**{_BUDGET_OPTION: write_budget})
    return engine


def _sqlite_connect(dbapi_connection: Any, busy_timeout: float) -> None:
    dbapi_connection.isolation_level = None  # the driver must not emit its own BEGIN; _sqlite_begin does
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        for attempt in range(50):  # switching a new file to WAL needs a moment alone with it
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
    finally:
        cursor.close()


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get(WRITE_OPTION, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def is_busy(exc: BaseException) -> bool:
    """True if ``exc`` means another writer held the database (SQLite locked/busy, a PostgreSQL lock conflict)."""
    original = getattr(exc, "orig", exc)
    if isinstance(original, sqlite3.OperationalError):
        text = str(original).lower()
        return "locked" in text or "busy" in text
    return getattr(original, "sqlstate", None) in _PG_BUSY


def _busy(budget: float, exc: BaseException) -> StoreBusy:
    """The one line a coordinator reads: the driver's first line (never the SQL SQLAlchemy appends)."""
    reason = (str(getattr(exc, "orig", exc)).strip().splitlines() or ["locked"])[0][:120]
    return StoreBusy(
        f"the store stayed busy with other writers for {budget:g} s ({reason}); nothing was changed: try again"
    )


def _begin_write(engine: Engine) -> Session:
    """A session holding an open write transaction, retrying the lock with backoff until the engine's budget."""
    budget = float(engine.get_execution_options().get(_BUDGET_OPTION, WRITE_BUDGET_S))
    deadline, pause = time.monotonic() + budget, 0.05
    while True:
        session = Session(engine, expire_on_commit=False)
        try:
            session.begin()
            session.connection(execution_options=_WRITE)  # SQLite: BEGIN IMMEDIATE, the lock is taken here
            return session
        except DBAPIError as exc:
            session.close()
            if not is_busy(exc):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _busy(budget, exc) from exc
        time.sleep(min(remaining, pause * random.uniform(0.5, 1.5)))  # jitter: retrying writers do not move in step
        pause = min(pause * 2, 1.0)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One write transaction (a unit of work): committed when the block ends, rolled back if it raises; objects
    stay readable after.

    On SQLite it holds the database's write lock from its first statement (``BEGIN IMMEDIATE``), retried within
    the engine's write budget; a lock conflict it cannot wait out is :class:`~engine.errors.StoreBusy`.
    """
    session = _begin_write(engine)
    try:
        yield session
        session.commit()
    except BaseException as exc:
        session.rollback()
        if isinstance(exc, DBAPIError) and is_busy(exc):
            budget = float(engine.get_execution_options().get(_BUDGET_OPTION, WRITE_BUDGET_S))
            raise _busy(budget, exc) from exc
        raise
    finally:
        session.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; idempotent, and safe when several processes start at once."""
    from alembic import command  # lazily: alembic costs a third of a second to import
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    budget = float(engine.get_execution_options().get(_BUDGET_OPTION, WRITE_BUDGET_S))
    deadline, pause = time.monotonic() + budget, 0.2
    while True:
        try:
            with engine.execution_options(**_WRITE).begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATE_LOCK})")
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return
        except DBAPIError as exc:
            if not is_busy(exc):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _busy(budget, exc) from exc
        time.sleep(min(remaining, pause * random.uniform(0.5, 1.5)))
        pause = min(pause * 2, 2.0)


def dialect_insert(db: Engine | Session | Connection, table: Any) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing``/``on_conflict_do_update``."""
    name = (db if isinstance(db, Engine | Connection) else db.get_bind()).dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"Carepath's store supports SQLite and PostgreSQL, not {name}")
