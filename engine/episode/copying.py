"""A fast structural copy of an episode's state, so a rule can change its copy and never the caller's.

The rules (:mod:`engine.episode.rules`) work on a copy: a refused event must change nothing. ``model_copy(deep=True)``
did that through :func:`copy.deepcopy`, which walks every value (consents, datetimes, strings) and was nine tenths
of a rule's time. This copy walks only what the rules can change: lists, dicts, sets and models that are not
frozen are copied (recursively); frozen models (consents, medications, discrepancies), tuples of immutable values
and scalars (text, numbers, datetimes) are shared, since nothing can change them in place.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["structural_copy"]

M = TypeVar("M", bound=BaseModel)

_IMMUTABLE: frozenset[type] = frozenset(
    {str, int, float, bool, type(None), datetime, date, timedelta, bytes, frozenset}
)


def _copy(value: Any) -> Any:
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is list:
        return [v if type(v) in _IMMUTABLE else _copy(v) for v in value]
    if kind is dict:
        return {k: v if type(v) in _IMMUTABLE else _copy(v) for k, v in value.items()}
    if kind is set:
        return {_copy(v) for v in value}
    if kind is tuple:
        items = tuple(_copy(v) for v in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, BaseModel):
        return value if value.model_config.get("frozen") else structural_copy(value)
    return copy.deepcopy(value)  # anything else: no sharing at all


def structural_copy(model: M) -> M:
    """A copy of ``model`` sharing nothing mutable with it (frozen models and immutable values are shared)."""
    new = model.__class__.__new__(model.__class__)
    fields = {k: v if type(v) in _IMMUTABLE else _copy(v) for k, v in model.__dict__.items()}
    object.__setattr__(new, "__dict__", fields)
    object.__setattr__(new, "__pydantic_fields_set__", set(model.__pydantic_fields_set__))
    object.__setattr__(new, "__pydantic_extra__", _copy(model.__pydantic_extra__))
    object.__setattr__(new, "__pydantic_private__", _copy(model.__pydantic_private__))
    return new
