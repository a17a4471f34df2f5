"""Where each kind of thing appears in a pathway document: the walkers the meaning checks share.

Each yields ``(path, value)`` pairs, the path in document keys (``from``, ``for``, ``in``, ``not``, ``class``;
lists by position, mappings by key), so every check reports at the value a designer should fix. Written once
here so a new place a role, a duration or an event can appear is added in one spot for every check.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from engine.language.durations import said
from engine.language.fields import ParamRef, Spec
from engine.language.guards import time_tests
from engine.language.model import Anchor, Guard, PathwaySpec, RungSpec
from engine.language.positions import Path
from engine.language.spans import MonthSpan, Span

__all__ = [
    "anchors",
    "durations_in",
    "escalations",
    "event_uses",
    "guards",
    "ladder_refs",
    "ladders",
    "measure_events",
    "resolve",
    "role_refs",
    "show",
    "sources",
]


def guards(spec: PathwaySpec) -> Iterator[tuple[Path, Guard]]:
    """Every guard: a move's ``when``, an authorization's ``unless``, an entry task's ``when``."""
    for i, t in enumerate(spec.transitions):
        if t.when is not None:
            yield ("transitions", i, "when"), t.when
        auth = t.handoff.authorization if t.handoff else None
        if auth is not None and auth.unless is not None:
            yield ("transitions", i, "handoff", "authorization", "unless"), auth.unless
    for i, stage in enumerate(spec.stages):
        for j, task in enumerate(stage.on_entry):
            if task.when is not None:
                yield ("stages", i, "on_entry", j, "when"), task.when


def anchors(spec: PathwaySpec) -> Iterator[tuple[Path, Anchor]]:
    """Every moment named: a deadline's ``from`` and a time test's ``since``."""
    for i, stage in enumerate(spec.stages):
        for j, task in enumerate(stage.on_entry):
            if task.from_ is not None:
                yield ("stages", i, "on_entry", j, "from"), task.from_
    for i, t in enumerate(spec.transitions):
        for j, step in enumerate(t.handoff.steps if t.handoff else []):
            if step.from_ is not None:
                yield ("transitions", i, "handoff", "steps", j, "from"), step.from_
    for path, guard in guards(spec):
        for at, test in time_tests(guard, path):
            yield (*at, "since"), test.since


def escalations(spec: PathwaySpec) -> Iterator[tuple[Path, Spec, str]]:
    """Every place a ladder is accepted: the path of its ``escalate``, the part that holds it and the field name."""
    for i, stage in enumerate(spec.stages):
        for j, task in enumerate(stage.on_entry):
            yield ("stages", i, "on_entry", j, "escalate"), task, "escalate"
        for j, series in enumerate(stage.check_ins):
            yield ("stages", i, "check_ins", j, "escalate"), series, "escalate"
        if stage.peer_support:
            yield ("stages", i, "peer_support", "escalate"), stage.peer_support, "escalate"
        if stage.expected_duration:
            yield ("stages", i, "expected_duration", "escalate"), stage.expected_duration, "escalate"
    for i, t in enumerate(spec.transitions):
        if t.handoff:
            for j, step in enumerate(t.handoff.steps):
                yield ("transitions", i, "handoff", "steps", j, "escalate"), step, "escalate"
            if t.handoff.authorization:
                yield ("transitions", i, "handoff", "authorization", "escalate"), t.handoff.authorization, "escalate"
            yield ("transitions", i, "handoff", "consent_escalate"), t.handoff, "consent_escalate"
            yield ("transitions", i, "handoff", "re_engage_escalate"), t.handoff, "re_engage_escalate"
        if t.reconcile:
            yield ("transitions", i, "reconcile", "escalate"), t.reconcile, "escalate"
    for name, need in spec.social_needs.items():
        yield ("social_needs", name, "escalate"), need, "escalate"


def ladders(spec: PathwaySpec) -> Iterator[tuple[Path, list[RungSpec]]]:
    """Every ladder written out: the named ones under ``ladders``, then those written in place."""
    for name, rungs in spec.ladders.items():
        yield ("ladders", name), rungs
    for path, part, field in escalations(spec):
        value = getattr(part, field)
        if isinstance(value, list) and value:
            yield path, value


def ladder_refs(spec: PathwaySpec) -> Iterator[tuple[Path, str]]:
    """Every ladder named: ``default_ladder``, then each ``escalate: <name>``."""
    if spec.default_ladder is not None:
        yield ("default_ladder",), spec.default_ladder
    for path, part, field in escalations(spec):
        value = getattr(part, field)
        if isinstance(value, str):
            yield path, value


