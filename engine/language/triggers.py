"""What triggers a move: an event (one or several), or what did not happen (a stay too long, a missed deadline, a
handoff that ended badly). Kept apart from :mod:`engine.language.model`, which re-exports it, so the transition
stays readable; :class:`engine.language.model.TransitionSpec` adds where the move goes and what it schedules.

A move on what did not happen is run by the deadline machinery: entering its stage arms a timer (a work item with
one rung), and the rung moves the episode instead of escalating, so it survives restarts like every deadline.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.language.fields import Duration, EventName, Spec

__all__ = ["HandoffEnd", "TriggerSpec"]

#: How a handoff can end badly, as a move's ``on_handoff`` names it.
HandoffEnd = Literal["declined", "no-show", "failed"]


class TriggerSpec(Spec):
    """The trigger of a move: exactly one of ``event``, ``after``, ``on_missed``, ``on_handoff``."""

    event: EventName | list[EventName] | None = Field(
        None,
        description="Event that triggers the move, or a list of events any of which does. A move says exactly "
        "one of event, after, on_missed, on_handoff.",
        examples=["detox.completed", ["relapse.reported", "ed.returned"]],
    )
    after: Duration | None = Field(
        None, description="Move when the person is still in the stage this long after entering it.", examples=["72h"]
    )
    on_missed: str | None = Field(
        None,
        description="Move when this deadline passes unmet: an entry task id of the stage, or a step kind of the "
        "handoff that brought the person there.",
        examples=["accepted", "bridge-visit"],
    )
    on_handoff: HandoffEnd | list[HandoffEnd] | None = Field(
        None,
        description="Move when the handoff that brought the person into the stage ends so.",
        examples=[["declined", "no-show"]],
    )

    @property
    def events(self) -> tuple[str, ...]:
        """The events that trigger this move (one or several; none for a move on what did not happen)."""
        if self.event is None:
            return ()
        return (self.event,) if isinstance(self.event, str) else tuple(self.event)

    @property
    def handoff_ends(self) -> tuple[str, ...]:
        if self.on_handoff is None:
            return ()
        return (self.on_handoff,) if isinstance(self.on_handoff, str) else tuple(self.on_handoff)

    @model_validator(mode="after")
    def _one_trigger(self) -> TriggerSpec:
        given = [k for k in ("event", "after", "on_missed", "on_handoff") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a move needs exactly one of event, after, on_missed, on_handoff")
        return self
