"""Values checked against what a pathway declares: enrollment facts, an event's name and payload (built-in fields
by their own rules), medication lists and pathway parameters, each converted to its declared type (``"14"`` for a
``number`` becomes 14). An undeclared fact, event or payload field is refused with a "did you mean".
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from engine.app.inputs.ids import check_id
from engine.app.inputs.text import NAME_MAX, check_text
from engine.app.inputs.times import APPOINTMENT, OCCURRED, check_time, parse_date, span
from engine.episode.domain.handoff_terms import ACTIONS, PARTIES
from engine.errors import InvalidInput, quote
from engine.language.durations import MAX_DURATION, parse_duration
from engine.language.moments import OCCURRED_AT

__all__ = [
    "DATE_SPAN",
    "LIST_MAX",
    "NUMBER_MAX",
    "check_declared",
    "check_facts",
    "check_params",
    "check_payload",
    "check_value",
]

LIST_MAX = 100
NUMBER_MAX = 1e12
DATE_SPAN = timedelta(days=36_525)  # a hundred years


def _number(field: str, value: object) -> int | float:
    number: int | float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and len(value) <= 32:
        for kind in (int, float):
            try:
                number = kind(value.strip())
                break
            except ValueError:
                continue
    if number is None:
        raise InvalidInput(field, "is not a number (e.g. 14 or 2.5)", value)
    if not math.isfinite(number) or abs(number) > NUMBER_MAX:
        raise InvalidInput(field, f"is not a finite number between -{NUMBER_MAX:,.0f} and {NUMBER_MAX:,.0f}", value)
    return number


def _bounded(field: str, number: int | float, low: float | None, high: float | None) -> int | float:
    """The pathway's ``min``/``max`` of a number: ``payload field days_supply: '9' is above the maximum 7``."""
    if low is not None and number < low:
        raise InvalidInput(field, f"is below the minimum {low:g}", number)
    if high is not None and number > high:
        raise InvalidInput(field, f"is above the maximum {high:g}", number)
    return number


def _boolean(field: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(field, "is not true or false", value)


def _one_of(field: str, value: object, values: Iterable[str]) -> str:
    allowed = list(values)
    if isinstance(value, str) and value in allowed:
        return value
    near = difflib.get_close_matches(value, allowed, n=1) if isinstance(value, str) and len(value) < 100 else []
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise InvalidInput(field, f"is not one of {', '.join(allowed)}{hint}", value)


def _date_value(field: str, value: object, now: datetime) -> str:
    day = parse_date(field, value)
    if not (now - DATE_SPAN).date() <= day <= (now + DATE_SPAN).date():
        raise InvalidInput(field, f"is more than {span(DATE_SPAN)} from today", day.isoformat())
    return day.isoformat()


def check_value(field: str, declared: Mapping[str, Any], value: object, now: datetime) -> object:
    """A fact's or payload field's value against its declaration (``type``, ``values``), converted to that type."""
    kind = declared.get("type")
    if kind == "number":
        return _bounded(field, _number(field, value), declared.get("min"), declared.get("max"))
    if kind == "boolean":
        return _boolean(field, value)
    if kind == "enum":
        return _one_of(field, value, declared.get("values") or ())
    if kind == "date":
        return _date_value(field, value, now)
    if kind == "list":
        return _medications(field, value)
    return check_text(field, value)


def check_declared(kind: str, name: object, known: Iterable[str], whose: str) -> str:
    """``name``, a sane id of ``kind`` that ``whose`` declares (else a did-you-mean, or what is declared)."""
    check_id(kind, name)
    assert isinstance(name, str)
    names = sorted(known)
    if name not in names:
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(names) or 'none'}"
        raise InvalidInput(kind, f"is not declared by {whose} ({hint})", name)
    return name


