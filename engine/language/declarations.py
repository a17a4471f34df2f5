"""What a pathway declares before it uses it: the roles work goes to, the parameters set per episode, the facts
guards test and the events that happen to a person (part of :mod:`engine.language.model`, re-exported there)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.language.fields import Duration, FactName, Spec

__all__ = ["EventSpec", "FactSpec", "ParameterSpec", "PayloadFieldSpec", "RoleSpec"]


class RoleSpec(Spec):
    """A role that work is assigned or escalated to; a roster maps roles to people outside the pathway."""

    title: str = Field(description="Human title of the role.", examples=["Care coordinator"])
    description: str | None = Field(None, description="What this role does in the pathway.")


class ParameterSpec(Spec):
    """A duration a program may set per episode at enrollment (e.g. the reentry pre-release window)."""

    description: str = Field(description="What the parameter controls.")
    default: Duration = Field(description="Value used when enrollment does not set one.", examples=["30d"])
    min: Duration | None = Field(None, description="Smallest value allowed at enrollment.", examples=["1d"])
    max: Duration | None = Field(None, description="Largest value allowed at enrollment.", examples=["90d"])


class FactSpec(Spec):
    """A fact about an episode that guards may test; events set it through a payload field of the same name."""

    type: Literal["boolean", "string", "number", "date", "enum"] = Field(
        description="Kind of value.", examples=["enum"]
    )
    values: list[str] | None = Field(
        None, description="Allowed values when type is enum.", examples=[["commercial", "medicaid"]]
    )
    description: str | None = Field(None, description="What the fact means.")
    min: float | None = Field(None, description="Smallest value of a number; a smaller one is refused on input.")
    max: float | None = Field(None, description="Largest value of a number; a larger one is refused.", examples=[7])


class PayloadFieldSpec(Spec):
    """One field an event carries. A field named like a declared fact updates that fact."""

    type: Literal["boolean", "string", "number", "date", "enum"] = Field(
        description="Kind of value.", examples=["string"]
    )
    values: list[str] | None = Field(None, description="Allowed values when type is enum.")
    required: bool = Field(True, description="Whether every event must carry this field.")
    description: str | None = Field(None, description="What the field means.")
    min: float | None = Field(None, description="Smallest value of a number; a smaller one is refused on input.")
    max: float | None = Field(None, description="Largest value of a number; a larger one is refused.", examples=[7])


class EventSpec(Spec):
    """Something that happens to a person that the pathway reacts to (``detox.completed``)."""

    description: str = Field(description="When this event is recorded.", examples=["Detox unit discharges"])
    payload: dict[FactName, PayloadFieldSpec] = Field(
        default_factory=dict, description="Fields the event carries, by name."
    )
    record_anywhere: bool = Field(
        False,
        description="Accepted in every stage: where it triggers no move and meets no work it is still logged and "
        "sets its facts (an ED return recorded while at the bridge clinic).",
    )
