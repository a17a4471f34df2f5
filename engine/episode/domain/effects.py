"""What a handoff or authorization move asks of the pathway machinery, returned as data.

The standards' rules (:mod:`.handoff`, :mod:`.authorization`) decide; they never touch an episode's work. Each move
returns a list of these effects, and :mod:`engine.episode.referrals` and :mod:`engine.episode.authorizations` act
on them (close a deadline, open re-engagement, escalate, record a disclosure). Both rule modules return the same
kinds (a met step, an escalation), so the effects live apart from either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "ESCALATION_TITLES",
    "CancelSteps",
    "ConsentNeeded",
    "Disclose",
    "Effect",
    "Escalate",
    "LoopClosed",
    "Reengaged",
    "StartFallback",
    "StartReengagement",
    "StepMet",
]


@dataclass(frozen=True)
class StepMet:
    """A step of the pathway is met: a handoff step's kind (:data:`engine.language.builtins.HANDOFF_STEPS`), or
    ``authorization`` when an insurance authorization is approved."""

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
