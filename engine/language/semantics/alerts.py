"""Meaning checks about who hears: a warm handoff names the role that introduces the person, and (warnings) a
deadline or a denial that would alert no role at all (the pathway still runs; the miss is only shown).
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import Finding
from engine.language.ladders import rungs
from engine.language.model import PathwaySpec

__all__ = ["check_handoffs", "check_nobody_alerted"]


def check_handoffs(spec: PathwaySpec) -> Iterator[Finding]:
    for i, t in enumerate(spec.transitions):
        if t.handoff and t.handoff.mode == "warm" and t.handoff.introduced_by is None:
            yield Finding(("transitions", i, "handoff"), "a warm handoff needs introduced_by")


def check_nobody_alerted(spec: PathwaySpec) -> Iterator[Finding]:
    """Warnings: a deadline or a denial that would reach no role (the pathway still runs; the miss is only shown)."""
    for i, stage in enumerate(spec.stages):
        rng = stage.expected_duration
        if rng and rng.max is not None and not stage.terminal and stage.owner is None and not rungs(spec, rng):
            yield Finding(
                ("stages", i, "expected_duration", "max"),
                f"stage '{stage.id}' has no owner: nobody would be alerted when a stay passes its max (add owner)",
                "warning",
            )
    for i, t in enumerate(spec.transitions):
        auth = t.handoff.authorization if t.handoff else None
        if auth and auth.required and not (auth.owner or rungs(spec, auth) or (t.handoff and t.handoff.introduced_by)):
            yield Finding(
                ("transitions", i, "handoff", "authorization"),
                "authorization has no owner: nobody would be alerted of a denial (add owner)",
                "warning",
            )
