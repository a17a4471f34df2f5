"""What ``carepath validate`` asks a store: the registered versions of a pathway and where its running episodes are.

A SQLite store is read with the standard library (no SQLAlchemy import), so ``validate`` stays fast.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from engine.language.versions import Active, Registered

__all__ = ["running_on"]


def running_on(pathway_id: str, home: Path, env: Mapping[str, str]) -> tuple[Registered, Active] | None:
    """Registered versions and active episodes of a pathway, or None when there is no store to ask.

    A SQLite store is read with the standard library (no SQLAlchemy import), so ``validate`` stays fast.
    """
    url = env.get("CAREPATH_DATABASE_URL")
    queries = (
        "SELECT version, source_sha256 FROM pathway_version WHERE pathway_id = ?",
        "SELECT pathway_version, stage FROM episode WHERE pathway_id = ? AND status = 'active'",
    )
    if url:
        from sqlalchemy import text

        from engine.store.db import make_engine

        engine = make_engine(url)
        try:
            with engine.connect() as c:
                sql = [text(q.replace("?", ":p")) for q in queries]
                return tuple([tuple(r) for r in c.execute(q, {"p": pathway_id})] for q in sql)  # type: ignore[return-value]
        finally:
            engine.dispose()
    db = home / "carepath.db"
    if not db.exists():
        return None
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return tuple(c.execute(q, (pathway_id,)).fetchall() for q in queries)  # type: ignore[return-value]
