"""Moments a deadline or a time guard counts from: when an event happened, or a date/time fact.

An event's moment is its ``occurred_at`` (any event may carry one, e.g. a discharge recorded the next morning),
else when it was applied; the episode keeps the latest per event name. A date fact (``2026-03-01``) is midnight
UTC of that day; a time without a zone is read as UTC. Pure: the caller passes the times and facts it knows.
The YAML forms that name a moment (``from``, the ``since`` guard) are defined here; the model re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import Field, model_validator

from engine.language.fields import Duration, EventName, FactName, Spec

__all__ = ["OCCURRED_AT", "Anchor", "FactRef", "SinceGuard", "anchor_name", "moment", "parse_moment"]


class FactRef(Spec):
    """A date or time fact named as a moment: ``{ fact: last_methadone_dose }``."""

    fact: FactName = Field(description="Declared fact of type date.", examples=["last_methadone_dose"])


Anchor = Annotated[
    EventName | FactRef,
    Field(
        description="A moment: an event's name (when it last happened: its occurred_at, else when recorded) "
        "or { fact: NAME } (a date fact).",
        examples=["ed.discharged", {"fact": "last_methadone_dose"}],
    ),
]


class SinceGuard(Spec):
    """True when the time since a moment is at least (and/or at most) a duration: ``24h since the last dose``.

    False while the moment has not happened; a refused move says when it becomes possible.
    """

    since: Anchor
    at_least: Duration | None = Field(None, description="Shortest time since the moment.", examples=["24h"])
    at_most: Duration | None = Field(None, description="Longest time since the moment.", examples=["7d"])

    @model_validator(mode="after")
    def _a_bound(self) -> SinceGuard:
        if self.at_least is None and self.at_most is None:
            raise ValueError("a time test needs at_least or at_most")
        return self


#: The payload field any event may carry to say when it happened (ISO 8601); never declared.
OCCURRED_AT = "occurred_at"


def parse_moment(value: Any) -> datetime | None:
    """A date or ISO 8601 time as an aware datetime; None when it is neither."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_moment(datetime.fromisoformat(value))
    except ValueError:
        return None


def moment(anchor: Anchor, facts: Mapping[str, Any], times: Mapping[str, datetime]) -> datetime | None:
    """When ``anchor`` happened for an episode, or None if it has not (yet)."""
    if isinstance(anchor, FactRef):
        return parse_moment(facts.get(anchor.fact))
    return times.get(anchor)


def anchor_name(anchor: Anchor) -> str:
    """The anchor as people read it: the event's name or the fact's."""
    return anchor.fact if isinstance(anchor, FactRef) else anchor
