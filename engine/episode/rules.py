"""Episode semantics: what enrolling, an event and a due escalation rung do to an episode. Pure: no I/O, no clock.

Each function takes the compiled :class:`~engine.plan.model.Plan`, the episode's current :class:`EpisodeState` (its open
work only) and ``now``, and returns an :class:`Outcome` listing every change, so the service layer can persist it in one
transaction and the orchestration layer can schedule or cancel exactly the timers that changed. Work item and rung ids
are deterministic (episode, stage visit, plan key), which is what makes scheduling them idempotent. Rules:

- an event must be declared (or built in), carry a valid payload, and be *expected* now: it triggers a
  transition from the current stage, meets open work, or is a built-in with its own meaning; otherwise it is
  rejected and nothing changes;
- leaving a stage cancels every open item of that stage visit (its entry work, check-ins and the handoff that
  brought the person there), except what the pathway says lasts the episode (``lasts: episode``: a handoff with
  its deadlines, a task); a terminal stage completes the episode. What belongs to the episode outlives the
  move: an alert already raised, a social-need referral (it ends when referred, declined or the episode ends) and
  an authorization requested for this very move (the move adopts it);
- a stage's expected stay is checked: past ``max`` is a deadline (``s.<stage>.stay``, ended by leaving), shorter
  than ``min`` is flagged on leaving (:attr:`Outcome.short_stay` and the audit trail);
- a rung escalates only if its item is still open and due; the last rung of a missed check-in closes the occurrence
  and opens the next one, so open-ended series stay one item at a time. Every deadline is a ``spans.add``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.episode import authorizations, timeouts
from engine.episode.copying import structural_copy
from engine.episode.lasting import outlives_stage
from engine.episode.payloads import check_payload
from engine.episode.referrals import handle_consent, handle_handoff_event, handle_medication_list, open_handoff
from engine.episode.state import (
    EpisodeState,
    Escalation,
    Event,
    Handoff,
    Outcome,
    Rung,
    WorkItem,
    close_item,
    counted_from,
    event_key,
    open_work,
)
from engine.errors import EventRejected
from engine.language.builtins import AUTHORIZATION_EVENTS
from engine.language.durations import show_duration
from engine.language.guards import describe, evaluate, possible_from
from engine.language.moments import OCCURRED_AT, parse_moment
from engine.language.spans import add, chain
from engine.plan.model import STAY_DONE_ON, CheckInSeriesPlan, Plan, TransitionPlan, next_in_track, track_starts

#: Work that :mod:`engine.episode.referrals` closes from a handoff's lifecycle, never by event name alone.
_MOVED_BY_TRANSFERS = frozenset(
    {"handoff-step", "re-engagement", "consent", "alert", "authorization", "stay", "timeout"}
)
#: Built-in events that carry their own meaning (never "unexpected" in a stage; they may still be refused).
_SAFETY_EVENTS = frozenset(
    {"handoff.move", "consent.recorded", "consent.revoked", "medications.sending-list", "medications.receiving-list"}
)

__all__ = [
    "EpisodeState",
    "Escalation",
    "Event",
    "Handoff",
    "Outcome",
    "Rung",
    "WorkItem",
    "apply_event",
    "enroll",
    "expected_events",
    "fire_rung",
]

# ---------------------------------------------------------------------------------------------- opening work


def _check_in(
    series: tuple[CheckInSeriesPlan, ...], position: int, k: int, entered: datetime, episode_id: str, visit: int
) -> WorkItem | None:
    """Occurrence ``k`` of series ``position`` (after its track's earlier series; rolling over when one is used up)."""
    at: int | None = position
    while at is not None:
        position = at
        s = series[position]
        opens = add(start := chain(entered, [p.span for p in series[:position] if p.track == s.track]), k * s.every)
        if s.span is None or opens < add(start, s.span):
            item_id = f"{episode_id}/{visit}/{s.key}/{k}"
            return WorkItem(
                id=item_id,
                kind="check-in",
                key=s.key,
                title=f"check-in {k + 1} ({s.owner})",
                owner=s.owner,
                opened_at=opens,
                due_at=add(opens, s.window),
                done_on=s.done_on,
                visit=visit,
                occurrence=k,
                rungs=[
                    Rung(id=f"{item_id}#r{r.index}", index=r.index, due_at=add(opens, r.at), role=r.to)
                    for r in s.ladder
                ],
            )
        at, k = next_in_track(series, position), 0
    return None


def _enter_stage(
    plan: Plan, state: EpisodeState, stage: str, now: datetime, transition: TransitionPlan | None, out: Outcome
) -> None:
    """Enter ``stage`` (a new visit when a transition or fallback leads there) and open its work."""
    state.stage, state.stage_entered_at = stage, now
    handoff_id, sent = None, True
    if transition is not None:
        state.visit += 1
        state.medication_lists = {}
        if transition.handoff is not None:
            handoff, sent = open_handoff(plan, state, transition, now, out)
            handoff_id = handoff.id
    stage_plan = plan.stages[stage]
    work = list(transition.work if transition else ()) + list(stage_plan.entry_work)
    for w in sorted(work, key=lambda w: (w.due, w.key)):
        if w.kind == "handoff-step" and not sent:
            continue  # its deadlines start when the referral is sent, under consent
        if w.skip_if is not None and evaluate(w.skip_if, state.facts, now=now, times=state.event_times):
            out.audit.append(("work.skipped", {"key": w.key, "because": describe(w.skip_if)}))
            continue
        if w.only_if is not None and not evaluate(w.only_if, state.facts, now=now, times=state.event_times):
            out.audit.append(("work.not-needed", {"key": w.key, "only_if": describe(w.only_if)}))
            continue
        if w.kind == "authorization" and transition is not None and handoff_id is not None:
            authorizations.open_at_move(state, transition, w, handoff_id, now, out)
            continue
        item = open_work(w, counted_from(w, state, now), state.id, state.visit, handoff_id)
        item.opened_at = now
        state.items.append(item)
        out.opened.append(item)
    for start in track_starts(stage_plan.check_ins):  # each track's contacts run side by side
        first = _check_in(stage_plan.check_ins, start, 0, now, state.id, state.visit)
        if first is not None:
            state.items.append(first)
            out.opened.append(first)
    if stage_plan.terminal:
        state.status = "completed"
        _close_all(state, out, now, reason="episode completed")
    else:
        timeouts.arm(plan, state, now, out, entering=True)


def _close_all(
    state: EpisodeState, out: Outcome, now: datetime, reason: str, visit: int | None = None, plan: Plan | None = None
) -> None:
    """End the work of stage visit ``visit`` (all of the episode's, when None): what the person leaves behind.

    Work and handoffs the pathway says last the episode (``lasts: episode``) stay until met, closed or cancelled.
    """
    lasting = outlives_stage(plan, state) if plan is not None and visit is not None else frozenset()
    authorizations.end_of_visit(state, out, now, reason, visit, keep=lasting)
    kept = authorizations.owned_items(state)  # requested before a move: the move may adopt them
    for item in list(state.items):
        if item.kind == "alert" or item.id in kept or item.id in lasting:
            continue  # an escalation already raised is delivered whatever the person does next
        if item.kind == "referral" and visit is not None:
            continue  # a social need belongs to the episode, not to the stage it was found in
        if visit is None or item.visit == visit:
            close_item(item, "done" if item.kind == "stay" else "cancelled", reason, state, out)
    for handoff in list(state.handoffs):
        if handoff.id in lasting:
            continue
        if visit is None or handoff.visit == visit:
            handoff.status, handoff.business_status, handoff.closed_at = "cancelled", "fulfillment-cancelled", now
            state.handoffs.remove(handoff)
            out.handoffs_changed.append(handoff)


# --------------------------------------------------------------------------------------------------- enroll


def enroll(plan: Plan, episode_id: str, now: datetime, facts: dict[str, Any] | None = None) -> Outcome:
    """A new episode at the plan's first stage, with that stage's entry work opened."""
    state = EpisodeState(id=episode_id, stage=plan.initial_stage, stage_entered_at=now, facts=dict(facts or {}))
    out = Outcome(state=state)
    _enter_stage(plan, state, plan.initial_stage, now, None, out)
    out.audit.insert(0, ("enrolled", {"pathway": plan.pathway_id, "version": plan.version, "stage": state.stage}))
    return out


# ---------------------------------------------------------------------------------------------------- events


def _meets(item: WorkItem, event: Event) -> bool:
    if item.kind in _MOVED_BY_TRANSFERS or item.done_on != event.name:
        return False
    if any(str(event.data.get(k)) != v for k, v in item.match.items()):
        return False
    wanted = event.data.get("handoff")
    return not (wanted and item.handoff_id and wanted != item.handoff_id)


def expected_events(plan: Plan, state: EpisodeState) -> list[str]:
    """Events that would be accepted now (for messages and the status view)."""
    moves = [t for t in plan.transitions if state.stage in t.sources]
    names = {e for t in moves for e in t.on_events}
    names |= {name for name in plan.events if plan.record_anywhere(name)}
    names |= {i.done_on for i in state.items if i.done_on != STAY_DONE_ON and i.kind != "timeout"}
    if plan.referrals:
        names.add("need.identified")
    if any(i.kind == "referral" for i in state.items):
        names.add("referral.declined")
    if any(w.kind == "authorization" for t in moves for w in t.work):
        names.add("authorization.requested")
    for auth in state.authorizations:
        names |= {"authorization.approved", "authorization.denied"} if auth.status == "requested" else set()
        names |= {"authorization.requested"} if auth.status == "denied" else set()
    return sorted(names)


def _reject_unexpected(plan: Plan, state: EpisodeState, event: Event, reason: str | None = None) -> EventRejected:
    expected = ", ".join(expected_events(plan, state)) or "none"
    why = reason or f"is not expected in stage '{state.stage}'"
    code = "not-expected" if reason is None else "no-guard-holds"  # what Prefect shows: a code, never the text
    return EventRejected(f"event '{event.name}' {why} (expected now: {expected})", code=code)


def apply_event(plan: Plan, state: EpisodeState, event: Event, now: datetime) -> Outcome:
    """Apply ``event`` to a copy of ``state``; raise :class:`EventRejected` (nothing changed) if not allowed now."""
    check_payload(plan, event)
    if state.status != "active":
        raise EventRejected(f"episode {state.id} is {state.status}; no further events are accepted")
    happened = parse_moment(event.data.get(OCCURRED_AT)) or event.at
    if happened > now:
        raise EventRejected(f"event '{event.name}': '{OCCURRED_AT}' {happened.isoformat()} is in the future")
    state = structural_copy(state)
    out = Outcome(state=state)
    last = state.event_times.get(event.name)
    state.event_times[event.name] = happened if last is None else max(last, happened)
    facts = {k: v for k, v in event.data.items() if k in plan.facts}
    state.facts.update(facts)

    handled = event.name in _SAFETY_EVENTS or plan.record_anywhere(event.name)
    fallback = None
    if event.name.startswith("handoff."):
        fallback, handled = handle_handoff_event(plan, state, event, now, out), True
    elif event.name.startswith("consent."):
        handle_consent(plan, state, event, now, out)
    elif event.name.startswith("medications.") and event.name.endswith("-list"):
        handle_medication_list(plan, state, event, now, out)
    elif event.name in AUTHORIZATION_EVENTS:
        moves = bool(plan.transitions_on(state.stage, event.name))
        authorizations.handle_authorization(plan, state, event, now, out, moves=moves)
        handled = True

    met = [i for i in state.items if _meets(i, event)]
    # a recurring contact meets one occurrence: the earliest open one
    checkins = sorted((i for i in met if i.kind == "check-in"), key=lambda i: i.opened_at)
    met = [i for i in met if i.kind != "check-in"] + checkins[:1]
    for item in met:
        close_item(item, "done", event.id, state, out)
        if item.kind == "check-in":
            _next_check_in(plan, state, item, out)
    if fallback is not None:
        _fall_back(plan, state, fallback, event, now, out)
        handled = True
    elif event.name.startswith("handoff.") and (ended := timeouts.handoff_move(plan, state, now, out)) is not None:
        _move(plan, state, ended, event, now, out, planned=False)

    if event.name == "need.identified":
        _open_referral(plan, state, event, now, out)
    elif event.name == "referral.declined":
        _decline_referral(state, event, out)
        handled = True

    candidates = plan.transitions_on(state.stage, event.name)
    times = state.event_times
    chosen = next(
        (t for t in candidates if t.guard is None or evaluate(t.guard, state.facts, now=now, times=times)), None
    )
    if chosen is not None:
        _move(plan, state, chosen, event, now, out)
    elif candidates and not met and not handled:
        guards = "; ".join(describe(t.guard) for t in candidates if t.guard is not None)
        ready = [w for t in candidates if t.guard and (w := possible_from(t.guard, state.facts, times)) is not None]
        when = f"; possible from {min(ready):%Y-%m-%d %H:%M} UTC" if ready else ""
        raise _reject_unexpected(
            plan, state, event, f"moves nowhere from '{state.stage}': no guard holds ({guards}{when})"
        )
    elif not met and not handled and event.name != "need.identified":
        raise _reject_unexpected(plan, state, event)
    timeouts.disarm(state, out)
    if out.moved is None:
        timeouts.arm(plan, state, now, out, entering=False)  # a handoff step sent under a consent just recorded
    detail: dict[str, Any] = {"event": event.name, "event_id": event.id, "facts": sorted(facts)}
    if plan.record_anywhere(event.name) and out.moved is None and not met:
        detail["recorded_only"] = True  # accepted in any stage: here it only records
    out.audit.insert(0, ("event", detail))
    return out


def _move(
    plan: Plan,
    state: EpisodeState,
    t: TransitionPlan,
    event: Event | None,
    now: datetime,
    out: Outcome,
    *,
    planned: bool = True,
) -> None:
    # before_leaving guards a planned transfer of care (a move with a handoff); an unplanned exit (contact
    # lost, re-arrest, a timeout, a declined handoff) cannot wait for paperwork, and its open work is cancelled
    required = plan.stages[state.stage].before_leaving if t.handoff is not None and planned else ()
    missing = [k for k in required if any(i.kind == "task" and i.key.rsplit(".", 1)[-1] == k for i in state.items)]
    if missing:
        raise EventRejected(
            f"cannot leave '{state.stage}' on '{event.name if event else t.trigger()}' before: "
            f"{', '.join(missing)} (record them first)"
        )
    left = state.stage
    _check_stay(plan, state, now, out)
    _close_all(state, out, now, reason=f"left {left}", visit=state.visit, plan=plan)
    _enter_stage(plan, state, t.target, now, t, out)
    authorizations.end_unadopted(state, out, now, f"left {left}")
    out.moved = (left, t.target)
    out.audit.append(
        ("moved", {"from": left, "to": t.target, "transition": t.index, **({} if planned else {"unplanned": True})})
    )


def _next_check_in(plan: Plan, state: EpisodeState, item: WorkItem, out: Outcome) -> None:
    series = plan.stages[state.stage].check_ins
    position = next((n for n, s in enumerate(series) if s.key == item.key), None)
    if position is None or item.visit != state.visit:
        return
    nxt = _check_in(series, position, item.occurrence + 1, state.stage_entered_at, state.id, state.visit)
    if nxt is not None:
        state.items.append(nxt)
        out.opened.append(nxt)


def _fall_back(plan: Plan, state: EpisodeState, stage: str, event: Event, now: datetime, out: Outcome) -> None:
    """The receiver declined: the person goes to the pathway's fallback stage (a new visit, no handoff)."""
    left = state.stage
    _check_stay(plan, state, now, out)
    _close_all(state, out, now, reason=f"declined: fell back to {stage}", visit=state.visit, plan=plan)
    state.visit += 1
    state.medication_lists = {}
    _enter_stage(plan, state, stage, now, None, out)
    authorizations.end_unadopted(state, out, now, f"left {left}")
    out.moved = (left, stage)
    out.audit.append(("moved", {"from": left, "to": stage, "fallback": True}))


def _open_referral(plan: Plan, state: EpisodeState, event: Event, now: datetime, out: Outcome) -> None:
    """A need found: its referral is due; the same need found again while its referral is open changes nothing."""
    need = str(event.data.get("need", ""))
    if need not in plan.referrals:
        known = ", ".join(sorted(plan.referrals)) or "none"
        raise EventRejected(f"need '{need}' has no referral rule in pathway '{plan.pathway_id}' (known: {known})")
    work = plan.referrals[need]
    if any(i.kind == "referral" and i.key == work.key for i in state.items):
        return
    item = open_work(work, now, state.id, state.visit, None)
    # found again after a referral ended: a new item, the old one stays on record
    item.id = f"{item.id}/{event_key(event)}"
    for rung in item.rungs:
        rung.id = f"{item.id}#r{rung.index}"
    state.items.append(item)
    out.opened.append(item)


def _decline_referral(state: EpisodeState, event: Event, out: Outcome) -> None:
    """The person declines the referral for a need: it ends (cancelled, ``declined``) and escalates no further."""
    need = str(event.data.get("need", ""))
    item = next((i for i in state.items if i.kind == "referral" and i.match.get("need") == need), None)
    if item is None:
        raise EventRejected(f"event '{event.name}': no open referral for need '{need}' on episode {state.id}")
    close_item(item, "cancelled", "declined", state, out)
    out.audit.append(("referral.declined", {"need": need, "event_id": event.id}))


def _check_stay(plan: Plan, state: EpisodeState, now: datetime, out: Outcome) -> None:
    """Leaving: a stay shorter than the stage's expected ``min`` is flagged (the deadline handles ``max``)."""
    shortest = plan.stages[state.stage].min_stay
    stayed = now - state.stage_entered_at
    if shortest is not None and now < add(state.stage_entered_at, shortest):
        out.short_stay = add(state.stage_entered_at, shortest) - state.stage_entered_at  # this visit's months
        detail = {"stage": state.stage, "stayed": show_duration(stayed), "min": show_duration(shortest)}
        out.audit.append(("stay.short", detail))


# ----------------------------------------------------------------------------------------------------- rungs


def fire_rung(plan: Plan, state: EpisodeState, rung_id: str, now: datetime) -> Outcome:
    """Escalate rung ``rung_id`` if its item is still open and it is due; otherwise change nothing."""
    state = structural_copy(state)
    out = Outcome(state=state)
    item = next((i for i in state.items if any(r.id == rung_id for r in i.rungs)), None)
    if item is None:
        return out
    rung = next(r for r in item.rungs if r.id == rung_id)
    if rung.status != "pending" or rung.due_at > now:
        return out
    rung.status = "fired"
    out.fired_rungs.append(rung.id)
    if item.kind == "timeout":  # a move on what did not happen: it moves, nobody is alerted
        move = timeouts.due_move(plan, state, item, now, out)
        if move is not None:
            close_item(item, "done", f"rung {rung.index}", state, out)
            _move(plan, state, move, None, now, out, planned=False)
        return out
    out.escalations.append(Escalation(rung_id=rung.id, item_id=item.id, role=rung.role, raised_at=now))
    out.audit.append(("escalated", {"item": item.key, "rung": rung.index + 1, "to": rung.role}))
    if item.kind in ("check-in", "alert") and all(r.status != "pending" for r in item.rungs):
        close_item(item, "missed" if item.kind == "check-in" else "done", f"rung {rung.index}", state, out)
        if item.kind == "check-in":
            _next_check_in(plan, state, item, out)
    return out
