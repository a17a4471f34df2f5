"""What outlives a stage visit: the handoffs and work a pathway marks ``lasts: episode``. Pure.

Leaving a stage cancels what the person leaves behind (:func:`engine.episode.rules._close_all`); a handoff that
lasts the episode (washout -> induction -> community followed as one referral) keeps its deadlines, its consent
wait, its re-engagement and its authorization until its loop closes or it is cancelled, and a task that lasts
the episode stays due until met. The episode's end still closes everything.
"""

from __future__ import annotations

from engine.episode.state import EpisodeState
from engine.plan.model import Plan

__all__ = ["lasting_work_keys", "outlives_stage"]


def lasting_work_keys(plan: Plan) -> frozenset[str]:
    """Plan keys of the work (stage entry work, a move's own work) that lasts the episode."""
    work = [w for s in plan.stages.values() for w in s.entry_work] + [w for t in plan.transitions for w in t.work]
    return frozenset(w.key for w in work if w.lasts == "episode")


def outlives_stage(plan: Plan, state: EpisodeState) -> frozenset[str]:
    """Ids of the open handoffs and work items of ``state`` that leaving a stage must not cancel."""
    handoffs = {
        h.id
        for h in state.handoffs
        if h.transition_index < len(plan.transitions)
        and (hp := plan.transitions[h.transition_index].handoff) is not None
        and hp.lasts == "episode"
    }
    keys = lasting_work_keys(plan)
    items = {i.id for i in state.items if i.handoff_id in handoffs or (i.kind != "alert" and i.key in keys)}
    return frozenset(handoffs | items)
