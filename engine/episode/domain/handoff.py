"""The closed-loop handoff lifecycle, in the standards' own states. Pure: no I/O, no clock (``now`` is passed in).

A handoff is a referral to a receiving program, modelled as FHIR R4 ``Task.status`` plus the HL7 BSeR / IHE 360X
``Task.businessStatus`` (codes kept alongside, e.g. ``3.0``). Who may make a move follows the Gravity SDOH
Clinical Care IG: the requester (*sender*) creates and sends the referral and may cancel it; the performer
(*receiver*) receives, accepts or rejects it, puts it on hold, fails or completes it, and reports the BSeR events
(visit scheduled, kept, missed); either may cancel.

States (``status`` / ``business_status``)::

    draft / created ──send──> requested / created ──receive──> received / created
        (consent needed)            │  │                              │  │
                                    │  └──decline──> rejected / declined <┘  (fallback + escalate)
                                    └──accept──> accepted / accepted <──accept┘
    accepted / accepted ──schedule──> accepted / event-scheduled ──keep──> in-progress / event-completed
                       └──no-show──>  accepted / no-show  (re-engage + escalate; schedule or keep again)
    in-progress / event-completed ──return-outcome──> completed / fulfillment-completed   (the loop closes)

plus ``hold``/``resume`` (on-hold, keeping the business status), ``cancel-visit`` (event-cancelled), ``fail``
and ``cancel``. The loop closes only when the first visit was kept *and* the outcome came back: ``return-outcome``
is legal only after ``keep``.

"Consent needed" is FHIR ``draft`` (the Task exists but is not yet actionable: nothing has been sent) with BSeR
``2.0 created`` and ``status_reason='consent-needed'``. ``on-hold`` would be wrong: it means the *performer* paused
work already started, and the receiver has not seen the referral yet. ``send`` needs the id of the consent that
covers the disclosure, so a referral cannot leave without one.

A sender's ``cancel`` after the receiver engaged (received or later) sets ``cancelled`` with BSeR
``5.2 cancellation-requested``: Carepath stops following the loop at once (Gravity lets the requester cancel), and
the receiver's own ``cancel`` then acknowledges it (``6.0 fulfillment-cancelled``).

:func:`move` returns the new state and the :data:`Effect` list the pathway machinery must act on; an illegal move,
a move by the wrong party or a missing detail raises :class:`~engine.errors.EventRejected` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from engine.errors import EventRejected

__all__ = [
    "ACTIONS",
    "AUTHORIZATION_ACTIONS",
    "BSER_CODES",
    "ESCALATION_TITLES",
    "MOVES",
    "Action",
    "AuthorizationAction",
    "AuthorizationState",
    "AuthorizationStatus",
    "BusinessStatus",
    "CancelSteps",
    "ConsentNeeded",
    "Disclose",
    "Effect",
    "Escalate",
    "HandoffState",
    "LoopClosed",
    "Move",
    "Party",
    "Reengaged",
    "StartFallback",
    "StartReengagement",
    "StepMet",
    "TaskStatus",
    "authorization_move",
    "authorization_overdue",
    "label",
    "legal_moves",
    "move",
    "open_authorization",
    "open_handoff",
    "precondition_met",
]

TaskStatus = Literal[
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "cancelled",
]
BusinessStatus = Literal[
    "created",
    "accepted",
    "declined",
    "event-scheduled",
    "no-show",
    "event-cancelled",
    "event-completed",
    "cancellation-requested",
    "fulfillment-cancelled",
    "fulfillment-completed",
]
Party = Literal["sender", "receiver"]
Action = Literal[
    "send",
    "receive",
    "accept",
    "decline",
    "schedule",
    "no-show",
    "keep",
    "cancel-visit",
    "return-outcome",
    "hold",
    "resume",
    "fail",
    "cancel",
]
ACTIONS: tuple[str, ...] = get_args(Action)

#: BSeR ``TaskBusinessStatusCS`` code and display for each business status (harmonized with IHE 360X).
BSER_CODES: dict[str, tuple[str, str]] = {
    "created": ("2.0", "Service Request Created"),
    "accepted": ("3.0", "Service Request Accepted"),
    "declined": ("4.0", "Service Request Declined"),
    "event-scheduled": ("5.1.1", "Service Request Event Scheduled"),
    "no-show": ("5.1.2", "Scheduled Service Request Event Unattended"),
    "event-cancelled": ("5.1.3", "Scheduled Service Request Event Cancelled"),
    "event-completed": ("5.1.4", "Service Request Event Completed"),
    "cancellation-requested": ("5.2", "Service Request Cancellation Requested"),
    "fulfillment-cancelled": ("6.0", "Service Request Fulfillment Cancelled"),
    "fulfillment-completed": ("7.0", "Service Request Fulfillment Completed"),
}

# ------------------------------------------------------------------------------------------------------ effects


@dataclass(frozen=True)
class StepMet:
    """A handoff step of the pathway is met (``accepted``, ``scheduled``, ``visit-kept``, ``outcome-returned``)."""

    step: str


@dataclass(frozen=True)
class StartReengagement:
    """The person missed the visit: open re-engagement due at ``due_at`` (None: the pathway sets no deadline)."""

    within: timedelta | None
    due_at: datetime | None


@dataclass(frozen=True)
class Reengaged:
    """After a no-show the visit was re-booked or kept: the re-engagement work is met."""


@dataclass(frozen=True)
class StartFallback:
    """The receiver declined: go to the pathway's fallback ``stage``; None means the coordinator chooses."""

    stage: str | None


