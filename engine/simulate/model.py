"""The behaviour model: how the simulated people and programs act, read from a small YAML file.

Checked against the pathway it drives, every problem reported as a :class:`~engine.errors.Diagnostic`
(``model.yaml:3:22: error: $.events['handoff.acepted']: unknown event ... (did you mean 'handoff.accepted'?)``),
never a traceback. What a model leaves out takes the defaults of :class:`BehaviourModel` and the default rule of
:mod:`engine.simulate.driver` (both in the README, *Simulating a cohort*).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from engine.errors import CarepathError, Diagnostic, format_path
from engine.language.durations import parse_duration
from engine.language.positions import SourceMap
from engine.language.source import parse_yaml
from engine.language.suggest import hint
from engine.plan.model import Plan

__all__ = [
    "Behaviour",
    "BehaviourModel",
    "Delay",
    "ModelError",
    "default_model",
    "for_plan",
    "parse_delay",
    "parse_model",
]


class ModelError(CarepathError):
    """A behaviour model file cannot be used; ``diagnostics`` holds every problem found, sorted."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


@dataclass(frozen=True)
class Delay:
    """A delay distribution: ``fixed(d)``, ``uniform(a, b)``, ``exponential(mean)``, ``lognormal(median, sigma)``."""

    kind: str
    a: float  # seconds (the median for lognormal, the mean for exponential)
    b: float = 0.0  # seconds (uniform), or sigma (lognormal)

    def draw(self, rng: random.Random) -> timedelta:
        if self.kind == "uniform":
            seconds = rng.uniform(self.a, self.b)
        elif self.kind == "exponential":
            seconds = rng.expovariate(1 / self.a) if self.a > 0 else 0.0
        elif self.kind == "lognormal":
            seconds = rng.lognormvariate(math.log(self.a), self.b) if self.a > 0 else 0.0
        else:
            seconds = self.a
        return timedelta(seconds=round(min(seconds, 3650 * 86400.0)))  # whole seconds: what every store keeps

    def __str__(self) -> str:
        show = _show
        if self.kind == "uniform":
            return f"uniform({show(self.a)}, {show(self.b)})"
        if self.kind == "lognormal":
            return f"lognormal({show(self.a)}, {self.b:g})"
        return f"{self.kind}({show(self.a)})"


def _show(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds / 3600:g}h"


_DELAY = re.compile(r"^\s*(fixed|uniform|exponential|lognormal)\s*\(([^()]*)\)\s*$")
_ARITY = {"fixed": 1, "exponential": 1, "uniform": 2, "lognormal": 2}


def parse_delay(text: object) -> Delay:
    """``lognormal(18h, 0.6)`` (median, sigma), ``uniform(1d, 5d)``, ``exponential(8h)`` (mean), ``fixed(2h)`` or a
    plain duration (``2h``); raises ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a delay (e.g. lognormal(18h, 0.6), uniform(1d, 5d), exponential(8h))")
    found = _DELAY.match(text)
    if found is None:
        try:
            return Delay("fixed", parse_duration(text).total_seconds())
        except ValueError:
            raise ValueError(
                f"'{text}' is not a delay: write fixed(2h), uniform(1d, 5d), exponential(8h) or lognormal(18h, 0.6)"
            ) from None
    kind, args = found.group(1), [a.strip() for a in found.group(2).split(",")]
    if len(args) != _ARITY[kind]:
        raise ValueError(f"{kind}() takes {_ARITY[kind]} argument{'s' if _ARITY[kind] > 1 else ''}, got {len(args)}")
    first = parse_duration(args[0]).total_seconds()
    if kind == "uniform":
        second = parse_duration(args[1]).total_seconds()
        if second < first:
            raise ValueError(f"uniform({args[0]}, {args[1]}): the upper bound is below the lower")
        return Delay(kind, first, second)
    if kind == "lognormal":
        try:
            sigma = float(args[1])
        except ValueError:
            raise ValueError(f"lognormal sigma '{args[1]}' is not a number (e.g. 0.6)") from None
        if not 0 <= sigma <= 5:
            raise ValueError(f"lognormal sigma {sigma:g} is outside 0..5")
        return Delay(kind, first, sigma)
    return Delay(kind, first)


@dataclass(frozen=True)
class Behaviour:
    """One event's behaviour: the chance it happens (per work item, or per stage visit for a move) and when;
    ``data`` weights the values of payload fields (``{needs_withdrawal_management: {true: 0.3, false: 0.7}}``)."""

    p: float
    after: Delay | None = None
    data: Mapping[str, Mapping[Any, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class BehaviourModel:
    """A whole model; see the README's *Simulating a cohort* for each key and its default."""

    events: Mapping[str, Behaviour] = field(default_factory=dict)
    consent: float = 0.9
    acknowledge: Behaviour = Behaviour(0.9, Delay("lognormal", 2 * 3600.0, 0.8))
    enrollment_facts: Mapping[str, Mapping[Any, float]] = field(default_factory=dict)
    relapse_per_week: float = 0.02
    relapse_event: str | None = "relapse.reported"
    on_moud: float = 0.8
    receiving_omits: float = 0.1
    arrivals_over: timedelta = timedelta(days=30)
    #: the default rule's chance that a work item's event happens at all
    work_p: float = 0.9


