"""Meaning checks (validation stage 4): what a well-typed pathway can still get wrong.

:func:`check` runs on a :class:`engine.language.model.PathwaySpec` that the model accepted and returns every problem
as a :class:`engine.errors.Finding`, addressed by its path in the YAML document (document keys, so ``from``,
``for``, ``in``, ``not`` and ``class``; lists by position, mappings by key). Pure: no I/O, no clock; the loader
places each finding in the file. Messages are short and lowercase, and name what a designer should fix.

Checks, in the order they run: identities (duplicate stage, task and handoff-step ids), references (stages,
roles, tasks, parameters, events, facts, each with "did you mean"), durations (ranges, parameter bounds,
cadences, escalation ladders in increasing time), facts and guards, check-in series, handoffs, deadlines that
would alert nobody (warnings), the stage graph (reachability, ways out, terminal stages) and transitions that can
never fire.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from datetime import timedelta

from engine.errors import Finding
from engine.language.builtins import BUILTIN_EVENTS
from engine.language.durations import show_duration
from engine.language.fields import ParamRef
from engine.language.guards import fact_tests
from engine.language.model import FactGuard, Guard, PathwaySpec, RungSpec
from engine.language.suggest import unknown

__all__ = ["check"]

Path = tuple[str | int, ...]


def check(spec: PathwaySpec) -> list[Finding]:
    """Every meaning problem of ``spec``, errors and warnings, in document order of the checks."""
    out: list[Finding] = []
    for part in (
        _identities,
        _stage_references,
        _role_references,
        _task_references,
        _parameters,
        _durations,
        _events,
        _facts,
        _guards,
        _check_ins,
        _handoffs,
        _nobody_alerted,
        _graph,
        _dead_transitions,
    ):
        out.extend(part(spec))
    return out


# -- walkers: where each kind of thing appears in a document ----------------------------------------------------


def _ladders(spec: PathwaySpec) -> Iterator[tuple[Path, list[RungSpec]]]:
    for i, stage in enumerate(spec.stages):
        for j, task in enumerate(stage.on_entry):
            yield ("stages", i, "on_entry", j, "escalate"), task.escalate
        for j, series in enumerate(stage.check_ins):
            yield ("stages", i, "check_ins", j, "escalate"), series.escalate
        if stage.peer_support:
            yield ("stages", i, "peer_support", "escalate"), stage.peer_support.escalate
        if stage.expected_duration:
            yield ("stages", i, "expected_duration", "escalate"), stage.expected_duration.escalate
    for i, t in enumerate(spec.transitions):
        if t.handoff:
            for j, step in enumerate(t.handoff.steps):
                yield ("transitions", i, "handoff", "steps", j, "escalate"), step.escalate
            if t.handoff.authorization:
                yield ("transitions", i, "handoff", "authorization", "escalate"), t.handoff.authorization.escalate
            if t.handoff.consent_escalate:
                yield ("transitions", i, "handoff", "consent_escalate"), t.handoff.consent_escalate
        if t.reconcile:
            yield ("transitions", i, "reconcile", "escalate"), t.reconcile.escalate
    for name, need in spec.social_needs.items():
        yield ("social_needs", name, "escalate"), need.escalate


def _durations_in(spec: PathwaySpec) -> Iterator[tuple[Path, timedelta | ParamRef | None]]:
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
    for name, need in spec.social_needs.items():
        yield ("social_needs", name, "refer_within"), need.refer_within
    for path, ladder in _ladders(spec):
        for k, rung in enumerate(ladder):
            yield (*path, k, "after"), rung.after


def _role_refs(spec: PathwaySpec) -> Iterator[tuple[Path, str]]:
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
        if t.reconcile:
            for k, role in enumerate(t.reconcile.critical_to):
                yield ("transitions", i, "reconcile", "critical_to", k), role
    for name, need in spec.social_needs.items():
        yield ("social_needs", name, "owner"), need.owner
    for path, ladder in _ladders(spec):
        for k, rung in enumerate(ladder):
            yield (*path, k, "to"), rung.to


def _event_uses(spec: PathwaySpec) -> Iterator[tuple[Path, str]]:
    for i, t in enumerate(spec.transitions):
        yield ("transitions", i, "event"), t.event
    for i, stage in enumerate(spec.stages):
        for j, task in enumerate(stage.on_entry):
            yield ("stages", i, "on_entry", j, "done_on"), task.done_on
        for j, series in enumerate(stage.check_ins):
            yield ("stages", i, "check_ins", j, "done_on"), series.done_on
        if stage.peer_support:
            yield ("stages", i, "peer_support", "done_on"), stage.peer_support.done_on
        if stage.family:
            yield ("stages", i, "family", "done_on"), stage.family.done_on


def _sources(spec: PathwaySpec, i: int) -> Iterator[tuple[Path, str]]:
    t = spec.transitions[i]
    if isinstance(t.from_, str):
        yield ("transitions", i, "from"), t.from_
    else:
        for k, stage in enumerate(t.from_):
            yield ("transitions", i, "from", k), stage


def _resolve(spec: PathwaySpec, value: timedelta | ParamRef | None) -> timedelta | None:
    """A literal duration, or a known parameter's literal default; None when there is nothing to compare."""
    if isinstance(value, ParamRef):
        param = spec.parameters.get(value.param)
        value = param.default if param else None
    return value if isinstance(value, timedelta) else None


