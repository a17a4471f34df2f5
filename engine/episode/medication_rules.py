"""Which of the pathway's medication rules apply when a stage visit's lists are compared. Pure.

The move that brought the person here is known from its reconciliation item while that is open, else from the
visit's handoff; failing both (a list sent again after reconciliation closed, a move without a handoff) every
move into the stage counts for its *required* medications (an extra alert is safe), but its *planned changes*
only when exactly one move leads here (documenting a switch nobody planned would hide a dropped MOUD).
"""

from __future__ import annotations

from engine.episode.state import EpisodeState, WorkItem
from engine.plan.model import MedicationChangePlan, Plan

__all__ = ["visit_medication_rules"]


def _move_of(item: WorkItem) -> int | None:
    head = item.key.split(".", 1)[0]
    return int(head[1:]) if head.startswith("t") and head[1:].isdigit() else None


def visit_medication_rules(
    plan: Plan, state: EpisodeState, reconcile: list[WorkItem]
) -> tuple[list[MedicationChangePlan], list[str]]:
    """The planned changes and the required medications for the current stage visit's comparison."""
    known = {n for i in reconcile if (n := _move_of(i)) is not None}
    known |= {h.transition_index for h in state.handoffs if h.visit == state.visit} if not known else set()
    into = [t.index for t in plan.transitions if t.target == state.stage]
    indices = sorted(n for n in known if n < len(plan.transitions)) if known else (into if state.visit else [])
    moves = [plan.transitions[n] for n in indices]
    changes = [c for t in moves for c in t.medication_changes] if known or len(moves) == 1 else []
    stage = plan.stages[state.stage].requires_medication if state.stage in plan.stages else ()
    required = list(dict.fromkeys([*stage, *(r for t in moves for r in t.requires_medication)]))
    return changes, required
