"""The plan compiler: a validated :class:`engine.language.model.PathwaySpec` -> :class:`engine.plan.model.Plan`.

``compile_plan(spec, params)`` resolves the pathway's parameters (an episode's values, else the defaults), turns
every part that schedules work into plan data with unique keys, and lets one ``Plan.model_validate`` build and
check the whole. Step titles and events come from the step table (:data:`engine.language.builtins.HANDOFF_STEPS`),
the built-in events from :data:`engine.language.builtins.BUILTIN_EVENTS`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine.errors import PlanError
from engine.language.builtins import BUILTIN_EVENTS, STEPS_BY_KIND
from engine.language.durations import show_duration
from engine.language.fields import ParamRef, Spec
from engine.language.ladders import rungs
from engine.language.model import Anchor, FactRef, HandoffSpec, PathwaySpec, RungSpec, StageSpec, TransitionSpec
from engine.language.spans import MonthSpan, Span, nominal
from engine.plan.model import STAY_DONE_ON, Plan, WorkKind

__all__ = ["compile_plan"]


def compile_plan(spec: PathwaySpec, params: dict[str, timedelta] | None = None) -> Plan:
    """Compile a validated pathway spec into a :class:`Plan`, resolving parameters (defaults if not given).

    ``params`` overrides parameter defaults for one episode; an unknown name or a value outside the parameter's
    ``min``/``max`` (months by a mean month) raises :class:`PlanError`. The spec is expected to have passed
    :func:`engine.language.semantics.check`.
    """
    values = _parameters(spec, params or {})
    c = _Compiler(spec, values)
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
            c.rungs(rule),
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
                name: {
                    "type": f.type,
                    "values": list(f.values) if f.values else None,
                    "description": f.description,
                    **_bounds(f.min, f.max),
                }
                for name, f in spec.facts.items()
            },
            "referrals": referrals,
            "critical_medications": [
                {"name": m.name, "class": m.medication_class, "rxnorm": list(m.rxnorm), "aliases": list(m.aliases)}
                for m in (spec.medications.critical if spec.medications else [])
            ],
            "measures": spec.measures.model_dump() if spec.measures else {},
        }
    )


def _parameters(spec: PathwaySpec, given: dict[str, timedelta]) -> dict[str, Span]:
    unknown = sorted(set(given) - set(spec.parameters))
    if unknown:
        known = ", ".join(sorted(spec.parameters)) or "none"
        raise PlanError(f"unknown parameter '{unknown[0]}' (known: {known})")
    out: dict[str, Span] = {}
    for name, param in spec.parameters.items():
        value: Span | ParamRef = given.get(name, param.default)
        if not isinstance(value, timedelta | MonthSpan):
            raise PlanError(f"parameter '{name}' is not a duration: {value!r}")
        if not isinstance(param.min, ParamRef | None) and nominal(value) < nominal(param.min):
            raise PlanError(f"parameter '{name}' is {show_duration(value)}, below its min {show_duration(param.min)}")
        if not isinstance(param.max, ParamRef | None) and nominal(value) > nominal(param.max):
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
            **({"record_anywhere": True} if event.record_anywhere else {}),
            "payload": {
                f: {
                    "type": p.type,
                    "required": p.required,
                    **({"values": list(p.values)} if p.values else {}),
                    **_bounds(p.min, p.max),
                }
                for f, p in event.payload.items()
            },
        }
    return events


def _bounds(low: float | None, high: float | None) -> dict[str, float]:
    """Numeric bounds as the input checks read them; absent when unset, so older plans read the same."""
    return {k: v for k, v in (("min", low), ("max", high)) if v is not None}


Data = dict[str, Any]


def _anchor(anchor: Anchor | None) -> Data:  # the plan fields of a deadline's ``from``: an event's or a date fact's
    return {"from_fact": anchor.fact} if isinstance(anchor, FactRef) else {"from_event": anchor} if anchor else {}


def _by_due(work: list[Data]) -> list[Data]:
    return sorted(work, key=lambda w: (nominal(w["due"]), w["key"]))


class _Compiler:
    """Turns spec parts into plain plan data with parameters resolved, checking that keys are unique.

    It builds dicts and lets one ``Plan.model_validate`` at the end build and check every model at once.
    """

    def __init__(self, spec: PathwaySpec, params: dict[str, Span]) -> None:
        self.spec = spec
        self.params = params
        self.keys: set[str] = set()

    def duration(self, value: Span | ParamRef) -> Span:
        if isinstance(value, ParamRef):
            try:
                return self.params[value.param]
            except KeyError:
                raise PlanError(f"unknown parameter '{value.param}'") from None
        return value

    def optional(self, value: Span | ParamRef | None) -> Span | None:
        return None if value is None else self.duration(value)

    def key(self, key: str) -> str:
        if key in self.keys:
            raise PlanError(f"two pieces of work have the key '{key}' (duplicate ids?)")
        self.keys.add(key)
        return key

    def rungs(self, part: Spec, field: str = "escalate") -> list[RungSpec]:
        """The rungs of ``part.<field>``: written out, named under ``ladders``, or the default ladder."""
        return rungs(self.spec, part, field)

    def ladder(self, ladder: list[RungSpec], start: Span) -> list[Data]:
        return [{"index": k, "at": start + self.duration(r.after), "to": r.to} for k, r in enumerate(ladder)]

    def work(
        self,
        key: str,
        kind: WorkKind,
        title: str,
        owner: str | None,
        due: Span | ParamRef,
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
            self.work(
                f"{at}.task.{t.id}",
                "task",
                t.title,
                t.owner,
                t.within,
                t.done_on,
                self.rungs(t),
                only_if=t.when,
                lasts=t.lasts,
                **_anchor(t.from_),
            )
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
                    self.rungs(peer),
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
            work.append(self.stay(stage, rng.max, self.rungs(rng)))
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
            "requires_medication": stage.requires_medication,
        }

    def stay(self, stage: StageSpec, longest: Span | ParamRef, escalate: list[RungSpec]) -> Data:
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

    def re_engagement(self, at: str, handoff: HandoffSpec, steps: list[Data]) -> Data | None:
        """Re-engagement after a no-show, due ``re_engage_within`` after it; by default the receiving role owns it
        and its ladder is the visit-kept step's, counted from the new deadline (``re_engage_escalate`` replaces it).
        """
        due = self.optional(handoff.re_engage_within)
        if due is None:
            return None
        written = "re_engage_escalate" in handoff.model_fields_set
        kept = next((w for w in steps if w["done_on"] == STEPS_BY_KIND["visit-kept"].event), None)
        if written or kept is None:
            ladder = self.ladder(self.rungs(handoff, "re_engage_escalate") if written else [], due)
        else:
            ladder = [{**r, "at": due + (r["at"] - kept["due"])} for r in kept["ladder"]]
        return {
            **self.work(
                f"{at}.re-engage",
                "re-engagement",
                f"{handoff.receiver.program}: re-engage after a missed first visit",
                handoff.re_engage_owner or handoff.receiver.role,
                due,
                "handoff.move",
                [],
            ),
            "ladder": ladder,
        }

    def check_ins(self, stage: StageSpec) -> list[Data]:
        out: list[Data] = []
        starts: dict[str, Span] = {}  # per track: series of a track follow one another
        tracks = [series.track or "" for series in stage.check_ins]
        for k, series in enumerate(stage.check_ins):
            track = tracks[k]
            span = self.optional(series.for_)
            if span is None and track in tracks[k + 1 :]:
                raise PlanError(f"stage '{stage.id}': only the last check-in series may omit 'for'")
            window = self.duration(series.window)
            ladder = self.ladder(self.rungs(series), window) or [{"index": 0, "at": window, "to": series.owner}]
            out.append(
                {
                    "key": self.key(f"s.{stage.id}.checkin.{k}"),
                    "owner": series.owner,
                    "every": self.duration(series.every),
                    "window": window,
                    "starts": starts.get(track, timedelta(0)),
                    "span": span,
                    "done_on": series.done_on,
                    "ladder": ladder,
                    "track": track,
                }
            )
            starts[track] = starts.get(track, timedelta(0)) + (span or timedelta(0))
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
                "re_engage_within": self.optional(handoff.re_engage_within),  # never months (semantics)
                "fallback": handoff.fallback,
                "lasts": handoff.lasts,
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
                        self.rungs(step),
                        consent_purpose=handoff.consent_purpose,
                        **_anchor(step.from_),
                    )
                )
            first = handoff.steps[0]
            first_rungs = self.rungs(first)
            written = "consent_escalate" in handoff.model_fields_set  # omitted: the first step's, not the default
            consent_rungs = self.rungs(handoff, "consent_escalate") if written else []
            plan["consent"] = self.work(
                f"{at}.consent",
                "consent",
                f"{program}: consent needed to send the referral ({handoff.consent_purpose})",
                handoff.introduced_by or (first_rungs[0].to if first_rungs else None),
                handoff.consent_within if handoff.consent_within is not None else first.within,
                "consent.recorded",
                consent_rungs or first_rungs,
                consent_purpose=handoff.consent_purpose,
            )
            plan["re_engagement"] = self.re_engagement(at, handoff, work)
            plan["alert_to"] = handoff.alert_to
            auth = handoff.authorization
            if auth and auth.required:
                auth_rungs = self.rungs(auth)
                work.append(
                    self.work(
                        f"{at}.authorization",
                        "authorization",
                        f"Insurance authorization for {program}",
                        auth.owner or handoff.introduced_by or (auth_rungs[0].to if auth_rungs else None),
                        auth.within,
                        "authorization.approved",
                        auth_rungs,
                        skip_if=auth.unless,
                    )
                )
        if t.reconcile:
            work.append(
                self.work(
                    f"{at}.reconcile",
                    "reconcile",
                    "Medication reconciliation",
                    t.reconcile.owner,
                    t.reconcile.within,
                    "medications.reconciled",
                    self.rungs(t.reconcile),
                    critical_to=t.reconcile.critical_to,
                )
            )
        return {
            "index": index,
            "sources": t.sources,
            "target": t.to,
            "event": t.events[0] if t.events else "",
            "events": t.events if len(t.events) > 1 else (),
            "after": self.optional(t.after),
            "on_missed": t.on_missed,
            "on_handoff": t.handoff_ends,
            "guard": t.when,
            "handoff": plan,
            "work": _by_due(work),
            "medication_changes": [c.model_dump() for c in t.medication_changes],
            "requires_medication": t.requires_medication,
        }
