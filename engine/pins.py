"""What a changed pathway file means for the episodes already running on it (``carepath validate`` warnings).

Episodes are pinned to the pathway text they enrolled on, so editing a file never moves them; but a designer
should know when a new version drops a stage that running episodes are in (they stay on the old version and
finish there), or when the file changed without a new ``version`` (it cannot be registered).
"""

from __future__ import annotations

import hashlib
from collections import Counter

from sqlalchemy import Engine
from sqlmodel import Session, select

from engine.errors import Diagnostic
from engine.model import PathwaySpec
from engine.source import parse_yaml
from engine.store import EpisodeRecord, PathwayVersionRecord

__all__ = ["version_warnings"]


def version_warnings(engine: Engine, spec: PathwaySpec, text: str, file: str) -> list[Diagnostic]:
    """Warnings about running episodes for a valid pathway file, placed at its ``version`` and ``stages``."""
    with Session(engine) as s:
        registered = list(s.exec(select(PathwayVersionRecord).where(PathwayVersionRecord.pathway_id == spec.id)))
        active = list(
            s.exec(select(EpisodeRecord).where(EpisodeRecord.pathway_id == spec.id, EpisodeRecord.status == "active"))
        )
    if not registered:
        return []
    where = parse_yaml(text).source_map
    out = []
    same = next((r for r in registered if r.version == spec.version), None)
    if same is not None and same.source_sha256 != hashlib.sha256(text.encode()).hexdigest():
        line, col = where.locate(("version",))
        out.append(
            Diagnostic(
                file,
                line,
                col,
                "$.version",
                f"version {spec.version} is already registered with other "
                "content; increase `version` so running episodes keep theirs",
                "warning",
            )
        )
    kept = {stage.id for stage in spec.stages}
    stranded = Counter((e.pathway_version, e.stage) for e in active if e.pathway_version != spec.version)
    line, col = where.locate(("stages",))
    for (version, stage), count in sorted(stranded.items()):
        if stage not in kept:
            out.append(
                Diagnostic(
                    file,
                    line,
                    col,
                    "$.stages",
                    f"{count} running episode(s) on v{version} are in stage "
                    f"'{stage}', which this version removes; they stay on v{version} and finish there",
                    "warning",
                )
            )
    return out
