"""Connecting and migrating: where the database is, how it is opened, and one transaction per unit of work.

SQLite (the default, a file in the data folder) is opened in WAL mode with a busy timeout and foreign keys on.
Carepath, not the driver, begins its transactions: a :func:`session_scope` (the only way the engine writes)
starts with ``BEGIN IMMEDIATE``, so writers queue for the database lock *before* they read and two
read-modify-write transactions on one episode cannot both read the old revision; any other session (a plain
``Session(engine)``, for reading) starts with a deferred ``BEGIN`` and reads a consistent snapshot without
waiting for writers or making them wait, even inside a write scope. PostgreSQL (by URL, psycopg 3) gets the
writers' guarantee row by row from ``SELECT ... FOR UPDATE`` in :func:`engine.store.queries.lock_episode`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

__all__ = [
    "BUSY_TIMEOUT_S",
    "MIGRATIONS_DIR",
    "WRITE_OPTION",
    "database_url",
    "make_engine",
    "migrate",
    "session_scope",
]

BUSY_TIMEOUT_S = 30.0
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


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url``: SQLite tuned for several processes, or PostgreSQL through psycopg 3."""
    parsed = _normalise(url)
    if parsed.get_backend_name() != "sqlite":
        # small pools: every serving process and every flow-run process has its own, and a server's
        # max_connections (100 by default) is shared by all of them
        return create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=3)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver must not emit its own BEGIN; _sqlite_begin does
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
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


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One write transaction: committed when the block ends, rolled back if it raises; objects stay readable after.

    On SQLite it holds the database's write lock from its first statement (``BEGIN IMMEDIATE``).
    """
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.connection(execution_options=_WRITE)
        yield session


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; idempotent, and safe when several processes start at once."""
    from alembic import command  # lazily: alembic costs a third of a second to import
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    for attempt in range(5):
        try:
            with engine.execution_options(**_WRITE).begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATE_LOCK})")
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
