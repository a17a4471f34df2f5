"""Meaning checks about named ladders: every ladder named (``escalate: standard``, ``default_ladder``) is declared
under ``ladders`` (with "did you mean"); a declared ladder nobody uses is a warning.

The rungs of a named ladder are checked once, where they are written (roles, order: :mod:`.references`,
:mod:`.timing` through :func:`.walk.ladders`).
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import Finding
from engine.language.model import PathwaySpec
from engine.language.semantics.walk import ladder_refs
from engine.language.suggest import unknown

__all__ = ["check_ladder_references"]


def check_ladder_references(spec: PathwaySpec) -> Iterator[Finding]:
    used: set[str] = set()
    for path, name in ladder_refs(spec):
        used.add(name)
        if name not in spec.ladders:
            yield Finding(path, _unknown(spec, name))
    for name in spec.ladders:
        if name not in used:
            yield Finding(("ladders", name), f"ladder '{name}' is declared but never used", "warning")


def _unknown(spec: PathwaySpec, name: str) -> str:
    """A role written where a ladder belongs gets the rung to write; a file with no ladders says so."""
    if name in spec.roles and name not in spec.ladders:
        return f"unknown ladder '{name}' ('{name}' is a role: write [{{ after: 0h, to: {name} }}])"
    if not spec.ladders:
        return f"unknown ladder '{name}' (no ladders are declared under 'ladders')"
    return unknown("ladder", name, spec.ladders)
