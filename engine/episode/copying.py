"""A fast structural copy of an episode's state, so a rule can change its copy and never the caller's.

The rules (:mod:`engine.episode.rules`) work on a copy: a refused event must change nothing. ``model_copy(deep=True)``
did that through :func:`copy.deepcopy`, which walks every value (consents, datetimes, strings) and was nine tenths
of a rule's time. This copy walks only what the rules can change: lists, dicts, sets and models that are not
frozen are copied (recursively); frozen models (consents, medications, discrepancies), tuples of immutable values
and scalars (text, numbers, datetimes) are shared, since nothing can change them in place. Which fields of a model
can hold something mutable is read once per class from its annotations, so a rung (all scalars) costs one dict copy.
"""

from __future__ import annotations

import copy
import types
import typing
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["structural_copy"]

M = TypeVar("M", bound=BaseModel)

_SCALARS = (str, int, float, bool, type(None), datetime, date, timedelta, bytes, frozenset)
#: Types shared as they are; subclasses of the scalars and frozen models join on first sight.
_IMMUTABLE: set[type] = set(_SCALARS)
#: Per model class, the fields whose annotation allows a mutable value (the only ones copied).
_MUTABLE_FIELDS: dict[type, tuple[str, ...]] = {}


def _immutable_annotation(annotation: Any) -> bool:
    if annotation in _SCALARS or annotation is type(None):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(_immutable_annotation(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return bool(annotation.model_config.get("frozen"))
    return isinstance(annotation, type) and issubclass(annotation, _SCALARS)


def _mutable_fields(kind: type[BaseModel]) -> tuple[str, ...]:
    found = _MUTABLE_FIELDS.get(kind)
    if found is None:
        found = tuple(n for n, f in kind.model_fields.items() if not _immutable_annotation(f.annotation))
        _MUTABLE_FIELDS[kind] = found
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
    for name in _mutable_fields(kind):
        value = fields[name]
        if type(value) not in _IMMUTABLE:
            fields[name] = _copy(value)
    object.__setattr__(new, "__dict__", fields)
    object.__setattr__(new, "__pydantic_fields_set__", set(model.__pydantic_fields_set__))
    extra, private = model.__pydantic_extra__, model.__pydantic_private__
    object.__setattr__(new, "__pydantic_extra__", None if extra is None else _copy(extra))
    object.__setattr__(new, "__pydantic_private__", None if private is None else _copy(private))
    return new
