"""Moves on what did not happen: a stay too long (``after``), a deadline missed (``on_missed``), a handoff that
ended badly (``on_handoff``). Pure, like :mod:`engine.episode.rules`, which calls these helpers.

A timed move is a work item of kind ``timeout`` with one rung at its deadline: the store, the sweep and the deadline
runs already keep and fire rungs, so the timer survives restarts with no scheduler of its own. Its rung moves the
episode instead of escalating. It is armed when its stage is entered (``after``) or when the deadline it watches
opens (``on_missed``: an entry task, or a handoff step that opens once consent lets the referral go); it ends with
the stage visit, and a watched deadline met in time ends it too.
"""

from __future__ import annotations

from datetime import datetime

from engine.episode.state import EpisodeState, Handoff, Outcome, Rung, WorkItem, close_item
from engine.language.guards import evaluate
from engine.language.spans import add
from engine.plan.model import Plan, TransitionPlan

__all__ = ["TIMER_DONE_ON", "arm", "disarm", "due_move", "handoff_move"]

#: What a timer shows where an event name would be: nothing meets it, leaving the stage ends it.
TIMER_DONE_ON = "nothing (a timer: leaving the stage ends it)"


def _watched(state: EpisodeState, t: TransitionPlan, out: Outcome) -> WorkItem | None:
    suffixes = (f".task.{t.on_missed}", f".handoff.{t.on_missed}")
    return next(
        (i for i in out.opened if i.visit == state.visit and i.status == "open" and i.key.endswith(suffixes)), None
    )


def arm(plan: Plan, state: EpisodeState, now: datetime, out: Outcome, *, entering: bool) -> None:
    """Arm the timers of the moves out of the current stage: ``after`` on entering, ``on_missed`` as its deadline
    opens (only then, so a timer ended by a false guard is not armed again)."""
    for t in plan.transitions:
        if state.stage not in t.sources or not t.timed or (t.after is not None and not entering):
            continue
        watched = _watched(state, t, out) if t.on_missed is not None else None
        if t.after is not None:
            due, what = add(state.stage_entered_at, t.after), t.trigger()
        elif watched is not None:
            due, what = watched.due_at, f"if {t.on_missed} is missed"
        else:
            continue
        key = f"t{t.index}.timeout"
        item_id = f"{state.id}/{state.visit}/{key}"
        if any(i.id == item_id for i in state.items):
            continue
        owner = watched.owner if watched else None
        item = WorkItem(
            id=item_id,
            kind="timeout",
            key=key,
            title=f"move to {t.target} {what}",
            owner=owner,
            opened_at=now,
            due_at=due,
            done_on=TIMER_DONE_ON,
            match={"watch": watched.key} if watched is not None else {},
            visit=state.visit,
            rungs=[Rung(id=f"{item_id}#r0", index=0, due_at=due, role=owner or "carepath")],
        )
        state.items.append(item)
        out.opened.append(item)


def disarm(state: EpisodeState, out: Outcome) -> None:
    """End the timers whose watched deadline was met (or otherwise closed) before it passed."""
    open_keys = {(i.key, i.visit) for i in state.items}
    for timer in [i for i in state.items if i.kind == "timeout" and "watch" in i.match]:
        if (timer.match["watch"], timer.visit) not in open_keys:
            close_item(timer, "cancelled", "met in time", state, out)


def due_move(plan: Plan, state: EpisodeState, timer: WorkItem, now: datetime, out: Outcome) -> TransitionPlan | None:
    """The move a timer that came due makes, or None (the timer then ends: moot, or its guard does not hold)."""
    t = plan.transitions[int(timer.key.split(".", 1)[0].removeprefix("t"))]
    watch = timer.match.get("watch")
    moot = state.stage not in t.sources or timer.visit != state.visit
    if watch is not None and not any(i.key == watch and i.visit == timer.visit for i in state.items):
        moot = True
    if not moot and (t.guard is None or evaluate(t.guard, state.facts, now=now, times=state.event_times)):
        return t
    close_item(timer, "cancelled", "moot" if moot else "guard does not hold", state, out)
    return None


def _end(h: Handoff) -> str | None:
    if h.status == "rejected":
        return "declined"
    if h.status == "failed":
        return "failed"
    return "no-show" if h.business_status == "no-show" else None


def handoff_move(plan: Plan, state: EpisodeState, now: datetime, out: Outcome) -> TransitionPlan | None:
    """The ``on_handoff`` move a handoff of this stage visit that just ended badly makes, if any."""
    ends = {e for h in out.handoffs_changed if h.visit == state.visit and (e := _end(h)) is not None}
    for t in plan.transitions:
        holds = t.guard is None or evaluate(t.guard, state.facts, now=now, times=state.event_times)
        if state.stage in t.sources and ends & set(t.on_handoff) and holds:
            return t
    return None