def check_facts(
    pathway_id: str, declared: Mapping[str, Mapping[str, Any]], facts: Mapping[str, object], now: datetime
) -> dict[str, object]:
    """Enrollment facts: each declared by the pathway, each value of its declared type (converted)."""
    out = {}
    for name, value in facts.items():
        check_declared("fact", name, declared, f"pathway {pathway_id!r}")
        out[name] = check_value(f"fact {name}", declared[name], value, now)
    return out


#: Built-in payload fields that hold an id, a time or a word from a list rather than free text.
_BUILTIN_FIELDS: dict[str, Callable[[str, object, datetime], object]] = {
    "handoff": lambda field, value, now: check_id("handoff id", value),
    "to": lambda field, value, now: check_id("stage id", value),
    "need": lambda field, value, now: check_id("need", value),
    "consent": lambda field, value, now: check_id("consent id", value),
    "action": lambda field, value, now: _one_of("handoff action", value, ACTIONS),
    "party": lambda field, value, now: _one_of("handoff party", value, PARTIES),
    "appointment_at": lambda field, value, now: check_time(APPOINTMENT, value, now).isoformat(),
}


def check_payload(
    pathway_id: str, events: Mapping[str, Mapping[str, Any]], name: object, data: Mapping[str, object], now: datetime
) -> dict[str, object]:
    """An event's name and payload against the pathway's declarations (``Plan.events``, built-ins included): the
    payload with each value converted to its declared type."""
    check_declared("event", name, events, f"pathway {pathway_id!r}")
    assert isinstance(name, str)
    event = events[name]
    fields: Mapping[str, Mapping[str, Any]] = event.get("payload") or {}
    out: dict[str, object] = {}
    for key, value in data.items():
        if key == OCCURRED_AT and key not in fields:  # any event may say when it happened (deadlines' `from`)
            out[key] = check_time(OCCURRED, value, now).isoformat()
            continue
        check_declared("payload field", key, fields, f"event {name!r}")
        if value is None:
            continue
        builtin = _BUILTIN_FIELDS.get(key) if event.get("builtin") else None
        field = f"payload field {key}"
        out[key] = builtin(field, value, now) if builtin else check_value(field, fields[key], value, now)
    missing = [f for f, spec in fields.items() if spec.get("required", True) and f not in out]
    if missing:
        raise InvalidInput(f"event {name!r}", f"missing field {missing[0]!r}")
    return out


_MEDICATION_FIELDS = ("name", "dose", "route", "frequency", "rxnorm", "reason")


def _medications(field: str, value: object) -> list[object]:
    """A medication list: at most LIST_MAX entries, each a name or a mapping of a medication's fields (unchanged)."""
    if not isinstance(value, list):
        raise InvalidInput(field, "must be a list of medications")
    if len(value) > LIST_MAX:
        raise InvalidInput(field, f"has {len(value):,} medications, at most {LIST_MAX}")
    for n, entry in enumerate(value, 1):
        fields = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(fields, Mapping):
            raise InvalidInput(f"medication {n}", "must be a name or a mapping of name, dose, route ...")
        if "name" not in fields:
            raise InvalidInput(f"medication {n}", "has no name")
        for key, text in fields.items():
            if key not in _MEDICATION_FIELDS:
                raise InvalidInput(f"medication {n}", f"has no field {quote(key)} ({', '.join(_MEDICATION_FIELDS)})")
            if text is not None:
                check_text(f"medication {n} {key}", text, limit=NAME_MAX, one_line=True)
    return value


def check_params(params: Mapping[str, object]) -> dict[str, timedelta]:
    """Pathway parameters: each a duration (text such as ``60d``, or a timedelta) from 0 to ten years."""
    out = {}
    for name, value in params.items():
        check_id("parameter", name)
        field = f"parameter {name}"
        if isinstance(value, str):
            try:
                value = parse_duration(value)
            except ValueError as exc:
                raise InvalidInput(field, str(exc)) from None
        if not isinstance(value, timedelta) or not timedelta(0) <= value <= MAX_DURATION:
            raise InvalidInput(field, "must be a duration from 0 to ten years (e.g. 30d)", str(value))
        out[name] = value
    return out
