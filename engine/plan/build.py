"""The compiled plan: a pure, Prefect-free description of what a pathway schedules and when.

A plan is what the orchestration layer runs. Every piece of work is a :class:`WorkPlan` with a stable ``key``,
an owner role, a deadline offset from its trigger (a transition or entering a stage), the event that meets it
and its escalation rungs as absolute offsets from the same trigger. Recurring contacts are
:class:`CheckInSeriesPlan` (expanded one occurrence at a time at run time, so open-ended series stay finite).
Parameters are resolved here, so nothing downstream sees a :class:`engine.language.fields.ParamRef`.

``compile_plan(spec, params)`` builds a plan from a validated :class:`engine.language.model.PathwaySpec`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from engine.errors import PlanError
from engine.language.builtins import BUILTIN_EVENTS, STEPS_BY_KIND
from engine.language.durations import show_duration
from engine.language.fields import ParamRef
from engine.language.model import Guard, PathwaySpec, RungSpec, StageSpec, TransitionSpec

__all__ = [
    "STAY_DONE_ON",
    "CheckInSeriesPlan",
    "HandoffPlan",
    "Plan",
    "RungPlan",
    "StagePlan",
    "TransitionPlan",
    "WorkKind",
    "WorkPlan",
    "compile_plan",
]

WorkKind = Literal[
    "handoff-step",
    "authorization",
    "reconcile",
    "task",
    "peer-contact",
    "family-update",
    "referral",
    "consent",
    "re-engagement",
    "alert",
    "stay",
]
#: What ends a stage's stay deadline (no event: leaving the stage does); shown where an event name would be.
STAY_DONE_ON = "leaving the stage"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RungPlan(_Frozen):
    """An escalation rung: at ``at`` after the trigger (deadline + rung's ``after``), alert role ``to``."""

    index: int
    at: timedelta
    to: str


class WorkPlan(_Frozen):
    """One piece of work with a deadline, met by ``done_on`` (an event name) and escalated by ``ladder``.

    ``match`` narrows which events meet it (e.g. ``{"need": "housing"}`` for a referral). ``consent_purpose``
    is set where doing the work discloses information about the person.
    """

    key: str
    kind: WorkKind
    title: str
    owner: str | None
    due: timedelta
    done_on: str
    match: dict[str, str] = {}
    ladder: tuple[RungPlan, ...] = ()
    consent_purpose: str | None = None
    #: Recurring work (family updates): once met or missed, the next one is due ``every`` later.
    every: timedelta | None = None
    #: No work is needed when this guard holds over the episode facts (authorization ``unless``, e.g. self-pay).
    skip_if: Guard | None = None
    #: Roles alerted at once on a critical discrepancy (medication reconciliation).
    critical_to: tuple[str, ...] = ()


class CheckInSeriesPlan(_Frozen):
    """Recurring contacts: occurrence k opens at ``starts + k*every`` and is due ``window`` later.

    ``span`` None means until the stage is left. Series of a stage follow one another (``starts`` is the sum
    of earlier spans). The ladder's offsets count from each occurrence's opening (window + the rung's ``after``);
    a series written without a ladder gets one rung alerting its owner when the window closes, so a missed
    contact is always seen.
    """

    key: str
    owner: str
    every: timedelta
    window: timedelta
    starts: timedelta
    span: timedelta | None
    done_on: str
    ladder: tuple[RungPlan, ...] = ()


class HandoffPlan(_Frozen):
    """The receiving side of a handoff and how it is made."""

    program: str
    role: str
    mode: Literal["warm", "standard"]
    introduced_by: str | None
    consent_purpose: str
    re_engage_within: timedelta | None = None
    fallback: str | None = None
    #: The wait for a consent when none covers the referral (opened only then).
    consent: WorkPlan | None = None


class StagePlan(_Frozen):
    """A stage with the work scheduled on entering it (a ``max`` stay is its ``stay`` work, ``s.<stage>.stay``)."""

    id: str
    name: str
    level: str | None
    terminal: bool
    min_stay: timedelta | None
    max_stay: timedelta | None
    entry_work: tuple[WorkPlan, ...]
    check_ins: tuple[CheckInSeriesPlan, ...]
    before_leaving: tuple[str, ...]


class TransitionPlan(_Frozen):
    """A move: from one of ``sources`` to ``target`` on ``event`` if ``guard`` holds, with its own work."""

    index: int
    sources: tuple[str, ...]
    target: str
    event: str
    guard: Guard | None
    handoff: HandoffPlan | None
    work: tuple[WorkPlan, ...]


class Plan(_Frozen):
    """The whole compiled pathway; its ``schedule`` of a transition is the ordered work the move starts."""

    pathway_id: str
    version: int
    title: str
    description: str
    initial_stage: str
    parameters: dict[str, timedelta]
    stages: dict[str, StagePlan]
    transitions: tuple[TransitionPlan, ...]
    events: dict[str, dict[str, Any]]
    facts: dict[str, dict[str, Any]]
    referrals: dict[str, WorkPlan]
    critical_medications: tuple[dict[str, Any], ...]

    def transitions_on(self, stage: str, event: str) -> list[TransitionPlan]:
        """Transitions leaving ``stage`` on ``event``, in file order (the first whose guard holds wins)."""
        return [t for t in self.transitions if stage in t.sources and t.event == event]

    def schedule(self, transition: TransitionPlan) -> list[WorkPlan]:
        """All work a transition starts (its own and the target stage's entry work), ordered by deadline."""
        work = list(transition.work) + list(self.stages[transition.target].entry_work)
        return sorted(work, key=lambda w: (w.due, w.key))


def compile_plan(spec: PathwaySpec, params: dict[str, timedelta] | None = None) -> Plan:
    """Compile a validated pathway spec into a :class:`Plan`, resolving parameters (defaults if not given).

    ``params`` overrides parameter defaults for one episode; an unknown name or a value outside the parameter's
    ``min``/``max`` raises :class:`PlanError`. The spec is expected to have passed
    :func:`engine.language.semantics.check`.
    """
    values = _parameters(spec, params or {})
    c = _Compiler(values)
    stages = {stage.id: c.stage(stage) for stage in spec.stages}
    transitions = [c.transition(i, t) for i, t in enumerate(spec.transitions)]
    referrals = {
        need: c.work(
            f"r.{need}",
            "referral",
            f"{need.capitalize()} referral",
            rule.owner,
            rule.refer_within,
            "referral.made",
            rule.escalate,
            match={"need": need},
        )
        for need, rule in spec.social_needs.items()
    }
    return Plan.model_validate(
        {
            "pathway_id": spec.id,
            "version": spec.version,
            "title": spec.title,
            "description": spec.description,
            "initial_stage": spec.stages[0].id,
            "parameters": values,
            "stages": stages,
            "transitions": transitions,
            "events": _events(spec),
            "facts": {
                name: {"type": f.type, "values": list(f.values) if f.values else None, "description": f.description}
                for name, f in spec.facts.items()
            },
            "referrals": referrals,
            "critical_medications": [
                {"name": m.name, "class": m.medication_class, "rxnorm": list(m.rxnorm), "aliases": list(m.aliases)}
                for m in (spec.medications.critical if spec.medications else [])
            ],
        }
    )


def _parameters(spec: PathwaySpec, given: dict[str, timedelta]) -> dict[str, timedelta]:
    unknown = sorted(set(given) - set(spec.parameters))
    if unknown:
        known = ", ".join(sorted(spec.parameters)) or "none"
        raise PlanError(f"unknown parameter '{unknown[0]}' (known: {known})")
    out: dict[str, timedelta] = {}
    for name, param in spec.parameters.items():
        value = given.get(name, param.default)
        if not isinstance(value, timedelta):
            raise PlanError(f"parameter '{name}' is not a duration: {value!r}")
        if isinstance(param.min, timedelta) and value < param.min:
            raise PlanError(f"parameter '{name}' is {show_duration(value)}, below its min {show_duration(param.min)}")
        if isinstance(param.max, timedelta) and value > param.max:
            raise PlanError(f"parameter '{name}' is {show_duration(value)}, above its max {show_duration(param.max)}")
        out[name] = value
    return out


def _events(spec: PathwaySpec) -> dict[str, dict[str, Any]]:
    events: dict[str, dict[str, Any]] = {
        name: {
            "description": "built in",
            "builtin": True,
            "payload": {f: {"type": b.type, "required": b.required} for f, b in fields.items()},
        }
        for name, fields in BUILTIN_EVENTS.items()
    }
    for name, event in spec.events.items():
        events[name] = {
            "description": event.description,
            "builtin": False,
            "payload": {
                f: {"type": p.type, "required": p.required, **({"values": list(p.values)} if p.values else {})}
                for f, p in event.payload.items()
            },
        }
    return events


Data = dict[str, Any]


def _by_due(work: list[Data]) -> list[Data]:
    return sorted(work, key=lambda w: (w["due"], w["key"]))


class _Compiler:
    """Turns spec parts into plain plan data with parameters resolved, checking that keys are unique.

    It builds dicts and lets one ``Plan.model_validate`` at the end build and check every model at once.
    """

    def __init__(self, params: dict[str, timedelta]) -> None:
        self.params = params
        self.keys: set[str] = set()

    def duration(self, value: timedelta | ParamRef) -> timedelta:
        if isinstance(value, ParamRef):
            try:
                return self.params[value.param]
            except KeyError:
                raise PlanError(f"unknown parameter '{value.param}'") from None
        return value

    def optional(self, value: timedelta | ParamRef | None) -> timedelta | None:
        return None if value is None else self.duration(value)

    def key(self, key: str) -> str:
        if key in self.keys:
            raise PlanError(f"two pieces of work have the key '{key}' (duplicate ids?)")
        self.keys.add(key)
        return key

    def ladder(self, rungs: list[RungSpec], start: timedelta) -> list[Data]:
        return [{"index": k, "at": start + self.duration(r.after), "to": r.to} for k, r in enumerate(rungs)]

    def work(
        self,
        key: str,
        kind: WorkKind,
        title: str,
        owner: str | None,
        due: timedelta | ParamRef,
        done_on: str,
        escalate: list[RungSpec],
        **extra: Any,
    ) -> Data:
        deadline = self.duration(due)
        return {
            "key": self.key(key),
            "kind": kind,
            "title": title,
            "owner": owner,
            "due": deadline,
            "done_on": done_on,
            "ladder": self.ladder(escalate, deadline),
            **extra,
        }

    def stage(self, stage: StageSpec) -> Data:
        at = f"s.{stage.id}"
        work = [
            self.work(f"{at}.task.{t.id}", "task", t.title, t.owner, t.within, t.done_on, t.escalate)
            for t in stage.on_entry
        ]
        peer = stage.peer_support
        if peer:
            work.append(
                self.work(
                    f"{at}.peer-contact",
                    "peer-contact",
                    "First peer support contact",
                    peer.role,
                    peer.first_contact_within,
                    peer.done_on,
                    peer.escalate,
                )
            )
        family = stage.family
        if family:
            every = self.duration(family.update_every)
            work.append(
                self.work(
                    f"{at}.family-update",
                    "family-update",
                    "Family update",
                    family.owner,
                    every,
                    family.done_on,
                    [],
                    consent_purpose=family.consent_purpose,
                    every=every,
                )
            )
        rng = stage.expected_duration
        if rng is not None and rng.max is not None and not stage.terminal:
            work.append(self.stay(stage, rng.max, rng.escalate))
        return {
            "id": stage.id,
            "name": stage.name,
            "level": stage.level,
            "terminal": stage.terminal,
            "min_stay": self.duration(rng.min) if rng else None,
            "max_stay": self.optional(rng.max) if rng else None,
            "entry_work": _by_due(work),
            "check_ins": self.check_ins(stage),
            "before_leaving": stage.before_leaving,
        }

    def stay(self, stage: StageSpec, longest: timedelta | ParamRef, escalate: list[RungSpec]) -> Data:
        """A stay past ``max`` is a missed deadline like any other; with no ladder, the stage's owner hears at max."""
        due = self.duration(longest)
        work = self.work(
            f"s.{stage.id}.stay",
            "stay",
            f"{stage.name}: stay within the expected {show_duration(due)}",
            stage.owner,
            due,
            STAY_DONE_ON,
            escalate,
        )
        if not escalate and stage.owner is not None:
            work["ladder"] = [{"index": 0, "at": due, "to": stage.owner}]
        return work

    def check_ins(self, stage: StageSpec) -> list[Data]:
        out: list[Data] = []
        starts = timedelta(0)
        last = len(stage.check_ins) - 1
        for k, series in enumerate(stage.check_ins):
            span = self.optional(series.for_)
            if span is None and k != last:
                raise PlanError(f"stage '{stage.id}': only the last check-in series may omit 'for'")
            window = self.duration(series.window)
            ladder = self.ladder(series.escalate, window) or [{"index": 0, "at": window, "to": series.owner}]
            out.append(
                {
                    "key": self.key(f"s.{stage.id}.checkin.{k}"),
                    "owner": series.owner,
                    "every": self.duration(series.every),
                    "window": window,
                    "starts": starts,
                    "span": span,
                    "done_on": series.done_on,
                    "ladder": ladder,
                }
            )
            starts += span or timedelta(0)
        return out

    def transition(self, index: int, t: TransitionSpec) -> Data:
        at = f"t{index}"
        work: list[Data] = []
        handoff = t.handoff
        plan: Data | None = None
        if handoff:
            program = handoff.receiver.program
            plan = {
                "program": program,
                "role": handoff.receiver.role,
                "mode": handoff.mode,
                "introduced_by": handoff.introduced_by,
                "consent_purpose": handoff.consent_purpose,
                "re_engage_within": self.optional(handoff.re_engage_within),
                "fallback": handoff.fallback,
            }
            for step in handoff.steps:
                kind = STEPS_BY_KIND[step.kind]
                work.append(
                    self.work(
                        f"{at}.handoff.{step.kind}",
                        "handoff-step",
                        f"{program}: {kind.title}",
                        handoff.receiver.role,
                        step.within,
                        kind.event,
                        step.escalate,
                        consent_purpose=handoff.consent_purpose,
                    )
                )
            first = handoff.steps[0]
            plan["consent"] = self.work(
                f"{at}.consent",
                "consent",
                f"{program}: consent needed to send the referral ({handoff.consent_purpose})",
                handoff.introduced_by or (first.escalate[0].to if first.escalate else None),
                handoff.consent_within if handoff.consent_within is not None else first.within,
                "consent.recorded",
                handoff.consent_escalate or first.escalate,
                consent_purpose=handoff.consent_purpose,
            )
            auth = handoff.authorization
            if auth and auth.required:
                work.append(
                    self.work(
                        f"{at}.authorization",
                        "authorization",
                        f"Insurance authorization for {program}",
                        auth.owner or handoff.introduced_by or (auth.escalate[0].to if auth.escalate else None),
                        auth.within,
                        "authorization.approved",
                        auth.escalate,
                        skip_if=auth.unless,
                    )
                )
        if t.reconcile:
            work.append(
                self.work(
                    f"{at}.reconcile",
                    "reconcile",
                    "Medication reconciliation",
                    None,
                    t.reconcile.within,
                    "medications.reconciled",
                    t.reconcile.escalate,
                    critical_to=t.reconcile.critical_to,
                )
            )
        return {
            "index": index,
            "sources": t.sources,
            "target": t.to,
            "event": t.event,
            "guard": t.when,
            "handoff": plan,
            "work": _by_due(work),
        }
