"""Throwaway databases for store tests: a SQLite file, or a PostgreSQL database created and dropped per use.

Loaded as a plugin (tests/conftest.py), it gives every test the fixtures ``db_url`` (an empty database of each
backend), ``empty_engine`` (an engine on it) and ``engine`` (a database migrated to the newest schema).

Migrating costs 0.2 s (SQLite) to 0.4 s (PostgreSQL, with creating the database) a test, most of the fast
suite's time; :func:`migrated_database_url` pays it once per process: a SQLite file migrated once and copied, a
PostgreSQL database migrated once and emptied (``TRUNCATE``) before each use. Tests of the migrations themselves
use the empty databases.

PostgreSQL is the server at 127.0.0.1:5432 (trust auth; user ``postgres``, else ``root``), reached through its
``test`` database; ``CAREPATH_TEST_PG_ADMIN_URL`` overrides that. Each temporary database has a unique name, so
parallel runs never share one. :func:`upgrade_to` and :func:`downgrade_to` move a database to one migration,
for tests of the migrations themselves.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import Connection, Engine

from engine import store

__all__ = [
    "BACKENDS",
    "database_url",
    "downgrade_to",
    "head_revision",
    "migrated_database_url",
    "pg_admin_url",
    "pg_unavailable_reason",
    "temporary_pg_database",
    "upgrade_to",
]

_CANDIDATES = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


@lru_cache(maxsize=1)
def _probe() -> tuple[str | None, str]:
    override = os.environ.get("CAREPATH_TEST_PG_ADMIN_URL")
    problems = []
    for url in (override,) if override else _CANDIDATES:
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url, ""
        except psycopg.Error as exc:
            problems.append(f"{url}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    return None, "PostgreSQL is not reachable (" + "; ".join(problems) + ")"


def _pg_skip_reason() -> str:
    return pg_unavailable_reason() or "PostgreSQL reachable"


def pg_admin_url() -> str | None:
    """A URL of the server's maintenance database that can create databases, or None."""
    return _probe()[0]


def pg_unavailable_reason() -> str:
    """Why :func:`pg_admin_url` is None (empty when it is not)."""
    return _probe()[1]


@contextmanager
def temporary_pg_database(prefix: str = "carepath_test") -> Iterator[str]:
    """A fresh, empty database; yields its ``postgresql://`` URL and drops it (closing its connections) after."""
    admin = pg_admin_url()
    if admin is None:
        raise RuntimeError(pg_unavailable_reason())
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(store.MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration's revision id (what :func:`engine.store.migrate` brings a database to)."""
    config = Config()
    config.set_main_option("script_location", str(store.MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def upgrade_to(engine: Engine, revision: str) -> None:
    """Upgrade the database to exactly ``revision`` (not to the head), e.g. to hold data of an older schema."""
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def downgrade_to(engine: Engine, revision: str) -> None:
    """Run the downgrades down to ``revision``."""
    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)


#: Parametrize a fixture with these to run a test on SQLite and on PostgreSQL (skipped, with the reason, when
#: PostgreSQL does not answer).
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[pytest.mark.postgres, pytest.mark.skipif(pg_admin_url() is None, reason=_pg_skip_reason())],
    ),
]


@contextmanager
def database_url(backend: str, folder: os.PathLike[str] | str) -> Iterator[str]:
    """An empty database of ``backend``: a SQLite file in ``folder``, or a temporary PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{os.fspath(folder)}/carepath.db"
    else:
        with temporary_pg_database() as url:
            yield url


_SQLITE_TEMPLATE: list[str] = []
_PG_SHARED: dict[str, object] = {}


def _sqlite_template() -> str:
    if not _SQLITE_TEMPLATE:
        folder = tempfile.mkdtemp(prefix="carepath-template-")
        atexit.register(shutil.rmtree, folder, True)
        engine = store.make_engine(f"sqlite:///{folder}/carepath.db")
        store.migrate(engine)
        engine.dispose()
        _SQLITE_TEMPLATE.append(f"{folder}/carepath.db")
    return _SQLITE_TEMPLATE[0]


def _pg_shared() -> str:
    """This process's migrated PostgreSQL database (dropped when the process ends)."""
    if "url" not in _PG_SHARED:
        holder = temporary_pg_database("carepath_shared")
        url = holder.__enter__()
        atexit.register(holder.__exit__, None, None, None)
        engine = store.make_engine(url)
        store.migrate(engine)
        engine.dispose()
        _PG_SHARED["url"] = url
    return str(_PG_SHARED["url"])


def _emptied(url: str) -> bool:
    """Empty every table of ``url`` (identities restarted); False when something still holds a lock on one."""
    tables = ", ".join(f'"{table.name}"' for table in store.metadata.sorted_tables)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '3s'")
            conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")  # type: ignore[arg-type]
    except psycopg.errors.LockNotAvailable:
        return False
    return True


@contextmanager
def migrated_database_url(backend: str, folder: os.PathLike[str] | str) -> Iterator[str]:
    """A database of ``backend`` at the newest schema holding no rows: a copy of a SQLite file migrated once, or
    this process's migrated PostgreSQL database emptied (a fresh one when it is in use or locked)."""
    if backend == "sqlite":
        shutil.copyfile(_sqlite_template(), f"{os.fspath(folder)}/carepath.db")
        yield f"sqlite:///{os.fspath(folder)}/carepath.db"
        return
    shared = _pg_shared()
    if not _PG_SHARED.get("busy") and _emptied(shared):
        _PG_SHARED["busy"] = True
        try:
            yield shared
        finally:
            _PG_SHARED["busy"] = False
        return
    with temporary_pg_database() as url:
        engine = store.make_engine(url)
        store.migrate(engine)
        engine.dispose()
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def empty_engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database of each backend (for the migration tests)."""
    engine = store.make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database of each backend at the newest schema, holding no rows."""
    with migrated_database_url(request.param, tmp_path) as url:
        engine = store.make_engine(url)
        yield engine
        engine.dispose()