def _show(value: timedelta | ParamRef, resolved: timedelta) -> str:
    return f"{value.param} ({show_duration(resolved)})" if isinstance(value, ParamRef) else show_duration(resolved)


# -- the checks -------------------------------------------------------------------------------------------------


def _identities(spec: PathwaySpec) -> Iterator[Finding]:
    seen: set[str] = set()
    for i, stage in enumerate(spec.stages):
        if stage.id in seen:
            yield Finding(("stages", i, "id"), f"duplicate stage id '{stage.id}'")
        seen.add(stage.id)
        tasks: set[str] = set()
        for j, task in enumerate(stage.on_entry):
            if task.id in tasks:
                yield Finding(
                    ("stages", i, "on_entry", j, "id"), f"duplicate task id '{task.id}' in stage '{stage.id}'"
                )
            tasks.add(task.id)
    for i, t in enumerate(spec.transitions):
        kinds: set[str] = set()
        for j, step in enumerate(t.handoff.steps if t.handoff else []):
            if step.kind in kinds:
                yield Finding(
                    ("transitions", i, "handoff", "steps", j, "kind"), f"duplicate handoff step '{step.kind}'"
                )
            kinds.add(step.kind)


def _stage_references(spec: PathwaySpec) -> Iterator[Finding]:
    stages = {s.id for s in spec.stages}
    for i, t in enumerate(spec.transitions):
        refs = [*_sources(spec, i), (("transitions", i, "to"), t.to)]
        if t.handoff and t.handoff.fallback is not None:
            refs.append((("transitions", i, "handoff", "fallback"), t.handoff.fallback))
        for path, stage in refs:
            if stage not in stages:
                yield Finding(path, unknown("stage", stage, stages))


def _role_references(spec: PathwaySpec) -> Iterator[Finding]:
    for path, role in _role_refs(spec):
        if role not in spec.roles:
            yield Finding(path, unknown("role", role, spec.roles))


def _task_references(spec: PathwaySpec) -> Iterator[Finding]:
    for i, stage in enumerate(spec.stages):
        tasks = {task.id for task in stage.on_entry}
        for k, task_id in enumerate(stage.before_leaving):
            if task_id not in tasks:
                yield Finding(("stages", i, "before_leaving", k), unknown("task", task_id, tasks))


def _parameters(spec: PathwaySpec) -> Iterator[Finding]:
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


