"""Meaning checks (validation stage 4): what a well-typed pathway can still get wrong.

:func:`check` runs on a :class:`engine.language.model.PathwaySpec` that the model accepted and returns every problem
as a :class:`engine.errors.Finding`, addressed by its path in the YAML document (document keys, so ``from``,
``for``, ``in``, ``not`` and ``class``; lists by position, mappings by key). Pure: no I/O, no clock; the loader
places each finding in the file. Messages are short and lowercase, and name what a designer should fix.

Checks, in the order they run: identities, ASAM level codes (:mod:`.levels`), references (:mod:`.references`:
duplicate ids; stages, roles, tasks, parameters, events (the ``measures:`` key's too, and a warning for one of
them no episode would accept: :mod:`.measures`), facts, each with "did you mean"; ladder names:
:mod:`.ladders`), time (:mod:`.timing`: ranges, parameter bounds, cadences, escalation ladders in increasing
time), facts and guards, check-in series, parallel check-in tracks and medication rules of moves and stages
(:mod:`.medications`), who hears (:mod:`.alerts`: warm handoffs, deadlines that would alert nobody), and the
stage graph (:mod:`.graph`: reachability, ways out, terminal stages, transitions that can never fire, a decline
move a handoff's fallback wins over). Where each kind of value appears is :mod:`.walk`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.errors import Finding
from engine.language.model import PathwaySpec
from engine.language.semantics.alerts import check_handoffs, check_nobody_alerted
from engine.language.semantics.bounds import check_bounds
from engine.language.semantics.graph import check_dead_transitions, check_declines_with_fallback, check_graph
from engine.language.semantics.ladders import check_ladder_references
from engine.language.semantics.levels import check_levels
from engine.language.semantics.measures import check_measure_events
from engine.language.semantics.medications import check_check_in_tracks, check_medication_rules
from engine.language.semantics.references import (
    check_event_lists,
    check_events,
    check_fact_moments,
    check_facts,
    check_guards,
    check_identities,
    check_missed_deadlines,
    check_role_references,
    check_stage_references,
    check_task_references,
)
from engine.language.semantics.timing import check_check_ins, check_durations, check_parameters

__all__ = ["CHECKS", "check"]

#: Every check, in the order it runs (the loader sorts what they find by position; ties keep this order).
CHECKS: tuple[Callable[[PathwaySpec], Iterable[Finding]], ...] = (
    check_identities,
    check_levels,
    check_stage_references,
    check_role_references,
    check_ladder_references,
    check_task_references,
    check_missed_deadlines,
    check_parameters,
    check_durations,
    check_events,
    check_event_lists,
    check_measure_events,
    check_fact_moments,
    check_facts,
    check_bounds,
    check_guards,
    check_check_ins,
    check_check_in_tracks,
    check_medication_rules,
    check_handoffs,
    check_nobody_alerted,
    check_graph,
    check_dead_transitions,
    check_declines_with_fallback,
)


def check(spec: PathwaySpec) -> list[Finding]:
    """Every meaning problem of ``spec``, errors and warnings, in document order of the checks."""
    out: list[Finding] = []
    for part in CHECKS:
        out.extend(part(spec))
    return out