@dataclass(frozen=True)
class Escalate:
    """Tell people now, whatever the deadlines say (decline, no-show, a receiver's cancel or failure).

    ``code`` says what happened in the standards' words (``declined``, ``no-show``, ``failed``,
    ``cancelled-by-receiver``, ``authorization-denied``): it is what alerts and operators see. ``reason`` is the
    free text someone typed, if any: it stays with the episode's record, never in an alert or in Prefect.
    """

    code: str
    reason: str | None = None


#: How an :class:`Escalate` code reads in an alert's title, after the receiving program's name.
ESCALATION_TITLES = {
    "declined": "referral declined",
    "no-show": "first visit missed (no-show)",
    "failed": "referral failed at the receiver",
    "cancelled-by-receiver": "referral cancelled by the receiver",
    "authorization-denied": "insurance authorization denied",
}


@dataclass(frozen=True)
class LoopClosed:
    """Visit kept and outcome returned: the referral is complete."""


@dataclass(frozen=True)
class CancelSteps:
    """The handoff ended without closing the loop: cancel its open step deadlines."""

    reason: str


@dataclass(frozen=True)
class ConsentNeeded:
    """Nothing may be sent: give the coordinator a consent task for ``purpose`` (with its own deadline)."""

    purpose: str | None


@dataclass(frozen=True)
class Disclose:
    """The referral left under consent ``consent_id``: record the disclosure with its redisclosure notice."""

    consent_id: str


Effect = (
    StepMet
    | StartReengagement
    | Reengaged
    | StartFallback
    | Escalate
    | LoopClosed
    | CancelSteps
    | ConsentNeeded
    | Disclose
)

# -------------------------------------------------------------------------------------------------------- state


