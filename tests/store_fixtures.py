"""Throwaway databases for store tests: a SQLite file, or a PostgreSQL database created and dropped per use.

Loaded as a plugin (tests/conftest.py), it gives every test the fixtures ``db_url`` (an empty database of each
backend), ``empty_engine`` (an engine on it) and ``engine`` (the same, migrated to the newest schema).

PostgreSQL is the server at 127.0.0.1:5432 (trust auth; user ``postgres``, else ``root``), reached through its
``test`` database; ``CAREPATH_TEST_PG_ADMIN_URL`` overrides that. Each temporary database has a unique name, so
parallel runs never share one. :func:`upgrade_to` and :func:`downgrade_to` move a database to one migration,
for tests of the migrations themselves.
"""

from __future__ import annotations

import os
import secrets
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


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    """An engine on a database of each backend, migrated to the newest schema."""
    store.migrate(empty_engine)
    return empty_engine
