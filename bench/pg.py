"""Throwaway PostgreSQL databases for the benchmarks: the server at 127.0.0.1:5432 (trust auth), reached through
its ``test`` database, or ``CAREPATH_BENCH_PG_URL`` (a URL of a database whose user may create others)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["admin_url", "create_database", "drop_database", "throwaway_database"]

CANDIDATES = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


def admin_url() -> str | None:
    """The first candidate URL that answers, or None (no server, or psycopg is not installed)."""
    try:
        import psycopg
    except ImportError:
        return None
    override = os.environ.get("CAREPATH_BENCH_PG_URL")
    for url in (override,) if override else CANDIDATES:
        try:
            with psycopg.connect(url, connect_timeout=3, autocommit=True):
                return url
        except psycopg.Error:
            continue
    return None


def create_database(admin: str, name: str) -> str:
    """Create an empty database ``name`` next to ``admin``'s; returns its ``postgresql://`` URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin: str, name: str) -> None:
    """Drop ``name`` if it exists, closing its connections."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def throwaway_database() -> Iterator[str | None]:
    """A fresh empty database's URL for the block, dropped after it; None when no server answers."""
    admin = admin_url()
    if admin is None:
        yield None
        return
    name = f"carepath_bench_{os.getpid()}_{secrets.token_hex(3)}"
    url = create_database(admin, name)
    try:
        yield url
    finally:
        drop_database(admin, name)
