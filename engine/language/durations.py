"""Durations as program designers write them: ``30m``, ``36h``, ``3d``, ``2w``, calendar months ``1mo``, or ISO
8601 ``P3D``/``PT36H``/``P1M``.

Pure parsing and formatting; no clock. :func:`parse_span` reads a pathway's durations (a ``timedelta``, or a
:class:`engine.language.spans.MonthSpan` for months); :func:`parse_duration` reads fixed durations only (an
episode's parameter values). A bare identifier in a duration field names a pathway parameter (see
:class:`engine.language.fields.ParamRef`), resolved when a plan is compiled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from engine.language.spans import MonthSpan, Span

__all__ = [
    "DURATION_OR_PARAM_PATTERN",
    "DURATION_PATTERN",
    "MAX_DURATION",
    "format_duration",
    "months_problem",
    "parse_duration",
    "parse_span",
    "said",
    "show_duration",
]

_SHORT = re.compile(r"^(?P<n>\d+)(?P<unit>[mhdw])$")
_ISO = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?)?$",
)
_MONTHS = re.compile(r"^(?:(?P<short>\d+)mo|P(?P<iso>\d+)M)$")
_MIXED_MONTHS = re.compile(r"[\d.]+mo|P[^T]*M.*")  # 1.5mo, P1M2D: months, but not whole and alone
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}

#: JSON Schema pattern for a literal duration (kept in step with :func:`parse_duration`).
DURATION_PATTERN = r"^(\d+(mo|[mhdw])|P\d+M|P(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?)?)$"
#: A duration, or the name of a pathway parameter that holds one.
DURATION_OR_PARAM_PATTERN = r"^(\d+(mo|[mhdw])|P\d+M|P(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?)?|[a-z][a-z0-9_]*)$"

#: The longest duration Carepath accepts anywhere: about ten years (a longer one is always a typo).
MAX_DURATION = timedelta(days=3660)
#: The same limit in calendar months.
MAX_MONTHS = 120


def parse_span(text: str) -> Span:
    """Like :func:`parse_duration`, and also whole calendar months: ``1mo`` or ISO ``P1M`` (months alone).

    Months mixed with other units (``P1M2D``) and fractions (``1.5mo``) are refused: write days instead.
    """
    value = text.strip() if isinstance(text, str) else text
    found = _MONTHS.match(value) if isinstance(value, str) else None
    if found is None:
        problem = months_problem(value)
        if problem:
            raise ValueError(problem)
        return parse_duration(text)
    n = _int(found["short"] or found["iso"])
    if n > MAX_MONTHS:
        raise ValueError(f"{_shown(text)} is longer than ten years")
    return MonthSpan(n) if n else timedelta(0)


def months_problem(value: object) -> str | None:
    """Why ``value`` is no duration when it tries months the wrong way (``1.5mo``, ``P1M2D``), else None."""
    if isinstance(value, str) and _MIXED_MONTHS.fullmatch(value.strip()) and not _MONTHS.match(value.strip()):
        return f"{_shown(value)} is not a duration: months are whole and alone (1mo, P1M); write days instead (45d)"
    return None


def parse_duration(text: str) -> timedelta:
    """Parse ``36h``/``3d``/``2w``/``30m`` or ISO 8601 (``P3D``, ``PT36H``, ``P1W``); raise ValueError otherwise.

    Durations longer than ten years are refused: they are always a typo in a care pathway.
    """
    value = text.strip() if isinstance(text, str) else text
    if not isinstance(value, str):
        raise ValueError(f"{_shown(text)} is not a duration (e.g. 10d)")
    short = _SHORT.match(value)
    iso = None if short else _ISO.match(value)
    if isinstance(value, str) and _MONTHS.match(value):
        raise ValueError(f"{_shown(text)}: calendar months are not accepted here; write days (e.g. 30d)")
    if not short and (not iso or value in ("P", "PT") or value.endswith("T")):
        raise ValueError(f"{_shown(text)} is not a duration (e.g. 10d)")
    try:
        if short:
            result = _int(short["n"]) * _UNITS[short["unit"]]
        else:
            assert iso is not None
            parts = {k: _int(v) for k, v in iso.groupdict().items() if v}
            result = timedelta(
                weeks=parts.get("w", 0), days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0)
            )
    except (OverflowError, ValueError):  # beyond a timedelta, or more digits than int() reads: far beyond ten years
        raise ValueError(f"{_shown(text)} is longer than ten years") from None
    if result > MAX_DURATION:
        raise ValueError(f"{_shown(text)} is longer than ten years")
    return result


def _int(digits: str) -> int:
    return int(digits.lstrip("0") or "0")  # leading zeros never count towards int()'s digit limit


def _shown(text: object, limit: int = 40) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 2] + "…'"


def format_duration(delta: Span) -> str:
    """The shortest designer-style spelling of ``delta`` (``2w``, ``36h``, ``90m``, ``1mo``, ``1mo+2d``)."""
    if isinstance(delta, MonthSpan):
        return _with_months(delta, format_duration)
    sign = "-" if delta < timedelta(0) else ""
    minutes = int(abs(delta).total_seconds() // 60)
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{sign}{minutes // size}{unit}"
    return f"{sign}{minutes}m"


def _with_months(span: MonthSpan, fixed: Callable[[timedelta], str]) -> str:
    rest = "" if not span.fixed else str(fixed(span.fixed))
    return f"{span.months}mo" + (rest if rest.startswith("-") else f"+{rest}" if rest else "")


def show_duration(delta: Span) -> str:
    """A duration as a coordinator reads it: hours below three days (``36h``, ``48h``), then days (``14d``)."""
    if isinstance(delta, MonthSpan):
        return _with_months(delta, show_duration)
    minutes = int(delta.total_seconds() // 60)
    if minutes == 0:
        return "0h"
    sign = "-" if minutes < 0 else ""
    minutes = abs(minutes)
    if minutes % (24 * 60) == 0 and minutes >= 3 * 24 * 60:
        return f"{sign}{minutes // (24 * 60)}d"
    if minutes % 60 == 0:
        return f"{sign}{minutes // 60}h"
    return f"{sign}{minutes}m"


def said(span: Span) -> str:
    """A duration as the designer wrote it (``2w``, not ``14d``) when known, else as :func:`show_duration` shows it."""
    return getattr(span, "written", "") or show_duration(span)
