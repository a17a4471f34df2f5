"""Meaning checks about time: parameter bounds, expected stays (``min`` <= ``max``), escalation ladders strictly
later rung after rung, check-in cadences (longer than zero; only the last series may omit ``for``).

A duration that names a parameter is compared through the parameter's default; a name that is no parameter is
reported once, here. Calendar months (``1mo``) are 28 to 31 days: a comparison wrong whatever the months is an
error, one wrong only in some months a warning that says so. Messages quote durations as the designer wrote them.
Warning: a check-in window longer than its cadence.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from engine.errors import Finding
from engine.language.durations import said
from engine.language.fields import ParamRef
from engine.language.model import PathwaySpec
from engine.language.positions import Path
from engine.language.semantics.walk import durations_in, ladders, resolve, show
from engine.language.spans import MonthSpan, Span, exceeds, nominal
from engine.language.suggest import unknown

__all__ = ["check_check_ins", "check_durations", "check_parameters"]

#: Said after a comparison that holds only in some months.
SOME_MONTHS = " in some months (a month is 28 to 31 days)"


def _wrong(path: Path, message: str, a: Span, b: Span, *, or_equal: bool = False) -> Iterator[Finding]:
    """``message`` when ``a`` > ``b`` (``>=``): an error if so whatever the months, a warning if only in some."""
    found = exceeds(a, b, or_equal=or_equal)
    if found == "always":
        yield Finding(path, message)
    elif found == "sometimes":
        yield Finding(path, message + SOME_MONTHS, "warning")


def check_parameters(spec: PathwaySpec) -> Iterator[Finding]:
    for name, param in spec.parameters.items():
        at: Path = ("parameters", name)
        values = {"default": param.default, "min": param.min, "max": param.max}
        for key, value in values.items():
            if isinstance(value, ParamRef):
                yield Finding((*at, key), f"'{value.param}' is not a duration (e.g. 10d)")
        default, low, high = (v if isinstance(v, timedelta | MonthSpan) else None for v in values.values())
        if low is not None and high is not None and exceeds(low, high) != "never":
            yield from _wrong((*at, "max"), f"max {said(high)} is less than min {said(low)}", low, high)
        elif default is not None:
            if low is not None:
                yield from _wrong((*at, "default"), f"default {said(default)} is below min {said(low)}", low, default)
            if high is not None:
                yield from _wrong((*at, "default"), f"default {said(default)} is above max {said(high)}", default, high)


def check_durations(spec: PathwaySpec) -> Iterator[Finding]:
    for path, value in durations_in(spec):
        if isinstance(value, ParamRef) and value.param not in spec.parameters:
            yield Finding(path, unknown("parameter", value.param, spec.parameters))
        elif path[-1] == "re_engage_within" and isinstance(resolve(spec, value), MonthSpan):
            yield Finding(path, "re_engage_within cannot be in calendar months; write days (e.g. 30d)")
    for i, stage in enumerate(spec.stages):
        rng = stage.expected_duration
        if rng is None or rng.max is None:
            continue
        low, high = resolve(spec, rng.min), resolve(spec, rng.max)
        if low is not None and high is not None:
            message = f"max {show(rng.max, high)} is less than min {show(rng.min, low)}"
            yield from _wrong(("stages", i, "expected_duration", "max"), message, low, high)
    for path, ladder in ladders(spec):
        previous: Span | None = None
        for k, rung in enumerate(ladder):
            after = resolve(spec, rung.after)
            if after is None:
                continue
            if previous is not None:
                message = f"after {show(rung.after, after)} is not later than the rung before ({said(previous)})"
                yield from _wrong((*path, k, "after"), message, previous, after, or_equal=True)
            previous = after if previous is None else max(previous, after, key=nominal)


def check_check_ins(spec: PathwaySpec) -> Iterator[Finding]:
    for i, stage in enumerate(spec.stages):
        tracks = [series.track or "" for series in stage.check_ins]
        for j, series in enumerate(stage.check_ins):
            at: Path = ("stages", i, "check_ins", j)
            if series.for_ is None and tracks[j] in tracks[j + 1 :]:  # a later series of its track never starts
                yield Finding(at, "only the last check-in series may omit 'for'")
            every, window = resolve(spec, series.every), resolve(spec, series.window)
            if every is not None and exceeds(every, timedelta(0)) != "always":
                yield Finding((*at, "every"), "every must be longer than 0")
            elif every is not None and window is not None:
                found = exceeds(window, every)
                if found != "never":
                    months = SOME_MONTHS if found == "sometimes" else ""
                    message = f"window {said(window)} is longer than every {said(every)}{months}; contacts overlap"
                    yield Finding((*at, "window"), message, "warning")
