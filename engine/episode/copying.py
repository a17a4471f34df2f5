"""A fast structural copy of an episode's state, so a rule can change its copy and never the caller's.

The rules (:mod:`engine.episode.rules`) work on a copy: a refused event must change nothing. ``model_copy(deep=True)``
did that through :func:`copy.deepcopy`, which walks every value (consents, datetimes, strings) and was nine tenths
of a rule's time. This copy walks only what the rules can change: lists, dicts, sets and models that are not
frozen are copied (recursively); frozen models (consents, medications, discrepancies), tuples of immutable values
and scalars (text, numbers, datetimes) are shared, since nothing can change them in place. Which fields of a model
can hold something mutable, and how to copy it, is read once per class from its annotations (a list of frozen
models is one list copy; a rung, all scalars, one dict copy).
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["structural_copy"]

M = TypeVar("M", bound=BaseModel)

_SCALARS = (str, int, float, bool, type(None), datetime, date, timedelta, bytes, frozenset)
#: Types shared as they are; subclasses of the scalars and frozen models join on first sight.
_IMMUTABLE: set[type] = set(_SCALARS)
#: Per model class, how to copy each field whose annotation allows a mutable value (the only ones copied).
_COPIERS: dict[type, tuple[tuple[str, Callable[[Any], Any]], ...]] = {}


def _copier(annotation: Any) -> Callable[[Any], Any] | None:
    """How to copy a value of ``annotation`` (None: share it), decided once per field instead of once per value."""
    if annotation in _SCALARS:
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return None
    if origin in (typing.Union, types.UnionType):
        inner = [_copier(a) for a in args if a is not type(None)]
        if all(c is None for c in inner):
            return None
        return _copy if len(inner) > 1 else _optional(inner[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return None if annotation.model_config.get("frozen") else structural_copy
    if origin is list and len(args) == 1:
        item = _copier(args[0])
        return list.copy if item is None else partial(_each, item)
    if origin is dict and len(args) == 2 and _copier(args[0]) is None:
        value = _copier(args[1])
        return dict.copy if value is None else partial(_each_value, value)
    if origin is set and len(args) == 1 and _copier(args[0]) is None:
        return set.copy
    if isinstance(annotation, type) and issubclass(annotation, _SCALARS):
        return None
    return _copy  # Any, tuples, anything else: walk the value itself


def _optional(copier: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    return None if copier is None else partial(_unless_none, copier)


def _unless_none(copier: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else copier(value)


def _each(copier: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    return [copier(v) for v in values]


def _each_value(copier: Callable[[Any], Any], values: dict[Any, Any]) -> dict[Any, Any]:
    return {k: copier(v) for k, v in values.items()}


def _copiers(kind: type[BaseModel]) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    found = _COPIERS.get(kind)
    if found is None:
        pairs = ((n, _copier(f.annotation)) for n, f in kind.model_fields.items())
        found = tuple((n, c) for n, c in pairs if c is not None)
        _COPIERS[kind] = found
    return found


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
        if value.model_config.get("frozen"):
            _IMMUTABLE.add(kind)  # shared from now on without asking
            return value
        return structural_copy(value)
    if isinstance(value, _SCALARS):  # a subclass of an immutable (a span as written, an enum of text)
        _IMMUTABLE.add(kind)
        return value
    return copy.deepcopy(value)  # anything else: no sharing at all


def structural_copy(model: M) -> M:
    """A copy of ``model`` sharing nothing mutable with it (frozen models and immutable values are shared)."""
    kind = model.__class__
    new = kind.__new__(kind)
    fields = model.__dict__.copy()
    for name, copier in _copiers(kind):
        fields[name] = copier(fields[name])
    object.__setattr__(new, "__dict__", fields)
    object.__setattr__(new, "__pydantic_fields_set__", set(model.__pydantic_fields_set__))
    extra, private = model.__pydantic_extra__, model.__pydantic_private__
    object.__setattr__(new, "__pydantic_extra__", None if extra is None else _copy(extra))
    object.__setattr__(new, "__pydantic_private__", None if private is None else _copy(private))
    return new
