"""Calendar months next to fixed durations: ``1mo`` is not a number of days, so it cannot be a ``timedelta``.

A :data:`Span` is either a plain ``timedelta`` (everything written in ``m``/``h``/``d``/``w``) or a
:class:`MonthSpan`: whole calendar months plus a fixed part (the fixed part appears only when a plan adds a rung's
``after`` to a monthly deadline). Month-free values stay plain ``timedelta`` so nothing that never sees a month
changes. :func:`add` is the one place a span is applied to a moment: months first (keeping the day of the month,
clamped to the month's last day, at the same UTC time of day), then the fixed part.

Spans with months have no exact length; checks compare them through :func:`bounds` (a month is 28 to 31 days) and
sorting uses :func:`nominal` (a mean month). Pure; no clock.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = [
    "MEAN_MONTH",
    "MonthSpan",
    "Span",
    "Written",
    "add",
    "bounds",
    "chain",
    "exceeds",
    "months",
    "nominal",
    "written",
]

#: A Gregorian month on average (365.2425 / 12 days): only to sort spans, never to schedule.
MEAN_MONTH = timedelta(days=365.2425 / 12)
_SHORTEST, _LONGEST = timedelta(days=28), timedelta(days=31)


@dataclass(frozen=True)
class MonthSpan:
    """``months`` calendar months, then ``fixed`` more; ``months`` is never 0 (that is a plain ``timedelta``)."""

    months: int
    fixed: timedelta = timedelta(0)
    #: how the designer wrote it (``1mo``, ``P1M``); kept out of equality
    written: str = field(default="", compare=False, repr=False)

    def __add__(self, other: Span) -> Span:
        if isinstance(other, MonthSpan):
            return months(self.months + other.months, self.fixed + other.fixed)
        if isinstance(other, timedelta):
            return months(self.months, self.fixed + other)
        return NotImplemented

    def __radd__(self, other: timedelta) -> Span:
        return self + other

    def __neg__(self) -> MonthSpan:
        return MonthSpan(-self.months, -self.fixed)

    def __sub__(self, other: Span) -> Span:
        return self + (-other)

    def __rsub__(self, other: timedelta) -> Span:
        return -self + other

    def __mul__(self, k: int) -> Span:
        return months(self.months * k, self.fixed * k)

    __rmul__ = __mul__

    # An order for sorting only (a mean month); checks use bounds() and say when months make them ambiguous.
    def __lt__(self, other: Span) -> bool:
        return nominal(self) < nominal(other)

    def __le__(self, other: Span) -> bool:
        return nominal(self) <= nominal(other)

    def __gt__(self, other: Span) -> bool:
        return nominal(self) > nominal(other)

    def __ge__(self, other: Span) -> bool:
        return nominal(self) >= nominal(other)


Span = timedelta | MonthSpan


class Written(timedelta):
    """A ``timedelta`` that remembers how the designer wrote it (``2w``), so a message can quote their own text.

    Equal to, and hashed as, the plain value; arithmetic gives plain ``timedelta``s.
    """

    written: str = ""


def written(span: Span, text: str) -> Span:
    """``span`` remembering ``text`` as the designer's spelling."""
    if isinstance(span, MonthSpan):
        return MonthSpan(span.months, span.fixed, text)
    out = Written(span.days, span.seconds, span.microseconds)
    out.written = text
    return out


def exceeds(a: Span, b: Span, *, or_equal: bool = False) -> Literal["always", "sometimes", "never"]:
    """Whether ``a`` > ``b`` (``>=`` with ``or_equal``) whatever the months' lengths, only in some months, or never."""
    low, high = bounds(a - b)
    zero = timedelta(0)
    if low > zero or (or_equal and low >= zero):
        return "always"
    return "sometimes" if high > zero or (or_equal and high >= zero) else "never"


def months(n: int, fixed: timedelta = timedelta(0)) -> Span:
    """``n`` months plus ``fixed``, as a plain ``timedelta`` when ``n`` is 0."""
    return MonthSpan(n, fixed) if n else fixed


def bounds(span: Span) -> tuple[timedelta, timedelta]:
    """The shortest and the longest the span can be (a month is 28 to 31 days); equal for a ``timedelta``."""
    if isinstance(span, timedelta):
        return span, span
    low, high = span.months * _SHORTEST, span.months * _LONGEST
    return min(low, high) + span.fixed, max(low, high) + span.fixed


def nominal(span: Span) -> timedelta:
    """A single length for sorting (mean months)."""
    return span if isinstance(span, timedelta) else span.months * MEAN_MONTH + span.fixed


def chain(at: datetime, spans: Iterable[Span | None]) -> datetime:
    """``at`` with each span added in turn (``None`` skipped): Jan 21 + 10d + 1mo is Feb 28, not Mar 3."""
    for span in spans:
        at = at if span is None else add(at, span)
    return at


def add(at: datetime, span: Span) -> datetime:
    """``at`` + ``span``: months keep the day of the month, clamped to the month's last day (Jan 31 + 1mo = Feb 28,
    or 29 in a leap year), at the same UTC time of day; then the fixed part. An aware ``at`` is taken in UTC.
    """
    if isinstance(span, timedelta):
        return at + span
    utc = at.astimezone(UTC) if at.tzinfo is not None else at
    index = utc.year * 12 + utc.month - 1 + span.months
    year, month = divmod(index, 12)
    day = min(utc.day, calendar.monthrange(year, month + 1)[1])
    return utc.replace(year=year, month=month + 1, day=day) + span.fixed
