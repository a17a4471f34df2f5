"""Guards: the small declarative conditions a transition tests over episode facts.

A guard is data (:data:`engine.language.model.Guard`), never code: it is evaluated by walking the tree, so no text a
designer writes is ever ``eval``-ed. A fact that is missing (absent or ``None``) makes every comparison on it
false; only ``is_set: false`` is true for it. ``not`` inverts whatever its condition gives, missing or not.
A time test (``since``) needs ``now`` and the episode's event times; a moment that has not happened makes it false.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from engine.language.durations import show_duration
from engine.language.model import AllGuard, AnyGuard, FactGuard, Guard, NotGuard, SinceGuard
from engine.language.moments import anchor_name, moment
from engine.language.spans import MonthSpan, Span, add

__all__ = ["describe", "evaluate", "fact_tests", "facts_in", "possible_from", "time_tests"]

_NO_TIMES: Mapping[str, datetime] = {}


def evaluate(
    guard: Guard, facts: Mapping[str, Any], *, now: datetime | None = None, times: Mapping[str, datetime] = _NO_TIMES
) -> bool:
    """Whether ``guard`` holds for an episode whose facts are ``facts`` (and event ``times``, at ``now``)."""
    if isinstance(guard, FactGuard):
        return _test(guard, facts.get(guard.fact))
    if isinstance(guard, AllGuard):
        return all(evaluate(g, facts, now=now, times=times) for g in guard.all)
    if isinstance(guard, AnyGuard):
        return any(evaluate(g, facts, now=now, times=times) for g in guard.any)
    if isinstance(guard, NotGuard):
        return not evaluate(guard.not_, facts, now=now, times=times)
    if isinstance(guard, SinceGuard):
        return _since(guard, facts, now, times)
    raise TypeError(f"not a guard: {guard!r}")


def _since(test: SinceGuard, facts: Mapping[str, Any], now: datetime | None, times: Mapping[str, datetime]) -> bool:
    at = moment(test.since, facts, times)
    if at is None or now is None:
        return False
    low, high = _bound(test.at_least), _bound(test.at_most)
    return (low is None or now >= add(at, low)) and (high is None or now <= add(at, high))


def _bound(value: object) -> Span | None:
    return value if isinstance(value, timedelta | MonthSpan) else None


def possible_from(guard: Guard, facts: Mapping[str, Any], times: Mapping[str, datetime]) -> datetime | None:
    """When a guard that fails now only for want of time will hold: a time test's moment plus its ``at_least``,
    the latest of those in an ``all`` whose other parts hold. None when waiting alone will not do."""
    if isinstance(guard, SinceGuard):
        at, low = moment(guard.since, facts, times), _bound(guard.at_least)
        return add(at, low) if at is not None and low is not None else None
    if isinstance(guard, AllGuard):
        waits = [possible_from(g, facts, times) for g in guard.all if isinstance(g, SinceGuard)]
        others = [g for g in guard.all if not isinstance(g, SinceGuard)]
        if waits and None not in waits and all(evaluate(g, facts, times=times) for g in others):
            return max(w for w in waits if w is not None)
    return None


def _test(test: FactGuard, value: Any) -> bool:
    if test.is_set is not None:
        return (value is not None) == test.is_set
    if value is None:
        return False
    if test.equals is not None:
        return _same(value, test.equals)
    if test.not_equals is not None:
        return not _same(value, test.not_equals)
    if test.in_ is not None:
        return any(_same(value, v) for v in test.in_)
    if not _is_number(value):
        return False
    if test.at_least is not None:
        return value >= test.at_least
    return test.at_most is not None and value <= test.at_most


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` apart from ``1`` (Python's ``True == 1`` would pass a wrong guard)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def fact_tests(guard: Guard, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], FactGuard]]:
    """Every fact test in ``guard`` with its document path below ``path`` (YAML keys: ``all``, ``any``, ``not``)."""
    if isinstance(guard, FactGuard):
        yield path, guard
    elif isinstance(guard, AllGuard):
        for i, g in enumerate(guard.all):
            yield from fact_tests(g, (*path, "all", i))
    elif isinstance(guard, AnyGuard):
        for i, g in enumerate(guard.any):
            yield from fact_tests(g, (*path, "any", i))
    elif isinstance(guard, NotGuard):
        yield from fact_tests(guard.not_, (*path, "not"))


def time_tests(guard: Guard, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], SinceGuard]]:
    """Every time test (``since``) in ``guard`` with its document path below ``path``."""
    if isinstance(guard, SinceGuard):
        yield path, guard
    elif isinstance(guard, AllGuard | AnyGuard):
        key = "all" if isinstance(guard, AllGuard) else "any"
        for i, g in enumerate(guard.all if isinstance(guard, AllGuard) else guard.any):
            yield from time_tests(g, (*path, key, i))
    elif isinstance(guard, NotGuard):
        yield from time_tests(guard.not_, (*path, "not"))


def facts_in(guard: Guard) -> set[str]:
    """Names of the facts ``guard`` reads."""
    return {test.fact for _, test in fact_tests(guard)}


def describe(guard: Guard) -> str:
    """A one-line reading of ``guard``: ``insurance in [commercial, medicaid] and not authorization_denied``."""
    if isinstance(guard, FactGuard):
        return _describe_test(guard)
    if isinstance(guard, AllGuard):
        return " and ".join(_wrapped(g, AnyGuard) for g in guard.all)
    if isinstance(guard, AnyGuard):
        return " or ".join(_wrapped(g, AllGuard) for g in guard.any)
    if isinstance(guard, NotGuard):
        inner = guard.not_
        if isinstance(inner, FactGuard) and inner.equals is True:
            return f"not {inner.fact}"
        return f"not ({describe(inner)})"
    if isinstance(guard, SinceGuard):
        parts = [f"at least {_show_duration(guard.at_least)}" if guard.at_least is not None else ""]
        parts.append(f"at most {_show_duration(guard.at_most)}" if guard.at_most is not None else "")
        return f"{' and '.join(p for p in parts if p)} since {anchor_name(guard.since)}"
    raise TypeError(f"not a guard: {guard!r}")


def _wrapped(guard: Guard, needs_parens: type) -> str:
    text = describe(guard)
    return f"({text})" if isinstance(guard, needs_parens) else text


def _describe_test(t: FactGuard) -> str:
    if t.equals is True:
        return t.fact
    if t.equals is False:
        return f"not {t.fact}"
    if t.equals is not None:
        return f"{t.fact} = {_show(t.equals)}"
    if t.not_equals is not None:
        return f"{t.fact} != {_show(t.not_equals)}"
    if t.in_ is not None:
        return f"{t.fact} in [{', '.join(_show(v) for v in t.in_)}]"
    if t.at_least is not None:
        return f"{t.fact} >= {_show(t.at_least)}"
    if t.at_most is not None:
        return f"{t.fact} <= {_show(t.at_most)}"
    return f"{t.fact} is set" if t.is_set else f"{t.fact} is not set"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _show_duration(value: object) -> str:
    return show_duration(value) if isinstance(value, timedelta) else str(value)
