"""Durations as program designers write them: ``30m``, ``36h``, ``3d``, ``2w`` or ISO 8601 ``P3D``/``PT36H``.

Pure parsing and formatting; no clock. A duration is always a ``timedelta``; a bare identifier in a duration
field names a pathway parameter (see :class:`engine.language.fields.ParamRef`), resolved when a plan is compiled.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = [
    "DURATION_OR_PARAM_PATTERN",
    "DURATION_PATTERN",
    "MAX_DURATION",
    "format_duration",
    "parse_duration",
    "show_duration",
]

_SHORT = re.compile(r"^(?P<n>\d+)(?P<unit>[mhdw])$")
_ISO = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?)?$",
)
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}

#: JSON Schema pattern for a literal duration (kept in step with :func:`parse_duration`).
DURATION_PATTERN = r"^(\d+[mhdw]|P(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?)?)$"
#: A duration, or the name of a pathway parameter that holds one.
DURATION_OR_PARAM_PATTERN = r"^(\d+[mhdw]|P(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?)?|[a-z][a-z0-9_]*)$"

#: The longest duration Carepath accepts anywhere: about ten years (a longer one is always a typo).
MAX_DURATION = timedelta(days=3660)


def parse_duration(text: str) -> timedelta:
    """Parse ``36h``/``3d``/``2w``/``30m`` or ISO 8601 (``P3D``, ``PT36H``, ``P1W``); raise ValueError otherwise.

    Durations longer than ten years are refused: they are always a typo in a care pathway.
    """
    value = text.strip() if isinstance(text, str) else text
    if not isinstance(value, str):
        raise ValueError(f"{_shown(text)} is not a duration (e.g. 10d)")
    short = _SHORT.match(value)
    iso = None if short else _ISO.match(value)
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


def format_duration(delta: timedelta) -> str:
    """The shortest designer-style spelling of ``delta`` (``2w``, ``36h``, ``90m``); negative gets a ``-``."""
    sign = "-" if delta < timedelta(0) else ""
    minutes = int(abs(delta).total_seconds() // 60)
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{sign}{minutes // size}{unit}"
    return f"{sign}{minutes}m"


def show_duration(delta: timedelta) -> str:
    """A duration as a coordinator reads it: hours below three days (``36h``, ``48h``), then days (``14d``)."""
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
