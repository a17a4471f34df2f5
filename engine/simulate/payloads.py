"""Synthetic payloads that pass the pathway's checks: required fields present, enums and booleans valid.

What :func:`engine.episode.payloads.check_payload` and :func:`engine.app.inputs.check_payload` refuse, this never
writes: every required field gets a value of its declared type (an enum one of its values, the person's MOUD when it is
one of them; a number inside ``min``/``max``, without either the whole days since enrollment, e.g. ``days_on_moud``),
optional fields are left out unless the model weights them, and the
built-in fields (``handoff``, ``to``) are left to the rules to infer.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.plan.model import Plan

__all__ = ["medication_names", "pick", "synthetic_payload"]


def pick(rng: random.Random, weights: Mapping[Any, float]) -> Any:
    """One value drawn by weight (weights need not add up to 1)."""
    total = sum(weights.values())
    x = rng.random() * total
    for value, weight in weights.items():
        x -= weight
        if x < 0:
            return value
    return next(reversed(list(weights)))


def medication_names(plan: Plan) -> list[str]:
    """The pathway's MOUD names (critical medications of class MOUD), else all its critical medications."""
    moud = [str(m["name"]) for m in plan.critical_medications if str(m.get("class", "")).upper() == "MOUD"]
    return moud or [str(m["name"]) for m in plan.critical_medications]


def _value(field: str, spec: Mapping[str, Any], rng: random.Random, facts: Mapping[str, Any], moud: str | None,
           at: datetime, since: datetime) -> Any:  # fmt: skip
    kind = spec.get("type")
    if kind == "enum":
        values = list(spec.get("values") or [])
        if moud in values:
            return moud
        return facts[field] if facts.get(field) in values else rng.choice(values)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "number":
        low, high = spec.get("min"), spec.get("max")
        if low is None and high is None:
            return max((at - since).days, 0)  # a count with no bounds (days_on_moud): the days in the episode so far
        lo = int(low) if low is not None else 0
        hi = int(high) if high is not None else lo + 30
        return rng.randint(lo, max(lo, hi))
    if kind == "date":
        return at.date().isoformat()
    if kind == "list":
        return []
    return f"simulated {field}".replace("_", " ")


def synthetic_payload(
    plan: Plan,
    name: str,
    rng: random.Random,
    *,
    weights: Mapping[str, Mapping[Any, float]],
    facts: Mapping[str, Any],
    moud: str | None,
    at: datetime,
    since: datetime,
    match: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A valid payload for event ``name``: ``match`` (what a work item waits for, e.g. ``need: housing``) first, then
    the model's weighted fields, then a value for every other required field."""
    event = plan.events.get(name, {})
    fields: Mapping[str, Mapping[str, Any]] = event.get("payload") or {}
    data: dict[str, Any] = dict(match or {})
    for field, spec in fields.items():
        if field in data:
            continue
        if weights.get(field):
            data[field] = pick(rng, weights[field])
        elif field == "need" and event.get("builtin"):
            data[field] = rng.choice(sorted(plan.referrals)) if plan.referrals else "housing"
        elif spec.get("required", True) and not (event.get("builtin") and field in ("handoff", "to")):
            data[field] = _value(field, spec, rng, facts, moud, at, since)
    return data
