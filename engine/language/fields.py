"""The pieces every part of a pathway is written with: ids, fact and event names, durations (or the name of a
parameter that holds one), and :class:`Spec`, the base of every YAML-facing class.

Kept apart from :mod:`engine.language.model` because other inputs share them: a roster's role ids, the
application layer's checks of typed ids, the schema's pattern messages.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    WithJsonSchema,
    WrapSerializer,
)

from engine.language.durations import DURATION_OR_PARAM_PATTERN, format_duration, parse_duration, parse_span
from engine.language.spans import MonthSpan, Span, months, written

__all__ = [
    "EVENT_PATTERN",
    "FACT_PATTERN",
    "ID_PATTERN",
    "LEVEL_HELP",
    "Duration",
    "EventName",
    "FactName",
    "Id",
    "ParamRef",
    "PlanSpan",
    "Scalar",
    "Spec",
]

#: A stage level's help text (the codes are checked by :mod:`engine.language.semantics.levels`).
LEVEL_HELP = (
    "ASAM level code of the pathway's asam_edition. 3rd: 0.5, 1, 2.1, 2.5, 3.1, 3.3, 3.5, 3.7, 4, 1-WM, 2-WM, "
    "3.2-WM, 3.7-WM, 4-WM, OTP; 4th: 1.0, 1.5, 1.7, 2.1, 2.5, 2.7, 3.1, 3.5, 3.7, 4.0."
)
ID_PATTERN = r"^[a-z][a-z0-9-]*$"
FACT_PATTERN = r"^[a-z][a-z0-9_]*$"
EVENT_PATTERN = r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$"


class ParamRef(BaseModel):
    """A duration taken from a pathway parameter (``pre_release_window``), resolved when a plan is compiled."""

    model_config = ConfigDict(frozen=True)
    param: str

    def __str__(self) -> str:
        return self.param


def _to_duration(value: Any) -> Span | ParamRef:
    if isinstance(value, timedelta | MonthSpan | ParamRef):
        return value
    if isinstance(value, str) and re.fullmatch(FACT_PATTERN, value):
        return ParamRef(param=value)
    return written(parse_span(value), value.strip()) if isinstance(value, str) else parse_span(value)


def _to_span(value: Any) -> Span:
    """A plan's duration: a ``timedelta`` (ISO 8601 in JSON), or months as :func:`format_duration` writes them
    (``1mo``, ``1mo+2d``, ``1mo-2d``: a rung after a monthly deadline)."""
    if isinstance(value, timedelta | MonthSpan):
        return value
    found = re.fullmatch(r"(-?\d+)mo([+-])(.+)", value) if isinstance(value, str) else None
    if found is None:
        try:
            return parse_span(value)
        except ValueError:
            return _TIMEDELTA.validate_python(value)  # ISO 8601 as pydantic writes it (PT0S, P1DT12H30M5S)
    fixed = parse_duration(found[3])
    return months(int(found[1]), -fixed if found[2] == "-" else fixed)


_TIMEDELTA = TypeAdapter(timedelta)


def _dump_span(value: Span, handler: SerializerFunctionWrapHandler) -> Any:
    return format_duration(value) if isinstance(value, MonthSpan) else handler(value)


def _dump_duration(value: Span | ParamRef) -> str:
    return str(value) if isinstance(value, ParamRef) else format_duration(value)


Duration = Annotated[
    Span | ParamRef,
    BeforeValidator(_to_duration),
    PlainSerializer(_dump_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_OR_PARAM_PATTERN,
            "description": "A duration: minutes, hours, days or weeks (30m, 36h, 3d, 2w), calendar months (1mo: "
            "same day of the month, clamped to the month's end), ISO 8601 (P3D, PT36H, P1M), or the name of a "
            "pathway parameter that holds one.",
            "examples": ["24h", "3d", "2w", "1mo", "P3D"],
            "x-error": "is not a duration (e.g. 10d)",
        }
    ),
]
#: A resolved duration in a compiled plan: a ``timedelta`` or calendar months (never a parameter's name).
PlanSpan = Annotated[Span, BeforeValidator(_to_span), WrapSerializer(_dump_span), WithJsonSchema({"type": "string"})]
Id = Annotated[str, Field(pattern=ID_PATTERN, examples=["care-coordinator"])]
FactName = Annotated[str, Field(pattern=FACT_PATTERN, examples=["insurance"])]
EventName = Annotated[str, Field(pattern=EVENT_PATTERN, examples=["detox.completed"])]
Scalar = str | int | float | bool


class Spec(BaseModel):
    """Base of every YAML-facing class: frozen, unknown keys forbidden."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
