"""Meaning checks about time: parameter bounds, expected stays (``min`` <= ``max``), escalation ladders strictly
later rung after rung, check-in cadences (longer than zero; only the last series may omit ``for``).

A duration that names a parameter is compared through the parameter's default; a name that is no parameter is
reported once, here. Warning: a check-in window longer than its cadence.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from engine.errors import Finding
from engine.language.durations import show_duration
from engine.language.fields import ParamRef
from engine.language.model import PathwaySpec
from engine.language.positions import Path
from engine.language.semantics.walk import durations_in, ladders, resolve, show
from engine.language.suggest import unknown

__all__ = ["check_check_ins", "check_durations", "check_parameters"]


def check_parameters(spec: PathwaySpec) -> Iterator[Finding]:
    for name, param in spec.parameters.items():
        at: Path = ("parameters", name)
        values = {"default": param.default, "min": param.min, "max": param.max}
        for key, value in values.items():
            if isinstance(value, ParamRef):
                yield Finding((*at, key), f"'{value.param}' is not a duration (e.g. 10d)")
        default, low, high = (v if isinstance(v, timedelta) else None for v in values.values())
        if low is not None and high is not None and low > high:
            yield Finding((*at, "max"), f"max {show_duration(high)} is less than min {show_duration(low)}")
        elif default is not None:
            if low is not None and default < low:
                yield Finding((*at, "default"), f"default {show_duration(default)} is below min {show_duration(low)}")
            if high is not None and default > high:
                yield Finding((*at, "default"), f"default {show_duration(default)} is above max {show_duration(high)}")


def check_durations(spec: PathwaySpec) -> Iterator[Finding]:
    for path, value in durations_in(spec):
        if isinstance(value, ParamRef) and value.param not in spec.parameters:
            yield Finding(path, unknown("parameter", value.param, spec.parameters))
    for i, stage in enumerate(spec.stages):
        rng = stage.expected_duration
        if rng is None or rng.max is None:
            continue
        low, high = resolve(spec, rng.min), resolve(spec, rng.max)
        if low is not None and high is not None and low > high:
            yield Finding(
                ("stages", i, "expected_duration", "max"),
                f"max {show(rng.max, high)} is less than min {show(rng.min, low)}",
            )
    for path, ladder in ladders(spec):
        previous: timedelta | None = None
        for k, rung in enumerate(ladder):
            after = resolve(spec, rung.after)
            if after is None:
                continue
            if previous is not None and after <= previous:
                yield Finding(
                    (*path, k, "after"),
                    f"after {show(rung.after, after)} is not later than the rung before ({show_duration(previous)})",
                )
            previous = after if previous is None else max(previous, after)


def check_check_ins(spec: PathwaySpec) -> Iterator[Finding]:
    for i, stage in enumerate(spec.stages):
        tracks = [series.track or "" for series in stage.check_ins]
        for j, series in enumerate(stage.check_ins):
            at: Path = ("stages", i, "check_ins", j)
            if series.for_ is None and tracks[j] in tracks[j + 1 :]:  # a later series of its track never starts
                yield Finding(at, "only the last check-in series may omit 'for'")
            every, window = resolve(spec, series.every), resolve(spec, series.window)
            if every is not None and every <= timedelta(0):
                yield Finding((*at, "every"), "every must be longer than 0")
            elif every is not None and window is not None and window > every:
                yield Finding(
                    (*at, "window"),
                    f"window {show_duration(window)} is longer than every {show_duration(every)}; contacts overlap",
                    "warning",
                )