def _durations(spec: PathwaySpec) -> Iterator[Finding]:
    for path, value in _durations_in(spec):
        if isinstance(value, ParamRef) and value.param not in spec.parameters:
            yield Finding(path, unknown("parameter", value.param, spec.parameters))
    for i, stage in enumerate(spec.stages):
        rng = stage.expected_duration
        if rng is None or rng.max is None:
            continue
        low, high = _resolve(spec, rng.min), _resolve(spec, rng.max)
        if low is not None and high is not None and low > high:
            yield Finding(
                ("stages", i, "expected_duration", "max"),
                f"max {_show(rng.max, high)} is less than min {_show(rng.min, low)}",
            )
    for path, ladder in _ladders(spec):
        previous: timedelta | None = None
        for k, rung in enumerate(ladder):
            after = _resolve(spec, rung.after)
            if after is None:
                continue
            if previous is not None and after <= previous:
                yield Finding(
                    (*path, k, "after"),
                    f"after {_show(rung.after, after)} is not later than the rung before ({show_duration(previous)})",
                )
            previous = after if previous is None else max(previous, after)


def _events(spec: PathwaySpec) -> Iterator[Finding]:
    known = set(spec.events) | set(BUILTIN_EVENTS)
    used: set[str] = set()
    for path, event in _event_uses(spec):
        used.add(event)
        if event not in known:
            yield Finding(path, unknown("event", event, known))
    for name, event in spec.events.items():
        sets_a_fact = any(field in spec.facts for field in event.payload)
        if name not in used and not sets_a_fact:
            yield Finding(("events", name), f"event '{name}' is declared but never used", "warning")
        for field, payload in event.payload.items():
            fact = spec.facts.get(field)
            if fact is not None and fact.type != payload.type:
                yield Finding(
                    ("events", name, "payload", field, "type"),
                    f"field '{field}' is {payload.type} but fact '{field}' is {fact.type}",
                    "warning",
                )


def _facts(spec: PathwaySpec) -> Iterator[Finding]:
    for name, fact in spec.facts.items():
        if fact.type == "enum" and not fact.values:
            yield Finding(("facts", name), f"enum fact '{name}' needs values")


def _guards(spec: PathwaySpec) -> Iterator[Finding]:
    for i, t in enumerate(spec.transitions):
        if t.when is not None:
            yield from _guard(spec, ("transitions", i, "when"), t.when)
        auth = t.handoff.authorization if t.handoff else None
        if auth is not None and auth.unless is not None:
            yield from _guard(spec, ("transitions", i, "handoff", "authorization", "unless"), auth.unless)


def _guard(spec: PathwaySpec, at: Path, guard: Guard) -> Iterator[Finding]:
    for path, test in fact_tests(guard, at):
        fact = spec.facts.get(test.fact)
        if fact is None:
            yield Finding((*path, "fact"), unknown("fact", test.fact, spec.facts))
            continue
        for op in ("at_least", "at_most"):
            if getattr(test, op) is not None and fact.type != "number":
                yield Finding((*path, op), f"{op} needs a number fact; '{test.fact}' is {fact.type}")
        for value_path, value in _compared_values(path, test):
            problem = _value_problem(test.fact, fact.type, fact.values, value)
            if problem:
                yield Finding(value_path, problem)


def _compared_values(path: Path, test: FactGuard) -> Iterator[tuple[Path, object]]:
    if test.equals is not None:
        yield (*path, "equals"), test.equals
    if test.not_equals is not None:
        yield (*path, "not_equals"), test.not_equals
    for k, value in enumerate(test.in_ or []):
        yield (*path, "in", k), value


def _value_problem(name: str, kind: str, values: list[str] | None, value: object) -> str | None:
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    if kind == "enum" and values and value not in values:
        return f"{shown} is not a value of '{name}' ({', '.join(values)})"
    if kind == "boolean" and not isinstance(value, bool):
        return f"{shown} is not true or false ('{name}' is boolean)"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"{shown} is not a number ('{name}' is number)"
    if kind in ("string", "date") and not isinstance(value, str):
        return f"{shown} is not a {kind} ('{name}' is {kind})"
    return None


