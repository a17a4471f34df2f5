"""An event's payload checked against its declaration (or a built-in's fields) before anything changes.

Any event may also carry ``occurred_at`` (when it happened, ISO 8601), never declared: deadlines' ``from`` and time
guards count from it.
"""

from __future__ import annotations

from typing import Any

from engine.episode.state import Event
from engine.errors import EventRejected
from engine.language.builtins import BUILTIN_EVENTS
from engine.language.moments import OCCURRED_AT, parse_moment
from engine.plan.model import Plan

__all__ = ["check_payload"]


def _payload_spec(plan: Plan, name: str) -> dict[str, dict[str, Any]]:
    if name in plan.events:
        return plan.events[name].get("payload", {})
    return {field: {"type": kind, "required": False} for field, kind in BUILTIN_EVENTS[name].items()}


def check_payload(plan: Plan, event: Event) -> None:
    """Refuse (:class:`EventRejected`) an undeclared event or a payload unlike its declaration."""
    if event.name not in plan.events and event.name not in BUILTIN_EVENTS:
        raise EventRejected(f"event '{event.name}' is not declared by pathway '{plan.pathway_id}'")
    spec = _payload_spec(plan, event.name)
    problems = [f"unexpected field '{k}'" for k in event.data if k not in spec and k != OCCURRED_AT]
    occurred = event.data.get(OCCURRED_AT)
    if occurred is not None and parse_moment(occurred) is None:
        problems.append(f"'{OCCURRED_AT}' must be an ISO 8601 date or time")
    for field, fs in spec.items():
        value = event.data.get(field)
        if value is None:
            if fs.get("required", True):
                problems.append(f"missing field '{field}'")
        elif fs.get("type") == "enum" and str(value) not in (fs.get("values") or []):
            problems.append(f"'{field}' must be one of {', '.join(fs.get('values') or [])}")
        elif fs.get("type") == "boolean" and not isinstance(value, bool):
            problems.append(f"'{field}' must be true or false")
        elif fs.get("type") == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"'{field}' must be a number")
    if problems:
        raise EventRejected(f"event '{event.name}': " + "; ".join(problems))
