"""What a changed pathway file means for the episodes already running on it (``carepath validate`` warnings).

Episodes are pinned to the pathway text they enrolled on, so editing a file never moves them; but a designer
should know when a new version drops a stage that running episodes are in (they stay on the old version and
finish there), or when the file changed without a new ``version`` (it cannot be registered).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from engine.errors import Diagnostic
from engine.model import PathwaySpec
from engine.source import parse_yaml

__all__ = ["running_on", "version_warnings"]

Registered = list[tuple[int, str]]  # (version, sha256 of its text)
Active = list[tuple[int, str]]  # (version, stage) of each active episode


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

        from engine import store

        engine = store.make_engine(url)
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


def version_warnings(
    spec: PathwaySpec, text: str, file: str, registered: Registered, active: Active
) -> list[Diagnostic]:
    """Warnings about running episodes for a valid pathway file, placed at its ``version`` and ``stages``."""
    if not registered:
        return []
    where = parse_yaml(text).source_map
    out = []
    sha = hashlib.sha256(text.encode()).hexdigest()
    if any(version == spec.version and digest != sha for version, digest in registered):
        line, col = where.locate(("version",))
        message = (
            f"version {spec.version} is already registered with other content; "
            "increase `version` so running episodes keep theirs"
        )
        out.append(Diagnostic(file, line, col, "$.version", message, "warning"))
    kept = {stage.id for stage in spec.stages}
    stranded = Counter((version, stage) for version, stage in active if version != spec.version)
    line, col = where.locate(("stages",))
    for (version, stage), count in sorted(stranded.items()):
        if stage not in kept:
            message = (
                f"{count} running episode(s) on v{version} are in stage '{stage}', which this version removes; "
                f"they stay on v{version} and finish there"
            )
            out.append(Diagnostic(file, line, col, "$.stages", message, "warning"))
    return out