def durations_in(spec: PathwaySpec) -> Iterator[tuple[Path, Span | ParamRef | None]]:
    """Every duration outside ``parameters`` (those may not name a parameter themselves)."""
    for i, stage in enumerate(spec.stages):
        at: Path = ("stages", i)
        if stage.expected_duration:
            yield (*at, "expected_duration", "min"), stage.expected_duration.min
            yield (*at, "expected_duration", "max"), stage.expected_duration.max
        for j, task in enumerate(stage.on_entry):
            yield (*at, "on_entry", j, "within"), task.within
        for j, s in enumerate(stage.check_ins):
            yield (*at, "check_ins", j, "every"), s.every
            yield (*at, "check_ins", j, "window"), s.window
            yield (*at, "check_ins", j, "for"), s.for_
        if stage.peer_support:
            yield (*at, "peer_support", "first_contact_within"), stage.peer_support.first_contact_within
        if stage.family:
            yield (*at, "family", "update_every"), stage.family.update_every
    for i, t in enumerate(spec.transitions):
        if t.handoff:
            h: Path = ("transitions", i, "handoff")
            for j, step in enumerate(t.handoff.steps):
                yield (*h, "steps", j, "within"), step.within
            if t.handoff.authorization:
                yield (*h, "authorization", "within"), t.handoff.authorization.within
            yield (*h, "re_engage_within"), t.handoff.re_engage_within
        if t.reconcile:
            yield ("transitions", i, "reconcile", "within"), t.reconcile.within
        yield ("transitions", i, "after"), t.after
    for name, need in spec.social_needs.items():
        yield ("social_needs", name, "refer_within"), need.refer_within
    for path, ladder in ladders(spec):
        for k, rung in enumerate(ladder):
            yield (*path, k, "after"), rung.after


def role_refs(spec: PathwaySpec) -> Iterator[tuple[Path, str]]:
    for i, stage in enumerate(spec.stages):
        if stage.owner is not None:
            yield ("stages", i, "owner"), stage.owner
        for j, task in enumerate(stage.on_entry):
            yield ("stages", i, "on_entry", j, "owner"), task.owner
        for j, series in enumerate(stage.check_ins):
            yield ("stages", i, "check_ins", j, "owner"), series.owner
        if stage.peer_support:
            yield ("stages", i, "peer_support", "role"), stage.peer_support.role
        if stage.family:
            yield ("stages", i, "family", "owner"), stage.family.owner
    for i, t in enumerate(spec.transitions):
        if t.handoff:
            yield ("transitions", i, "handoff", "receiver", "role"), t.handoff.receiver.role
            if t.handoff.introduced_by is not None:
                yield ("transitions", i, "handoff", "introduced_by"), t.handoff.introduced_by
            auth = t.handoff.authorization
            if auth is not None and auth.owner is not None:
                yield ("transitions", i, "handoff", "authorization", "owner"), auth.owner
            if t.handoff.re_engage_owner is not None:
                yield ("transitions", i, "handoff", "re_engage_owner"), t.handoff.re_engage_owner
            for k, role in enumerate(t.handoff.alert_to):
                yield ("transitions", i, "handoff", "alert_to", k), role
        if t.reconcile:
            if t.reconcile.owner is not None:
                yield ("transitions", i, "reconcile", "owner"), t.reconcile.owner
            for k, role in enumerate(t.reconcile.critical_to):
                yield ("transitions", i, "reconcile", "critical_to", k), role
    for name, need in spec.social_needs.items():
        yield ("social_needs", name, "owner"), need.owner
    for path, ladder in ladders(spec):
        for k, rung in enumerate(ladder):
            yield (*path, k, "to"), rung.to


def event_uses(spec: PathwaySpec) -> Iterator[tuple[Path, str]]:
    for i, t in enumerate(spec.transitions):
        if isinstance(t.event, str):
            yield ("transitions", i, "event"), t.event
        elif t.event is not None:
            for k, name in enumerate(t.event):
                yield ("transitions", i, "event", k), name
    for i, stage in enumerate(spec.stages):
        for j, task in enumerate(stage.on_entry):
            yield ("stages", i, "on_entry", j, "done_on"), task.done_on
        for j, series in enumerate(stage.check_ins):
            yield ("stages", i, "check_ins", j, "done_on"), series.done_on
        if stage.peer_support:
            yield ("stages", i, "peer_support", "done_on"), stage.peer_support.done_on
        if stage.family:
            yield ("stages", i, "family", "done_on"), stage.family.done_on
    for path, anchor in anchors(spec):
        if isinstance(anchor, str):
            yield path, anchor
    yield from measure_events(spec)


def measure_events(spec: PathwaySpec) -> Iterator[tuple[Path, str]]:
    """The events the ``measures:`` key names (each must be declared or built in, like any other use)."""
    if spec.measures is None:
        return
    for key in ("start", "release"):
        if (name := getattr(spec.measures, key)) is not None:
            yield ("measures", key), name
    for key in ("visits", "contacts", "moud_fills", "moud_events"):
        for k, name in enumerate(getattr(spec.measures, key)):
            yield ("measures", key, k), name


def sources(spec: PathwaySpec, i: int) -> Iterator[tuple[Path, str]]:
    t = spec.transitions[i]
    if isinstance(t.from_, str):
        yield ("transitions", i, "from"), t.from_
    else:
        for k, stage in enumerate(t.from_):
            yield ("transitions", i, "from", k), stage


def resolve(spec: PathwaySpec, value: Span | ParamRef | None) -> Span | None:
    """A literal duration, or a known parameter's literal default; None when there is nothing to compare."""
    if isinstance(value, ParamRef):
        param = spec.parameters.get(value.param)
        value = param.default if param else None
    return value if isinstance(value, timedelta | MonthSpan) else None


def show(value: Span | ParamRef, resolved: Span) -> str:
    """A duration in a message, as the designer wrote it (a parameter's name with its default's value)."""
    return f"{value.param} ({said(resolved)})" if isinstance(value, ParamRef) else said(resolved)
