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

:func:`move` returns the new state and the :data:`~engine.episode.domain.effects.Effect` list the pathway machinery
must act on; an illegal move, a move by the wrong party or a missing detail raises
:class:`~engine.errors.EventRejected` and changes nothing. Which move meets which step of the pathway is the step
table's (:data:`engine.language.builtins.HANDOFF_STEPS`); the statuses, codes, parties and moves are named in
:mod:`.handoff_terms`; insurance authorization is :mod:`.authorization`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from engine.episode.domain.effects import (
    CancelSteps,
    ConsentNeeded,
    Disclose,
    Effect,
    Escalate,
    LoopClosed,
    Reengaged,
    StartFallback,
    StartReengagement,
    StepMet,
)
from engine.episode.domain.handoff_terms import ACTIONS, BSER_CODES, PARTIES, BusinessStatus, Party, TaskStatus
from engine.errors import EventRejected
from engine.language.builtins import STEPS_BY_MOVE

__all__ = [
    "MOVES",
    "HandoffState",
    "Move",
    "label",
    "legal_moves",
    "move",
    "open_handoff",
]

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
    if party not in PARTIES:
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
    action, was = row.action, state.business_status
    step = STEPS_BY_MOVE.get(action)
    met = [step.kind] if step is not None else []

    if action == "send":
        changes |= {"consent_id": consent_id, "status_reason": None}
        effects.append(Disclose(str(consent_id)))
    elif action == "decline":
        changes["status_reason"] = reason
        effects += [
            CancelSteps(f"declined: {reason}"),
            StartFallback(state.fallback),
            Escalate("declined", reason),
        ]
    elif action == "schedule":
        changes["appointment_at"] = appointment_at
        if was == "no-show":
            effects.append(Reengaged())
    elif action == "no-show":
        due = now + state.re_engage_within if state.re_engage_within is not None else None
        effects += [
            StartReengagement(state.re_engage_within, due),
            Escalate("no-show"),
        ]
    elif action == "keep" and was == "no-show":
        effects.append(Reengaged())
    elif action == "return-outcome":
        changes["outcome"] = outcome
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
