"""Specs for work that reaches past one stage: how long work lasts, and the medication changes a move plans.

Kept apart from :mod:`engine.language.model` (which uses them) so that module stays one screenful per part.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.language.fields import Spec

__all__ = ["LASTS_DESCRIPTION", "Lasts", "MedicationChangeSpec"]

#: ``stage``: leaving the stage cancels it (version 1's rule); ``episode``: it runs until met, closed or cancelled,
#: or the episode ends, wherever the person has moved on to.
Lasts = Literal["stage", "episode"]
LASTS_DESCRIPTION = (
    "How long the work is followed: 'stage' (default) ends it when the person leaves the stage; 'episode' keeps it "
    "until it is met, closed or cancelled, or the episode ends, even after the person has moved on."
)


class MedicationChangeSpec(Spec):
    """A switch a move intends: reconciliation records the matching discrepancies as intentional, with ``reason``.

    A ``stop`` is intentional only when its ``start`` (if named) is on the receiving list: stopping methadone
    without the buprenorphine that replaces it is still a dropped MOUD.
    """

    stop: str | None = Field(
        None, description="Medication (as declared in medications) stopped at this move.", examples=["methadone"]
    )
    start: str | None = Field(
        None, description="Medication (as declared in medications) started at this move.", examples=["buprenorphine"]
    )
    reason: str = Field(
        min_length=1,
        description="Why: recorded on the discrepancy it documents.",
        examples=["OTP to office-based step-down"],
    )

    @model_validator(mode="after")
    def _stop_or_start(self) -> MedicationChangeSpec:
        if self.stop is None and self.start is None:
            raise ValueError("a medication change needs stop, start or both")
        return self