def _check_ins(spec: PathwaySpec) -> Iterator[Finding]:
    for i, stage in enumerate(spec.stages):
        last = len(stage.check_ins) - 1
        for j, series in enumerate(stage.check_ins):
            at: Path = ("stages", i, "check_ins", j)
            if series.for_ is None and j != last:
                yield Finding(at, "only the last check-in series may omit 'for'")
            every, window = _resolve(spec, series.every), _resolve(spec, series.window)
            if every is not None and every <= timedelta(0):
                yield Finding((*at, "every"), "every must be longer than 0")
            elif every is not None and window is not None and window > every:
                yield Finding(
                    (*at, "window"),
                    f"window {show_duration(window)} is longer than every {show_duration(every)}; contacts overlap",
                    "warning",
                )


def _handoffs(spec: PathwaySpec) -> Iterator[Finding]:
    for i, t in enumerate(spec.transitions):
        if t.handoff and t.handoff.mode == "warm" and t.handoff.introduced_by is None:
            yield Finding(("transitions", i, "handoff"), "a warm handoff needs introduced_by")


def _nobody_alerted(spec: PathwaySpec) -> Iterator[Finding]:
    """Warnings: a deadline or a denial that would reach no role (the pathway still runs; the miss is only shown)."""
    for i, stage in enumerate(spec.stages):
        rng = stage.expected_duration
        if rng and rng.max is not None and not stage.terminal and stage.owner is None and not rng.escalate:
            yield Finding(
                ("stages", i, "expected_duration", "max"),
                f"stage '{stage.id}' has no owner: nobody would be alerted when a stay passes its max (add owner)",
                "warning",
            )
    for i, t in enumerate(spec.transitions):
        auth = t.handoff.authorization if t.handoff else None
        if auth and auth.required and not (auth.owner or auth.escalate or (t.handoff and t.handoff.introduced_by)):
            yield Finding(
                ("transitions", i, "handoff", "authorization"),
                "authorization has no owner: nobody would be alerted of a denial (add owner)",
                "warning",
            )


def _graph(spec: PathwaySpec) -> Iterator[Finding]:
    stages = {s.id for s in spec.stages}
    edges: dict[str, set[str]] = {s: set() for s in stages}
    for t in spec.transitions:
        targets = {t.to} | ({t.handoff.fallback} if t.handoff and t.handoff.fallback else set())
        for source in t.sources:
            if source in edges:
                edges[source] |= targets & stages
    first = spec.stages[0].id
    reached = {first}
    queue = deque([first])
    while queue:
        for nxt in edges[queue.popleft()] - reached:
            reached.add(nxt)
            queue.append(nxt)
    terminal = {s.id for s in spec.stages if s.terminal}
    leaving = {source for t in spec.transitions for source in t.sources}
    reported: set[str] = set()
    for i, stage in enumerate(spec.stages):
        if stage.id in reported:
            continue
        reported.add(stage.id)
        if stage.id not in reached:
            yield Finding(("stages", i), f"stage '{stage.id}' cannot be reached from '{first}'")
        if stage.id not in leaving and stage.id not in terminal:
            yield Finding(("stages", i), f"stage '{stage.id}' has no way out and is not terminal")
    for i, t in enumerate(spec.transitions):
        for path, source in _sources(spec, i):
            if source in terminal:
                yield Finding(path, f"transition leaves terminal stage '{source}'")
        if t.to in t.sources and t.when is None:
            yield Finding(("transitions", i, "to"), f"transition from '{t.to}' to itself has no guard", "warning")


def _dead_transitions(spec: PathwaySpec) -> Iterator[Finding]:
    unguarded: dict[tuple[str, str], int] = {}
    for i, t in enumerate(spec.transitions):
        for source in dict.fromkeys(t.sources):
            first = unguarded.get((source, t.event))
            if first is not None:
                yield Finding(
                    ("transitions", i, "event"),
                    f"never fires: transitions[{first}] already leaves '{source}' on '{t.event}' without a guard",
                )
            elif t.when is None:
                unguarded[(source, t.event)] = i
