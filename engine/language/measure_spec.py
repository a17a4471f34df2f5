"""The ``measures:`` key: which of a pathway's own events the quality measures read as what.

Events differ per pathway (one calls a kept visit ``contact.made``, another ``therapy.attended``), so the
measures (:mod:`engine.measures`) cannot know them; the designer says it here once. Every name must be a declared
or built-in event (:mod:`engine.language.semantics.references` checks it, with "did you mean"). Part of
:mod:`engine.language.model`, re-exported there.
"""

from __future__ import annotations

from pydantic import Field

from engine.language.fields import EventName, Spec

__all__ = ["MeasuresSpec"]


class MeasuresSpec(Spec):
    """What the quality measures count: the index event, kept visits, release, contacts and MOUD evidence."""

    start: EventName | None = Field(
        None,
        description="Index event of initiation and engagement (its first occurrence); omitted: enrollment.",
        examples=["assessment.completed"],
    )
    visits: list[EventName] = Field(
        default_factory=list,
        description="Events that count as a kept treatment visit (a handoff's visit-kept step always does).",
        examples=[["contact.made", "medication-management.visit-kept"]],
    )
    release: EventName | None = Field(
        None,
        description="Release from custody: the reentry measures apply only when it is set.",
        examples=["custody.released"],
    )
    contacts: list[EventName] = Field(
        default_factory=list,
        description="Events that count as a contact after release (a kept visit is one too).",
        examples=[["contact.made", "peer.contacted"]],
    )
    moud_fills: list[EventName] = Field(
        default_factory=list,
        description="Events that record MOUD dispensed or given (a prescription filled, an OTP dose).",
        examples=[["prescription.filled"]],
    )
    moud_events: list[EventName] = Field(
        default_factory=list,
        description="Other events that show the person is on MOUD (started, confirmed); medication lists holding "
        "a critical medication of class MOUD count as well.",
        examples=[["moud.started", "continuity.confirmed"]],
    )
