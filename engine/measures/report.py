"""What a measures run returns: the period, the definitions, and one result per measure x subject x stratum.

Plain frozen values with stable field names: the renders (:mod:`.render`, :mod:`.html`) and the CLI read them,
and the JSON render writes exactly these keys. Nothing in a report names a person or an episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from engine.errors import CarepathError

__all__ = [
    "ALL",
    "Definition",
    "MeasureError",
    "MeasureReport",
    "Period",
    "Result",
    "Stratum",
    "Unit",
]

#: The stratum of the whole cohort (every report has it, stratified or not).
ALL = "all"

#: How a result's ``value`` reads: a share of the denominator, a median or 90th percentile (hours or days), a
#: count per 100 episodes.
Unit = Literal["rate", "median-hours", "median-days", "p90-hours", "per-100-episodes"]


class MeasureError(CarepathError):
    """Measures cannot be computed as asked: a stratifying fact no pathway declares, a history without its plan."""


@dataclass(frozen=True)
class Period:
    """Which episodes and events count: those whose index date (the UTC date of the moment each measure counts
    from: a discharge, a release, a handoff's opening...) is in ``[start, end]``; ``None`` leaves that side open."""

    start: date | None = None
    end: date | None = None

    def __contains__(self, at: datetime) -> bool:
        if self.start is None and self.end is None:
            return True
        day = at.date()
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class Definition:
    """A measure as written next to its code: what is counted, out of what, what is left out, after whom."""

    id: str
    family: str
    title: str
    unit: Unit
    numerator: str
    denominator: str
    exclusions: str
    source: str
    adaptation: str


@dataclass(frozen=True)
class Result:
    """One cell of the report. ``subject`` narrows a measure (a receiving program, a stage, a rung; ``""``: none).

    ``numerator``/``denominator``/``value`` are ``None`` when ``suppressed`` (fewer than the report's ``min_cell``
    people behind the cell or behind what it would reveal) or, for ``value``, when the denominator is 0.
    """

    measure: str
    subject: str
    stratum: str
    unit: Unit
    numerator: int | None
    denominator: int | None
    value: float | None
    suppressed: bool


@dataclass(frozen=True)
class Stratum:
    """A group of episodes sharing the stratifying fact's value (``ALL``: every episode); ``episodes`` is ``None``
    when the group is suppressed."""

    value: str
    episodes: int | None
    suppressed: bool


@dataclass(frozen=True)
class MeasureReport:
    """Every measure on a cohort: results in definition order, then subject, then stratum (``ALL`` first)."""

    period: Period | None
    stratify: str | None
    as_of: datetime | None
    min_cell: int
    pathways: tuple[str, ...]
    strata: tuple[Stratum, ...]
    definitions: tuple[Definition, ...]
    results: tuple[Result, ...]

    def definition(self, measure: str) -> Definition:
        return next(d for d in self.definitions if d.id == measure)

    def result(self, measure: str, subject: str = "", stratum: str = ALL) -> Result:
        """The one result of ``measure`` for ``subject`` in ``stratum`` (KeyError if there is none)."""
        for r in self.results:
            if (r.measure, r.subject, r.stratum) == (measure, subject, stratum):
                return r
        raise KeyError((measure, subject, stratum))
