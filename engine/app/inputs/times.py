"""Times and dates people type: ISO 8601 read as UTC (no offset: UTC), and the window around now each kind of time
must fall in (:class:`Window`), so a typo of a year is refused rather than scheduled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from engine.clock import utc
from engine.errors import InvalidInput

__all__ = [
    "APPOINTMENT",
    "ENROLLMENT",
    "OCCURRED",
    "SIGNED",
    "Window",
    "check_time",
    "parse_date",
    "parse_time",
    "span",
]


@dataclass(frozen=True)
class Window:
    """Times ``what`` may be: from ``back`` before now to ``ahead`` after it."""

    what: str
    back: timedelta
    ahead: timedelta


ENROLLMENT = Window("enrollment time", back=timedelta(days=366), ahead=timedelta(days=1))
APPOINTMENT = Window("appointment time", back=timedelta(days=30), ahead=timedelta(days=366))
#: When an event happened (``occurred_at``, on any event): never ahead of now, when it is recorded.
OCCURRED = Window("occurred_at", back=timedelta(days=366), ahead=timedelta(0))
#: A date: the latest is today in the easternmost time zone (UTC+14), so nobody's today is refused.
SIGNED = Window("signed-on date", back=timedelta(days=3_653), ahead=timedelta(hours=14))


def parse_time(what: str, value: object) -> datetime:
    """An ISO 8601 time as aware UTC (no offset: UTC); never an OverflowError."""
    example = "is not an ISO 8601 time (e.g. 2026-12-01T09:00, UTC unless an offset is given)"
    try:
        if isinstance(value, datetime):
            return utc(value)
        if isinstance(value, str) and len(value) <= 64:
            return utc(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):
        pass
    raise InvalidInput(what, example, value if isinstance(value, str) else type(value).__name__)


def check_time(window: Window, value: object, now: datetime) -> datetime:
    """``value`` (ISO text or a datetime) as UTC, if it falls in ``window`` around ``now``."""
    at = parse_time(window.what, value)
    earliest, latest = now - window.back, now + window.ahead
    if not earliest <= at <= latest:
        how = f"more than {span(window.back)} ago" if at < earliest else f"more than {span(window.ahead)} ahead"
        raise InvalidInput(
            window.what,
            f"is {how}: it must be from {span(window.back)} before to {span(window.ahead)} after now ({_minutes(now)})",
            _minutes(at),
        )
    return at


def _minutes(at: datetime) -> str:
    return at.isoformat(timespec="minutes").replace("+00:00", " UTC")


def parse_date(what: str, value: object) -> date:
    """A ``YYYY-MM-DD`` date (a ``date`` passes as it is)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value) <= 32:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInput(what, "is not a date (YYYY-MM-DD)", value if isinstance(value, str) else type(value).__name__)


def span(delta: timedelta) -> str:
    if delta >= timedelta(days=730):
        return f"{delta.days // 365} years"
    if delta >= timedelta(days=1):
        return f"{delta.days} day{'s' if delta.days > 1 else ''}"
    return f"{delta // timedelta(hours=1)} hours"
