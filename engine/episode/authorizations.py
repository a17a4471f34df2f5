"""Insurance authorization applied to an episode: requested, approved or denied, and the admission it holds.

Pure, like :mod:`engine.episode.referrals` and :mod:`engine.episode.rules`, which call it. The decision rules are
:mod:`.domain.authorization`'s (``open_authorization``, ``authorization_move``, ``precondition_met``); this module
ties one authorization to one move and its ``t<i>.authorization`` work (deadline, ladder, owner):

- a move whose handoff needs authorization (``required``, and its ``unless`` guard false) opens one, or adopts the
  one requested before the move in the source stage (``authorization.requested`` with ``to``), so there is never
  a second;
- ``authorization.approved`` meets the deadline; ``authorization.denied`` (with a ``reason``) ends the deadline and
  alerts the owner at once: the alert's title holds the pathway's words only, the reason goes in its note;
  ``authorization.requested`` after a denial starts a new deadline;
- the receiver's ``keep`` (the admission) is refused while a needed authorization is not approved;
- an authorization ends with its handoff (declined, failed, cancelled, loop closed) or with the stay it serves.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from engine.episode.domain import effects as fx
from engine.episode.domain.authorization import authorization_move, open_authorization, precondition_met
from engine.episode.state import (
    Authorization,
    EpisodeState,
    Event,
    Handoff,
    Outcome,
    alert,
    close_item,
    event_key,
    open_work,
)
from engine.errors import EventRejected
from engine.language.builtins import AUTHORIZATION_EVENTS
from engine.language.guards import describe, evaluate
from engine.plan.model import Plan, TransitionPlan, WorkPlan

__all__ = [
    "admission_hold",
    "end_of_handoff",
    "end_of_visit",
    "end_unadopted",
    "handle_authorization",
    "open_at_move",
    "owned_items",
]


def _work(plan: Plan, transition_index: int) -> WorkPlan:
    return next(w for w in plan.transitions[transition_index].work if w.kind == "authorization")


def _open_item(work: WorkPlan, state: EpisodeState, auth: Authorization, now: datetime, out: Outcome) -> None:
    """The deadline of the latest request; a request after a denial gets an id of its own (``.../2``)."""
    item = open_work(work, now, state.id, auth.visit, auth.handoff_id)
    if auth.requests > 1:
        item.id = f"{item.id}/{auth.requests}"
        for rung in item.rungs:
            rung.id = f"{item.id}#r{rung.index}"
    auth.item_id = item.id
    state.items.append(item)
    out.opened.append(item)


def _new(
    state: EpisodeState, t: TransitionPlan, work: WorkPlan, handoff_id: str | None, now: datetime
) -> Authorization:
    decision = open_authorization(f"{state.id}/{state.visit}/{work.key}", now, work.due)
    assert t.handoff is not None  # authorization work exists only on a move with a handoff
    auth = Authorization(
        id=decision.id,
        transition_index=t.index,
        target=t.target,
        program=t.handoff.program,
        visit=state.visit,
        handoff_id=handoff_id,
        requested_at=now,
        due_at=decision.due_at,
    )
    auth.absorb(decision)
    return auth


def open_at_move(
    state: EpisodeState, t: TransitionPlan, work: WorkPlan, handoff_id: str, now: datetime, out: Outcome
) -> None:
    """The move needs authorization: adopt the one requested before it for this target, else request one now."""
    early = next((a for a in state.authorizations if a.handoff_id is None and a.target == t.target), None)
    if early is not None:
        early.handoff_id, early.visit = handoff_id, state.visit
        out.authorizations.append(early)
        out.audit.append(("authorization.adopted", {"authorization": early.id, "status": early.status}))
        return
    auth = _new(state, t, work, handoff_id, now)
    _open_item(work, state, auth, now, out)
    state.authorizations.append(auth)
    out.authorizations.append(auth)
    out.audit.append(("authorization.requested", {"authorization": auth.id}))


# ---------------------------------------------------------------------------------------------------- events


def _pick(state: EpisodeState, event: Event) -> Authorization | None:
    """The authorization an event names (``handoff``, ``to``) or the only one; None: a request before the move."""
    handoff, to = event.data.get("handoff"), event.data.get("to")
    found = [a for a in state.authorizations if (not handoff or a.handoff_id == handoff) and (not to or a.target == to)]
    if not found and event.name == "authorization.requested" and not handoff:
        return None
    if not found:
        named = f" for handoff '{handoff}'" if handoff else f" for a move to '{to}'" if to else ""
        raise EventRejected(f"event '{event.name}': no open insurance authorization{named} on episode {state.id}")
    if len(found) > 1:
        targets = ", ".join(sorted({a.target for a in found}))
        raise EventRejected(
            f"episode {state.id} has {len(found)} open insurance authorizations ({targets}): name one with to=STAGE"
        )
    return found[0]


def _request_early(plan: Plan, state: EpisodeState, event: Event, now: datetime, out: Outcome) -> None:
    """Ask before the move: it must name (or be the only) move from this stage that needs authorization."""
    to = event.data.get("to")
    needing = [
        (t, w)
        for t in plan.transitions
        if state.stage in t.sources and (not to or t.target == to)
        for w in t.work
        if w.kind == "authorization"
    ]
    if not needing:
        where = f" to '{to}'" if to else ""
        raise EventRejected(f"no move from '{state.stage}'{where} needs insurance authorization")
    targets = sorted({t.target for t, _ in needing})
    if len(targets) > 1:
        raise EventRejected(
            f"moves from '{state.stage}' to {', '.join(targets)} need insurance authorization: name one with to=STAGE"
        )
    t, work = needing[0]
    if work.skip_if is not None and evaluate(work.skip_if, state.facts, now=now, times=state.event_times):
        raise EventRejected(f"the move to '{t.target}' needs no insurance authorization now ({describe(work.skip_if)})")
    auth = _new(state, t, work, None, now)
    _open_item(work, state, auth, now, out)
    state.authorizations.append(auth)
    out.authorizations.append(auth)
    out.audit.append(("authorization.requested", {"authorization": auth.id, "before_move_to": t.target}))


def _adopt_legacy(plan: Plan, state: EpisodeState, out: Outcome) -> None:
    """An episode from before authorizations were kept has only its ``t<i>.authorization`` deadline: make it one."""
    owned = owned_items(state)
    for item in [i for i in state.items if i.kind == "authorization" and i.id not in owned]:
        t = plan.transitions[int(item.key.split(".", 1)[0].removeprefix("t"))]
        auth = Authorization(
            id=item.id,
            transition_index=t.index,
            target=t.target,
            program=t.handoff.program if t.handoff else t.target,
            visit=item.visit,
            handoff_id=item.handoff_id,
            requested_at=item.opened_at,
            due_at=item.due_at,
            item_id=item.id,
        )
        state.authorizations.append(auth)
        out.authorizations.append(auth)


def handle_authorization(
    plan: Plan, state: EpisodeState, event: Event, now: datetime, out: Outcome, *, moves: bool = False
) -> None:
    """Apply ``authorization.requested`` / ``approved`` / ``denied``; refused (nothing changed) when not possible.

    ``moves``: a transition leaves the current stage on this event (a pathway may move on a payer's decision), so
    an event that no authorization is waiting for only moves the person.
    """
    _adopt_legacy(plan, state, out)
    try:
        auth = _pick(state, event)
    except EventRejected:
        if moves:
            return
        raise
    if auth is None:
        if not moves:
            _request_early(plan, state, event, now, out)
        return
    work = _work(plan, auth.transition_index)
    action = AUTHORIZATION_EVENTS[event.name]
    reason = event.data.get("reason")
    decision, effects = authorization_move(
        auth.lifecycle(), action, now, reason=str(reason) if reason else None, within=work.due
    )
    auth.absorb(decision)
    out.authorizations.append(auth)
    out.audit.append(("authorization." + auth.status, {"authorization": auth.id}))
    item = next((i for i in state.items if i.id == auth.item_id), None)
    for effect in effects:
        if isinstance(effect, fx.StepMet) and item is not None:
            close_item(item, "done", event.id, state, out)
        elif isinstance(effect, fx.Escalate):
            if item is not None:
                close_item(item, "cancelled", "denied", state, out)
            roles = [work.owner] if work.owner else []
            title = f"{work.title} denied"  # the pathway's words; the reason stays in the store (note)
            alert(state, out, f"authorization.{event_key(event)}", title, roles, now, severity="high", note=auth.reason)
    if action == "request":
        auth.requests += 1
        _open_item(work, state, auth, now, out)


def admission_hold(state: EpisodeState, handoff: Handoff) -> str | None:
    """Why the receiver may not admit (``keep``) now, or None: no authorization is needed or it was approved."""
    auth = next((a for a in state.authorizations if a.handoff_id == handoff.id), None)
    if auth is None or precondition_met(auth.lifecycle()):
        return None
    return (
        f"handoff {handoff.id}: admission held until the insurance authorization for {auth.program} is approved "
        f"(it is '{auth.status}')"
    )


# ---------------------------------------------------------------------------------------------------- ending


def owned_items(state: EpisodeState) -> set[str]:
    """Deadline items that end with their authorization, not with the stage visit they were opened in."""
    return {a.item_id for a in state.authorizations if a.item_id}


def _end(state: EpisodeState, auth: Authorization, out: Outcome, now: datetime, why: str) -> None:
    item = next((i for i in state.items if i.id == auth.item_id), None)
    if item is not None:
        close_item(item, "cancelled", why, state, out)
    auth.closed_at, auth.closed_by = now, why
    state.authorizations.remove(auth)
    out.authorizations.append(auth)


def end_of_visit(
    state: EpisodeState, out: Outcome, now: datetime, why: str, visit: int | None, keep: Collection[str] = ()
) -> None:
    """The stay ends: end the authorizations of its handoffs (all of them when the episode ends, ``visit`` None).

    One requested before a move is left for :func:`end_unadopted`, after the move has had the chance to adopt it;
    one whose handoff is in ``keep`` (it lasts the episode) stays with its handoff.
    """
    for auth in list(state.authorizations):
        if auth.handoff_id is not None and auth.handoff_id in keep:
            continue
        if visit is None or (auth.visit == visit and auth.handoff_id is not None):
            _end(state, auth, out, now, why)


def end_unadopted(state: EpisodeState, out: Outcome, now: datetime, why: str) -> None:
    """After a move: a request made before it for another destination is no longer needed."""
    for auth in list(state.authorizations):
        if auth.handoff_id is None and auth.visit != state.visit:
            _end(state, auth, out, now, why)


def end_of_handoff(state: EpisodeState, out: Outcome, now: datetime, why: str, handoff_id: str) -> None:
    """The handoff ended (declined, failed, cancelled, or its loop closed): its authorization is no longer followed."""
    for auth in [a for a in state.authorizations if a.handoff_id == handoff_id]:
        _end(state, auth, out, now, why)
