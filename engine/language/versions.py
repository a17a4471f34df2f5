"""What a changed pathway file means for the episodes already running on it (``carepath validate`` warnings).

Episodes are pinned to the pathway text they enrolled on, so editing a file never moves them; but a designer
should know when a new version drops a stage that running episodes are in (they stay on the old version and
finish there), or when the file changed without a new ``version`` (it cannot be registered).
"""

from __future__ import annotations

import hashlib
from collections import Counter

from engine.errors import Diagnostic
from engine.language.model import PathwaySpec
from engine.language.source import parse_yaml

__all__ = ["Active", "Registered", "version_warnings"]

Registered = list[tuple[int, str]]  # (version, sha256 of its text)
Active = list[tuple[int, str]]  # (version, stage) of each active episode


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
