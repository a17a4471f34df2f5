"""Insurance authorization, the precondition a handoff's admission waits on: ``requested``, then ``approved`` or
``denied``; after a denial it may be requested again, with a new decision deadline.

A small table of moves like :mod:`.handoff`'s, kept apart because it is a state machine of its own (one
authorization per move, decided by the payer, not by either party to the referral). Pure: ``now`` is passed in;
an illegal move raises :class:`~engine.errors.EventRejected` and changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from engine.episode.domain.effects import Effect, Escalate, StepMet
from engine.errors import EventRejected
from engine.language.spans import Span, add

__all__ = [
    "AUTHORIZATION_ACTIONS",
    "AuthorizationAction",
    "AuthorizationState",
    "AuthorizationStatus",
    "authorization_move",
    "authorization_overdue",
    "open_authorization",
    "precondition_met",
]

AuthorizationStatus = Literal["requested", "approved", "denied"]
AuthorizationAction = Literal["approve", "deny", "request"]
AUTHORIZATION_ACTIONS: tuple[str, ...] = get_args(AuthorizationAction)


class AuthorizationState(BaseModel):
    """An insurance authorization a handoff waits on, with its own decision deadline (``due_at``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: AuthorizationStatus = "requested"
    requested_at: datetime
    due_at: datetime
    decided_at: datetime | None = None
    reason: str | None = None


_AUTH_MOVES: dict[str, tuple[tuple[str, ...], AuthorizationStatus]] = {
    "approve": (("requested",), "approved"),
    "deny": (("requested",), "denied"),
    # After a denial the coordinator may ask again (appeal, corrected request); the deadline starts over.
    "request": (("denied",), "requested"),
}


def open_authorization(auth_id: str, now: datetime, within: Span) -> AuthorizationState:
    """An authorization requested at ``now``, decided by ``now + within``."""
    return AuthorizationState(id=auth_id, requested_at=now, due_at=add(now, within))


def authorization_move(
    state: AuthorizationState,
    action: str,
    now: datetime,
    *,
    reason: str | None = None,
    within: Span | None = None,
) -> tuple[AuthorizationState, list[Effect]]:
    """``approve``, ``deny`` (reason required) or ``request`` again after a denial (``within`` required).

    Approval meets the ``authorization`` precondition; a denial escalates. Illegal moves raise
    :class:`EventRejected` and change nothing.
    """
    if action not in _AUTH_MOVES:
        raise EventRejected(f"'{action}' is not an authorization move (moves: {', '.join(AUTHORIZATION_ACTIONS)})")
    sources, target = _AUTH_MOVES[action]
    if state.status not in sources:
        legal = [a for a, (src, _) in _AUTH_MOVES.items() if state.status in src]
        raise EventRejected(
            f"authorization {state.id} is '{state.status}'; '{action}' is not possible now "
            f"(moves now: {', '.join(legal) or 'none'})"
        )
    if action == "deny" and not reason:
        raise EventRejected(f"authorization {state.id}: 'deny' needs a reason")
    if action == "request":
        if within is None:
            raise EventRejected(f"authorization {state.id}: 'request' needs a decision deadline")
        new = state.model_copy(
            update={
                "status": target,
                "requested_at": now,
                "due_at": add(now, within),
                "decided_at": None,
                "reason": None,
            }
        )
        return new, []
    new = state.model_copy(update={"status": target, "decided_at": now, "reason": reason})
    if target == "approved":
        return new, [StepMet("authorization")]
    return new, [Escalate("authorization-denied", reason)]


def authorization_overdue(state: AuthorizationState, now: datetime) -> bool:
    """Still undecided after its deadline."""
    return state.status == "requested" and now > state.due_at


def precondition_met(state: AuthorizationState | None) -> bool:
    """The admission may go ahead: no authorization was needed (None) or it was approved."""
    return state is None or state.status == "approved"
