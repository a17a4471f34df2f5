"""Meaning checks about names: ids are unique, and every stage, role, task, event and fact a pathway refers to is
declared (with "did you mean"); guards compare facts with values of the facts' types.

Warnings here: an event declared but never used, a payload field typed unlike the fact it sets.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import Finding
from engine.language.builtins import BUILTIN_EVENTS
from engine.language.fields import ParamRef
from engine.language.guards import fact_tests, time_tests
from engine.language.model import FactGuard, FactRef, Guard, PathwaySpec
from engine.language.positions import Path
from engine.language.semantics.walk import anchors, event_uses, guards, role_refs, sources
from engine.language.suggest import hint, unknown

__all__ = [
    "check_event_lists",
    "check_events",
    "check_fact_moments",
    "check_facts",
    "check_guards",
    "check_identities",
    "check_missed_deadlines",
    "check_role_references",
    "check_stage_references",
    "check_task_references",
]


def check_identities(spec: PathwaySpec) -> Iterator[Finding]:
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


def check_stage_references(spec: PathwaySpec) -> Iterator[Finding]:
    stages = {s.id for s in spec.stages}
    for i, t in enumerate(spec.transitions):
        refs = [*sources(spec, i), (("transitions", i, "to"), t.to)]
        if t.handoff and t.handoff.fallback is not None:
            refs.append((("transitions", i, "handoff", "fallback"), t.handoff.fallback))
        for path, stage in refs:
            if stage not in stages:
                yield Finding(path, unknown("stage", stage, stages))


def check_role_references(spec: PathwaySpec) -> Iterator[Finding]:
    for path, role in role_refs(spec):
        if role not in spec.roles:
            yield Finding(path, unknown("role", role, spec.roles))


def check_task_references(spec: PathwaySpec) -> Iterator[Finding]:
    for i, stage in enumerate(spec.stages):
        tasks = {task.id for task in stage.on_entry}
        for k, task_id in enumerate(stage.before_leaving):
            if task_id not in tasks:
                yield Finding(("stages", i, "before_leaving", k), unknown("task", task_id, tasks))


def check_events(spec: PathwaySpec) -> Iterator[Finding]:
    known = set(spec.events) | set(BUILTIN_EVENTS)
    used: set[str] = set()
    for path, name in event_uses(spec):
        used.add(name)
        if name not in known:
            yield Finding(path, unknown("event", name, known))
    for name, declared in spec.events.items():
        sets_a_fact = any(field in spec.facts for field in declared.payload)
        if name not in used and not sets_a_fact and not declared.record_anywhere:
            yield Finding(("events", name), f"event '{name}' is declared but never used", "warning")
        for field, payload in declared.payload.items():
            fact = spec.facts.get(field)
            if fact is not None and fact.type != payload.type:
                yield Finding(
                    ("events", name, "payload", field, "type"),
                    f"field '{field}' is {payload.type} but fact '{field}' is {fact.type}",
                    "warning",
                )


def check_missed_deadlines(spec: PathwaySpec) -> Iterator[Finding]:
    """``on_missed`` names an entry task of every source stage or a step of a handoff into each of them."""
    for i, t in enumerate(spec.transitions):
        if t.on_missed is None:
            continue
        for source in t.sources:
            stage = next((s for s in spec.stages if s.id == source), None)
            if stage is None:
                continue
            known = {task.id for task in stage.on_entry}
            known |= {step.kind for u in spec.transitions if u.to == source and u.handoff for step in u.handoff.steps}
            if t.on_missed not in known:
                what = f"'{t.on_missed}' is no entry task of '{source}' nor a step of a handoff into it"
                yield Finding(("transitions", i, "on_missed"), what + hint(t.on_missed, known))
                break


def check_event_lists(spec: PathwaySpec) -> Iterator[Finding]:
    """An event named twice in one move's list is a slip (the second adds nothing)."""
    for i, t in enumerate(spec.transitions):
        if isinstance(t.event, list):
            for k, name in enumerate(t.event):
                if name in t.event[:k]:
                    yield Finding(("transitions", i, "event", k), f"event '{name}' is listed twice")


def check_facts(spec: PathwaySpec) -> Iterator[Finding]:
    for name, fact in spec.facts.items():
        if fact.type == "enum" and not fact.values:
            yield Finding(("facts", name), f"enum fact '{name}' needs values")


def check_guards(spec: PathwaySpec) -> Iterator[Finding]:
    for path, guard in guards(spec):
        yield from _guard(spec, path, guard)
        for at, test in time_tests(guard, path):
            for op in ("at_least", "at_most"):
                if isinstance(getattr(test, op), ParamRef):
                    yield Finding(
                        (*at, op), f"a time test needs a duration (e.g. 24h), not parameter '{getattr(test, op)}'"
                    )


def check_fact_moments(spec: PathwaySpec) -> Iterator[Finding]:
    """A ``from`` or ``since`` naming a fact needs a declared date fact."""
    for path, anchor in anchors(spec):
        if not isinstance(anchor, FactRef):
            continue
        fact = spec.facts.get(anchor.fact)
        if fact is None:
            yield Finding((*path, "fact"), unknown("fact", anchor.fact, spec.facts))
        elif fact.type != "date":
            yield Finding((*path, "fact"), f"a moment needs a date fact; '{anchor.fact}' is {fact.type}")


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
