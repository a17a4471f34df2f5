"""Named escalation ladders: what an ``escalate:`` means once names and the pathway's ``default_ladder`` apply.

A pathway may declare ``ladders: {standard: [...], urgent: [...]}`` and ``default_ladder: standard``. Wherever a
ladder is accepted, ``escalate`` is then a list of rungs (as before), a ladder's name, or omitted: omitted means
the default ladder when there is one, else no ladder (a version-1 file means what it always meant); ``[]`` means
no ladder even with a default. Pure: the plan compiler and the meaning checks both read ladders through here.
"""

from __future__ import annotations

from engine.language.fields import Spec
from engine.language.model import PathwaySpec, RungSpec

__all__ = ["rungs"]


def rungs(spec: PathwaySpec, part: Spec, field: str = "escalate") -> list[RungSpec]:
    """The rungs ``part.<field>`` stands for: written out, named, or (omitted) the pathway's default ladder.

    An unknown name gives no rungs; the meaning checks report it before a plan is ever compiled.
    """
    value = getattr(part, field)
    if isinstance(value, str):
        return list(spec.ladders.get(value, []))
    if field not in part.model_fields_set and spec.default_ladder is not None:
        return list(spec.ladders.get(spec.default_ladder, []))
    return list(value)