class HandoffState(BaseModel):
    """One handoff as the rules see it. ``status_reason`` is FHIR ``Task.statusReason`` (why draft, held, ended)."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: TaskStatus = "requested"
    business_status: BusinessStatus = "created"
    status_reason: str | None = None
    purpose: str | None = None
    consent_id: str | None = None
    held_from: TaskStatus | None = None
    appointment_at: datetime | None = None
    steps_met: tuple[str, ...] = ()
    outcome: str | None = None
    #: From the pathway (``HandoffPlan``): the re-engagement deadline after a no-show and the decline fallback.
    re_engage_within: timedelta | None = None
    fallback: str | None = None
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None

    @property
    def consent_needed(self) -> bool:
        return self.status == "draft" and self.status_reason == "consent-needed"

    @property
    def closed(self) -> bool:
        return self.status in _TERMINAL

    @property
    def bser_code(self) -> str:
        return BSER_CODES[self.business_status][0]


_TERMINAL = frozenset({"completed", "rejected", "cancelled", "failed"})
_PLAIN = {
    ("requested", "created"),
    ("received", "created"),
    ("accepted", "accepted"),
    ("rejected", "declined"),
    ("completed", "fulfillment-completed"),
    ("cancelled", "fulfillment-cancelled"),
}


def label(state: HandoffState) -> str:
    """How a person reads the state: ``requested``, ``consent needed``, ``accepted (event-scheduled)``."""
    if state.consent_needed:
        return "consent needed"
    if (state.status, state.business_status) in _PLAIN:
        return state.status
    return f"{state.status} ({state.business_status})"


def open_handoff(
    handoff_id: str,
    now: datetime,
    *,
    consent_id: str | None,
    purpose: str | None = None,
    re_engage_within: timedelta | None = None,
    fallback: str | None = None,
) -> tuple[HandoffState, list[Effect]]:
    """A new handoff: sent (``requested``) if a consent covers it, else a ``draft`` waiting for consent."""
    common = {
        "id": handoff_id,
        "purpose": purpose,
        "re_engage_within": re_engage_within,
        "fallback": fallback,
        "opened_at": now,
        "updated_at": now,
    }
    if consent_id is None:
        return HandoffState(status="draft", status_reason="consent-needed", **common), [ConsentNeeded(purpose)]
    return HandoffState(status="requested", consent_id=consent_id, **common), [Disclose(consent_id)]


# ---------------------------------------------------------------------------------------------------- the table

_Key = tuple[str, str]
DRAFT: _Key = ("draft", "created")
REQUESTED: _Key = ("requested", "created")
RECEIVED: _Key = ("received", "created")
ACCEPTED: _Key = ("accepted", "accepted")
SCHEDULED: _Key = ("accepted", "event-scheduled")
NO_SHOW: _Key = ("accepted", "no-show")
VISIT_CANCELLED: _Key = ("accepted", "event-cancelled")
KEPT: _Key = ("in-progress", "event-completed")
ON_HOLD: _Key = ("on-hold", "*")
CANCEL_REQUESTED: _Key = ("cancelled", "cancellation-requested")
_BOOKED = (ACCEPTED, SCHEDULED, NO_SHOW, VISIT_CANCELLED)
_ENGAGED = (RECEIVED, *_BOOKED, KEPT, ON_HOLD)


@dataclass(frozen=True)
class Move:
    """A legal move: ``action`` by one of ``parties`` from any of ``sources`` to ``target``.

    ``*`` keeps the current value (a business status while on hold; an on-hold's status on ``resume`` comes back
    from ``held_from``). ``needs`` names the detail the move requires.
    """

    action: str
    parties: tuple[Party, ...]
    sources: tuple[_Key, ...]
    target: _Key
    needs: str | None = None


_EITHER: tuple[Party, ...] = ("sender", "receiver")
MOVES: tuple[Move, ...] = (
    Move("send", ("sender",), (DRAFT,), REQUESTED, needs="consent_id"),
    Move("receive", ("receiver",), (REQUESTED,), RECEIVED),
    Move("accept", ("receiver",), (REQUESTED, RECEIVED), ACCEPTED),
    Move("decline", ("receiver",), (REQUESTED, RECEIVED), ("rejected", "declined"), needs="reason"),
    Move("schedule", ("receiver",), _BOOKED, SCHEDULED, needs="appointment_at"),
    # An accepted admission ("come in today") is the appointment itself, so a no-show needs no explicit schedule.
    Move("no-show", ("receiver",), (ACCEPTED, SCHEDULED), NO_SHOW),
    Move("cancel-visit", ("receiver",), (SCHEDULED,), VISIT_CANCELLED),
    Move("keep", ("receiver",), (ACCEPTED, SCHEDULED, NO_SHOW), KEPT),
    Move("return-outcome", ("receiver",), (KEPT,), ("completed", "fulfillment-completed")),
    Move("hold", ("receiver",), (RECEIVED, *_BOOKED, KEPT), ("on-hold", "*"), needs="reason"),
    Move("resume", ("receiver",), (ON_HOLD,), ("*", "*")),
    Move("fail", ("receiver",), (*_BOOKED, KEPT, ON_HOLD), ("failed", "*"), needs="reason"),
    Move("cancel", ("sender",), (DRAFT, REQUESTED), ("cancelled", "fulfillment-cancelled"), needs="reason"),
    Move("cancel", ("sender",), _ENGAGED, CANCEL_REQUESTED, needs="reason"),
    Move("cancel", ("receiver",), (REQUESTED, *_ENGAGED), ("cancelled", "fulfillment-cancelled"), needs="reason"),
    # The receiver acknowledges a sender's cancellation request.
    Move("cancel", ("receiver",), (CANCEL_REQUESTED,), ("cancelled", "fulfillment-cancelled")),
)


def _matches(key: _Key, state: HandoffState) -> bool:
    status, business = key
    return status == state.status and business in ("*", state.business_status)


def legal_moves(state: HandoffState) -> list[tuple[str, tuple[Party, ...]]]:
    """The moves possible now and who may make each (merged over table rows), in table order."""
    out: dict[str, list[Party]] = {}
    for m in MOVES:
        if any(_matches(s, state) for s in m.sources):
            parties = out.setdefault(m.action, [])
            parties.extend(p for p in m.parties if p not in parties)
    return [(action, tuple(parties)) for action, parties in out.items()]


def _who(parties: Iterable[Party]) -> str:
    ps = set(parties)
    return "either party" if ps == {"sender", "receiver"} else f"the {next(iter(ps))}"


def _now_text(state: HandoffState) -> str:
    moves = legal_moves(state)
    if not moves:
        return "no moves are left"
    parts = [f"{a} ({'either' if set(p) == {'sender', 'receiver'} else p[0]})" for a, p in moves]
    return "moves now: " + ", ".join(parts)


# ----------------------------------------------------------------------------------------------------- move


def move(
    state: HandoffState,
    action: str,
    party: str,
    now: datetime,
    *,
    reason: str | None = None,
    appointment_at: datetime | None = None,
    consent_id: str | None = None,
    outcome: str | None = None,
) -> tuple[HandoffState, list[Effect]]:
    """Apply ``action`` by ``party`` at ``now``; return the new state and what the pathway machinery must do.

    Raises :class:`EventRejected` (one line; ``state`` is unchanged) for an unknown action or party, a move not
    legal from the current state, a move by the other party, or a missing reason / appointment time / consent.
    """
    where = f"handoff {state.id} is '{label(state)}'"
    if action not in ACTIONS:
        raise EventRejected(f"'{action}' is not a handoff move (moves: {', '.join(ACTIONS)})")
    if party not in get_args(Party):
        raise EventRejected(f"'{party}' is not a party to a handoff (sender or receiver)")
    rows = [m for m in MOVES if m.action == action and any(_matches(s, state) for s in m.sources)]
    if not rows:
        raise EventRejected(f"{where}; '{action}' is not possible now ({_now_text(state)})")
    row = next((m for m in rows if party in m.parties), None)
    if row is None:
        allowed = {p for m in rows for p in m.parties}
        raise EventRejected(f"{where}; only {_who(allowed)} may '{action}' it (you are the {party})")
    details = {"reason": reason, "appointment_at": appointment_at, "consent_id": consent_id}
    if row.needs is not None and (details[row.needs] is None or details[row.needs] == ""):
        what = {"reason": "a reason", "appointment_at": "an appointment time", "consent_id": "a covering consent"}
        raise EventRejected(f"handoff {state.id}: '{action}' needs {what[row.needs]}")
    return _apply(
        state, row, party, now, reason=reason, appointment_at=appointment_at, consent_id=consent_id, outcome=outcome
    )


def _apply(
    state: HandoffState,
    row: Move,
    party: str,
    now: datetime,
    *,
    reason: str | None,
    appointment_at: datetime | None,
    consent_id: str | None,
    outcome: str | None,
) -> tuple[HandoffState, list[Effect]]:
    status, business = row.target
    if status == "*":
        status = state.held_from or "accepted"
    if business == "*":
        business = state.business_status
    changes: dict[str, object] = {"status": status, "business_status": business, "updated_at": now}
    effects: list[Effect] = []
    met: list[str] = []
    action, was = row.action, state.business_status

    if action == "send":
        changes |= {"consent_id": consent_id, "status_reason": None}
        effects.append(Disclose(str(consent_id)))
    elif action == "accept":
        met.append("accepted")
    elif action == "decline":
        changes["status_reason"] = reason
        effects += [
            CancelSteps(f"declined: {reason}"),
            StartFallback(state.fallback),
            Escalate("declined", reason),
        ]
    elif action == "schedule":
        changes["appointment_at"] = appointment_at
        met.append("scheduled")
        if was == "no-show":
            effects.append(Reengaged())
    elif action == "no-show":
        due = now + state.re_engage_within if state.re_engage_within is not None else None
        effects += [
            StartReengagement(state.re_engage_within, due),
            Escalate("no-show"),
        ]
    elif action == "keep":
        met.append("visit-kept")
        if was == "no-show":
            effects.append(Reengaged())
    elif action == "return-outcome":
        changes["outcome"] = outcome
        met.append("outcome-returned")
    elif action == "hold":
        changes |= {"held_from": state.status, "status_reason": reason}
    elif action == "resume":
        changes |= {"held_from": None, "status_reason": None}
    elif action == "fail":
        changes["status_reason"] = reason
        effects += [CancelSteps(f"failed: {reason}"), Escalate("failed", reason)]
    elif action == "cancel" and state.status != "cancelled":
        changes["status_reason"] = reason
        effects.append(CancelSteps(f"cancelled by the {party}: {reason}"))
        if party == "receiver":
            effects.append(Escalate("cancelled-by-receiver", reason))

    new_steps = [s for s in met if s not in state.steps_met]
    changes["steps_met"] = state.steps_met + tuple(new_steps)
    effects = [StepMet(s) for s in new_steps] + effects
    if action == "return-outcome":
        effects.append(LoopClosed())
    if status in _TERMINAL and state.closed_at is None:
        changes["closed_at"] = now
    return state.model_copy(update=changes), effects


# --------------------------------------------------------------------------------------- insurance authorization

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


def open_authorization(auth_id: str, now: datetime, within: timedelta) -> AuthorizationState:
    """An authorization requested at ``now``, decided by ``now + within``."""
    return AuthorizationState(id=auth_id, requested_at=now, due_at=now + within)


def authorization_move(
    state: AuthorizationState,
    action: str,
    now: datetime,
    *,
    reason: str | None = None,
    within: timedelta | None = None,
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
            update={"status": target, "requested_at": now, "due_at": now + within, "decided_at": None, "reason": None}
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