def for_plan(model: BehaviourModel, plan: Plan) -> BehaviourModel:
    """``model`` for another version of its pathway: what names an event or fact ``plan`` lacks is left out."""
    events = {name: b for name, b in model.events.items() if name in plan.events}
    facts = {name: w for name, w in model.enrollment_facts.items() if name in plan.facts}
    relapse = model.relapse_event if model.relapse_event in plan.events else None
    return replace(model, events=events, enrollment_facts=facts, relapse_event=relapse)


def default_model(plan: Plan) -> BehaviourModel:
    """The defaults, fitted to ``plan`` (no return to use when the pathway has no ``relapse.reported``)."""
    return BehaviourModel(relapse_event="relapse.reported" if "relapse.reported" in plan.events else None)


_TOP = ("events", "consent", "acknowledge", "enrollment_facts", "return_to_use", "medications", "arrivals", "work")
_KEYS: dict[str, tuple[str, ...]] = {
    "event": ("p", "after", "data"),
    "consent": ("p",),
    "acknowledge": ("p", "after"),
    "return_to_use": ("per_week", "event"),
    "medications": ("on_moud", "receiving_omits"),
    "arrivals": ("over",),
    "work": ("p",),
}


class _Reader:
    """Walks the parsed model, collecting every problem with its position."""

    def __init__(self, file: str, source_map: SourceMap, plan: Plan) -> None:
        self.file, self.map, self.plan = file, source_map, plan
        self.problems: list[Diagnostic] = []

    def problem(self, path: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        line, col = self.map.locate_key(path) if key else self.map.locate(path)
        self.problems.append(Diagnostic(self.file, line, col, format_path(path), message))

    def mapping(self, value: Any, path: tuple[str | int, ...], keys: tuple[str, ...] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        if keys is not None:
            for k in value:
                if k not in keys:
                    self.problem(
                        (*path, k), f"unexpected key '{k}'{hint(k, keys)} (known: {', '.join(keys)})", key=True
                    )
        return value

    def chance(self, value: Any, path: tuple[str | int, ...], default: float) -> float:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            self.problem(path, f"{value!r} is not a chance between 0 and 1")
            return default
        return float(value)

    def delay(self, value: Any, path: tuple[str | int, ...]) -> Delay | None:
        if value is None:
            return None
        try:
            return parse_delay(value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None

    def weights(self, value: Any, path: tuple[str | int, ...], allowed: list[Any] | None) -> dict[Any, float]:
        """Weighted values (``{medicaid: 0.7, commercial: 0.3}``); a boolean takes the chance of true (``0.3``) or
        ``{"true": 0.3, "false": 0.7}`` (YAML reads a bare true as a boolean key, which Carepath refuses)."""
        out: dict[Any, float] = {}
        if allowed == [True, False]:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return {True: self.chance(value, path, 0.5), False: 1 - self.chance(value, path, 0.5)}
            if isinstance(value, dict):
                value = {{"true": True, "false": False}.get(str(k).lower(), k): v for k, v in value.items()}
        for choice, weight in self.mapping(value, path, None).items():
            if allowed is not None and choice not in allowed:
                shown = ", ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
                message = f"'{choice}' is not one of {shown}{hint(str(choice), map(str, allowed))}"
                self.problem((*path, choice), message, key=True)
            elif isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                self.problem((*path, choice), f"weight {weight!r} is not a number >= 0")
            else:
                out[choice] = float(weight)
        if out and not sum(out.values()):
            self.problem(path, "the weights add up to 0")
        return out

    def event_name(self, name: Any, path: tuple[str | int, ...], *, key: bool) -> bool:
        if name in self.plan.events:
            return True
        near = hint(name, self.plan.events)
        self.problem(path, f"unknown event '{name}'{near}: not an event of pathway '{self.plan.pathway_id}'", key=key)
        return False


def _rejoin(body: dict[str, Any]) -> dict[str, Any]:
    """``{ p: 0.7, after: uniform(1d, 5d) }``: in a one-line mapping YAML ends a value at a comma, leaving
    ``after: 'uniform(1d'`` and a key ``'5d)'`` with no value; put the two halves back together."""
    after = body.get("after")
    if not (isinstance(after, str) and "(" in after and ")" not in after):
        return body
    keys = list(body)
    rest = keys[keys.index("after") + 1 :]
    if rest and body[rest[0]] is None and str(rest[0]).endswith(")"):
        joined = {k: v for k, v in body.items() if k != rest[0]}
        joined["after"] = f"{after}, {rest[0]}"
        return joined
    return body


def _allowed(declared: Mapping[str, Any]) -> list[Any] | None:
    kind = declared.get("type")
    if kind == "enum":
        return list(declared.get("values") or [])
    return [True, False] if kind == "boolean" else None


def _events(r: _Reader, value: Any) -> dict[str, Behaviour]:
    out: dict[str, Behaviour] = {}
    for name, entry in r.mapping(value, ("events",), None).items():
        path: tuple[str | int, ...] = ("events", name)
        if not r.event_name(name, path, key=True):
            continue
        body = r.mapping(_rejoin(entry) if isinstance(entry, dict) else entry, path, _KEYS["event"])
        fields: Mapping[str, Any] = r.plan.events[name].get("payload") or {}
        data = {}
        for fname, weights in r.mapping(body.get("data", {}), (*path, "data"), None).items():
            if fname not in fields:
                known = ", ".join(fields) or "none"
                r.problem((*path, "data", fname), f"event '{name}' has no field '{fname}'{hint(fname, fields)} "
                          f"(fields: {known})", key=True)  # fmt: skip
                continue
            data[fname] = r.weights(weights, (*path, "data", fname), _allowed(fields[fname]))
        out[name] = Behaviour(
            r.chance(body.get("p"), (*path, "p"), 1.0), r.delay(body.get("after"), (*path, "after")), data
        )
    return out


def _blank(source: str | bytes) -> bool:
    try:
        text = source.decode("utf-8-sig") if isinstance(source, bytes) else source
    except UnicodeDecodeError:
        return False
    return len(text) < 100_000 and all(not line.strip() or line.strip().startswith("#") for line in text.splitlines())


def parse_model(source: str | bytes, plan: Plan, *, file: str = "model.yaml") -> BehaviourModel:
    """Check a model's text against ``plan`` and build it; raises :class:`ModelError` with every problem found."""
    if _blank(source):
        return default_model(plan)  # an empty model (or only comments): every default
    parsed = parse_yaml(source)
    if parsed.problems:
        raise ModelError([Diagnostic(file, p.line, p.col, format_path(p.path), p.message) for p in parsed.problems])
    r = _Reader(file, parsed.source_map, plan)
    base = default_model(plan)
    top = r.mapping({} if parsed.value is None else parsed.value, (), _TOP)
    events = _events(r, top.get("events", {}))
    consent = r.mapping(top.get("consent", {}), ("consent",), _KEYS["consent"])
    ack_value = top.get("acknowledge", {})
    ack = r.mapping(
        _rejoin(ack_value) if isinstance(ack_value, dict) else ack_value, ("acknowledge",), _KEYS["acknowledge"]
    )
    relapse = r.mapping(top.get("return_to_use", {}), ("return_to_use",), _KEYS["return_to_use"])
    meds = r.mapping(top.get("medications", {}), ("medications",), _KEYS["medications"])
    arrivals = r.mapping(top.get("arrivals", {}), ("arrivals",), _KEYS["arrivals"])
    work = r.mapping(top.get("work", {}), ("work",), _KEYS["work"])
    facts: dict[str, dict[Any, float]] = {}
    for name, weights in r.mapping(top.get("enrollment_facts", {}), ("enrollment_facts",), None).items():
        if name not in plan.facts:
            known = ", ".join(plan.facts) or "none"
            r.problem(
                ("enrollment_facts", name), f"unknown fact '{name}'{hint(name, plan.facts)} (facts: {known})", key=True
            )
            continue
        facts[name] = r.weights(weights, ("enrollment_facts", name), _allowed(plan.facts[name]))
    relapse_event = relapse.get("event", base.relapse_event)
    if "event" in relapse and not r.event_name(relapse_event, ("return_to_use", "event"), key=False):
        relapse_event = None
    per_week = relapse.get("per_week", base.relapse_per_week)
    if isinstance(per_week, bool) or not isinstance(per_week, int | float) or not 0 <= per_week <= 7:
        r.problem(("return_to_use", "per_week"), f"{per_week!r} is not a rate per week between 0 and 7")
        per_week = base.relapse_per_week
    over = base.arrivals_over
    if "over" in arrivals:
        try:
            over = parse_duration(arrivals["over"])
        except ValueError as exc:
            r.problem(("arrivals", "over"), str(exc))
    default_ack = base.acknowledge
    model = BehaviourModel(
        events=events,
        consent=r.chance(consent.get("p"), ("consent", "p"), base.consent),
        acknowledge=Behaviour(
            r.chance(ack.get("p"), ("acknowledge", "p"), default_ack.p),
            r.delay(ack.get("after"), ("acknowledge", "after")) or default_ack.after,
        ),
        enrollment_facts=facts,
        relapse_per_week=float(per_week),
        relapse_event=relapse_event,
        on_moud=r.chance(meds.get("on_moud"), ("medications", "on_moud"), base.on_moud),
        receiving_omits=r.chance(meds.get("receiving_omits"), ("medications", "receiving_omits"), base.receiving_omits),
        arrivals_over=over,
        work_p=r.chance(work.get("p"), ("work", "p"), base.work_p),
    )
    if r.problems:
        raise ModelError(r.problems)
    return model
