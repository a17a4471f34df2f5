"""Meaning check of the ``measures:`` key: an event the measures count must be one the episodes accept.

Unknown names are :func:`.references.check_events`'s (the key's events are event uses like any other). This adds
a warning: an event named only under ``measures:`` that no move, task, check-in or peer contact ends on and that
is not ``record_anywhere`` would be refused by every episode ("not expected in stage ..."), so the measure
could never count it.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import Finding
from engine.language.builtins import BUILTIN_EVENTS
from engine.language.model import PathwaySpec
from engine.language.semantics.walk import event_uses, measure_events

__all__ = ["check_measure_events"]


def check_measure_events(spec: PathwaySpec) -> Iterator[Finding]:
    accepted = {name for path, name in event_uses(spec) if path[0] != "measures"} | set(BUILTIN_EVENTS)
    accepted |= {name for name, event in spec.events.items() if event.record_anywhere}
    warned: set[str] = set()
    for path, name in measure_events(spec):
        if name in spec.events and name not in accepted and name not in warned:
            warned.add(name)
            yield Finding(
                path,
                f"no move or work ends on '{name}', so episodes refuse it and the measures never see it: "
                "give the event record_anywhere: true",
                "warning",
            )
