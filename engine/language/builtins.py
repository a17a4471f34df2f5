"""What every pathway understands without declaring it: the handoff step kinds and the built-in events.

Each is a table written once here; everything else is derived from it: the model's ``kind`` type and its JSON
Schema enum, the plan's step titles, which receiver's move meets a step (:mod:`engine.episode.domain.handoff`,
:mod:`engine.episode.referrals`), the events ``carepath validate`` accepts undeclared, the events a deployment
offers, the CLI help and the README's list (``tests/test_builtins.py`` holds them to it). A new step kind is one
row of :data:`HANDOFF_STEPS`; a new built-in event is one entry of :data:`BUILTIN_EVENTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

__all__ = [
    "AUTHORIZATION_EVENTS",
    "BUILTIN_EVENTS",
    "HANDOFF_STEPS",
    "STEPS_BY_KIND",
    "STEPS_BY_MOVE",
    "STEP_KINDS",
    "BuiltinField",
    "HandoffStep",
    "HandoffStepKind",
]


@dataclass(frozen=True)
class HandoffStep:
    """A milestone of a closed-loop handoff, after the BSeR/360X business statuses.

    ``kind`` is what a pathway writes (``steps: [{kind: accepted, ...}]``); ``title`` is how the plan names the
    step's work after the receiving program (``Main Street Clinic: referral accepted``); ``move`` is the receiver's
    lifecycle move that meets it, which the built-in :attr:`event` says the short way.
    """

    kind: str
    title: str
    move: str

    @property
    def event(self) -> str:
        """The built-in event that meets the step: ``handoff.<kind>``."""
        return f"handoff.{self.kind}"


#: The handoff step kinds, in the order a referral reaches them.
HANDOFF_STEPS: tuple[HandoffStep, ...] = (
    HandoffStep("accepted", "referral accepted", "accept"),
    HandoffStep("scheduled", "first visit scheduled", "schedule"),
    HandoffStep("visit-kept", "first visit kept", "keep"),
    HandoffStep("outcome-returned", "outcome returned", "return-outcome"),
)
STEP_KINDS: tuple[str, ...] = tuple(step.kind for step in HANDOFF_STEPS)
STEPS_BY_KIND: dict[str, HandoffStep] = {step.kind: step for step in HANDOFF_STEPS}
#: The step each receiver's move meets (``keep`` -> ``visit-kept``); a move not listed meets none.
STEPS_BY_MOVE: dict[str, HandoffStep] = {step.move: step for step in HANDOFF_STEPS}
if TYPE_CHECKING:  # a type checker cannot read a Literal built from a table; to it a kind is text
    HandoffStepKind = str
else:
    #: The step kinds as a type: pydantic checks a pathway's ``kind`` against it, the JSON Schema lists them.
    HandoffStepKind = Literal[STEP_KINDS]


class BuiltinField(NamedTuple):
    """A payload field of a built-in event: its type and whether every such event must carry it."""

    type: str
    required: bool = False


_TEXT = BuiltinField("string")
_NEEDED = BuiltinField("string", required=True)

#: The authorization decisions: each built-in event and the move of
#: :mod:`engine.episode.domain.authorization` it records.
AUTHORIZATION_EVENTS: dict[str, str] = {
    "authorization.requested": "request",
    "authorization.approved": "approve",
    "authorization.denied": "deny",
}

#: Events every pathway understands without declaring them, with their payload fields. ``handoff`` names the
#: handoff (optional while only one is open); ``to`` the stage an authorization admits to (optional while only one
#: is open; names the move when requesting before it); ``need`` a social need.
BUILTIN_EVENTS: dict[str, dict[str, BuiltinField]] = {
    **{step.event: {"handoff": _TEXT} for step in HANDOFF_STEPS},
    **{
        name: {"handoff": _TEXT, "to": _TEXT, **({"reason": _NEEDED} if move == "deny" else {})}
        for name, move in AUTHORIZATION_EVENTS.items()
    },
    "handoff.move": {
        "action": _TEXT,
        "party": _TEXT,
        "reason": _TEXT,
        "appointment_at": _TEXT,
        "outcome": _TEXT,
        "handoff": _TEXT,
    },
    "consent.recorded": {"consent": _TEXT},
    "consent.revoked": {"consent": _TEXT},
    "medications.reconciled": {},
    "medications.sending-list": {"medications": BuiltinField("list")},
    "medications.receiving-list": {"medications": BuiltinField("list")},
    "need.identified": {"need": _NEEDED},
    "referral.made": {"need": _NEEDED},
    "referral.declined": {"need": _NEEDED},
}
