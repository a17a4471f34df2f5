"""Meaning checks over the stage graph: every stage reachable from the first, a way out of every stage that is not
terminal, nothing leaving a terminal stage, and no transition that can never fire (an unguarded move on the same
stage and event comes first). Warnings: a move from a stage to itself without a guard; an ``on_handoff: declined``
move out of a stage every handoff into which has a ``fallback`` (the fallback wins on a decline).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from engine.errors import Finding
from engine.language.model import PathwaySpec
from engine.language.semantics.walk import sources

__all__ = ["check_dead_transitions", "check_declines_with_fallback", "check_graph"]


def check_graph(spec: PathwaySpec) -> Iterator[Finding]:
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
        for path, source in sources(spec, i):
            if source in terminal:
                yield Finding(path, f"transition leaves terminal stage '{source}'")
        if t.to in t.sources and t.when is None:
            yield Finding(("transitions", i, "to"), f"transition from '{t.to}' to itself has no guard", "warning")


def check_dead_transitions(spec: PathwaySpec) -> Iterator[Finding]:
    unguarded: dict[tuple[str, str], int] = {}
    for i, t in enumerate(spec.transitions):
        for source in dict.fromkeys(t.sources):
            for k, event in enumerate(t.events):
                if event in t.events[:k]:
                    continue  # listed twice: reported by the event checks
                first = unguarded.get((source, event))
                at: tuple[str | int, ...] = ("transitions", i, "event") + ((k,) if isinstance(t.event, list) else ())
                if first is not None:
                    yield Finding(
                        at, f"never fires: transitions[{first}] already leaves '{source}' on '{event}' without a guard"
                    )
                elif t.when is None:
                    unguarded[(source, event)] = i


def check_declines_with_fallback(spec: PathwaySpec) -> Iterator[Finding]:
    """A move on a declined handoff never fires where the handoff itself says where to go on a decline."""
    for i, t in enumerate(spec.transitions):
        ends = [t.on_handoff] if isinstance(t.on_handoff, str) else list(t.on_handoff or [])
        if "declined" not in ends:
            continue
        at: tuple[str | int, ...] = ("transitions", i, "on_handoff")
        at += (ends.index("declined"),) if isinstance(t.on_handoff, list) else ()
        for source in dict.fromkeys(t.sources):
            into = [(j, u) for j, u in enumerate(spec.transitions) if u.to == source and u.handoff is not None]
            if into and all(u.handoff is not None and u.handoff.fallback for _j, u in into):
                j, u = into[0]
                fallback = u.handoff.fallback if u.handoff else None
                yield Finding(
                    at,
                    f"never fires on 'declined' from '{source}': the handoff into it (transitions[{j}]) has "
                    f"fallback '{fallback}', which wins on a decline",
                    "warning",
                )
