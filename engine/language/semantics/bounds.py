"""Meaning checks about numeric bounds: ``min``/``max`` on a fact or a payload field belong to a ``number`` and
``min`` is at most ``max``. Input outside them is refused by :mod:`engine.app.inputs.values`.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import Finding
from engine.language.model import FactSpec, PathwaySpec, PayloadFieldSpec
from engine.language.positions import Path

__all__ = ["check_bounds"]


def check_bounds(spec: PathwaySpec) -> Iterator[Finding]:
    for name, fact in spec.facts.items():
        yield from _bounds(("facts", name), name, fact)
    for event, declared in spec.events.items():
        for name, field in declared.payload.items():
            yield from _bounds(("events", event, "payload", name), name, field)


def _bounds(at: Path, name: str, part: FactSpec | PayloadFieldSpec) -> Iterator[Finding]:
    for key in ("min", "max"):
        if getattr(part, key) is not None and part.type != "number":
            yield Finding((*at, key), f"{key} needs a number; '{name}' is {part.type}")
    if part.type == "number" and part.min is not None and part.max is not None and part.min > part.max:
        yield Finding((*at, "max"), f"max {part.max:g} is less than min {part.min:g}")
