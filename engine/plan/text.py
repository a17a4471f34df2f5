"""Plans as people read them: a fixed-width text table (``carepath plan``) or JSON (``carepath plan --json``).

The table walks the plan in the order an episode meets it: the work scheduled on enrollment, then each
transition with everything it starts (its own work and the target stage's entry work, by deadline, each with
its escalation rungs, its planned medication changes and required medications), then each stage's stay limits,
required medications and check-in series (with their parallel tracks), then the referrals a social need
starts. Offsets count from the trigger: the transition, entering the stage, or the need being identified.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from engine.language.durations import show_duration
from engine.language.guards import describe

if TYPE_CHECKING:
    from engine.plan.model import CheckInSeriesPlan, MedicationChangePlan, Plan, StagePlan, TransitionPlan, WorkPlan

__all__ = ["plan_json", "plan_table"]

_HEADER = ("due", "kind", "title", "owner", "done on", "notes")


def plan_json(plan: Plan) -> str:
    """The plan as indented JSON (durations in ISO 8601, e.g. ``P1D``); ``Plan.model_validate`` reads it back."""
    return json.dumps(plan.model_dump(mode="json", by_alias=True), indent=2)


def plan_table(plan: Plan) -> str:
    """The plan as fixed-width text tables, one section per trigger."""
    params = ", ".join(f"{k}={show_duration(v)}" for k, v in plan.parameters.items())
    out = [f"{plan.pathway_id} v{plan.version}: {plan.title}"]
    if params:
        out.append(f"parameters: {params}")
    first = plan.stages[plan.initial_stage]
    out += ["", f"enrollment -> {first.id}", *_work_table(first.entry_work)]
    for t in plan.transitions:
        out += ["", _transition_heading(t)]
        if t.handoff:
            h = t.handoff
            how = h.mode + (f", introduced by {h.introduced_by}" if h.introduced_by else "")
            out.append(f"  handoff to {h.program} ({h.role}; {how}; consent: {h.consent_purpose})")
            extra = [_re_engagement(h.re_engagement) if h.re_engagement else ""]
            extra.append(f"declined -> {h.fallback}" if h.fallback else "")
            extra.append(f"goes wrong -> {', '.join(h.alert_to)} at once" if h.alert_to else "")
            extra.append("lasts the episode" if h.lasts == "episode" else "")
            if any(extra):
                out.append("  " + "; ".join(e for e in extra if e))
        out += _medication_lines(t.medication_changes, t.requires_medication)
        out += _work_table(plan.schedule(t))
    for stage in plan.stages.values():
        out += ["", _stage_heading(stage)]
        if stage.before_leaving:
            out.append(f"  before leaving: {', '.join(stage.before_leaving)}")
        out += _medication_lines((), stage.requires_medication)
        if stage.check_ins:
            out += _check_in_table(stage.check_ins)
    if plan.referrals:
        out += ["", "need.identified -> referral", *_work_table(plan.referrals.values())]
    recorded = [name for name in plan.events if plan.record_anywhere(name)]
    if recorded:
        out += ["", f"recorded in any stage (moving nothing where no move uses them): {', '.join(recorded)}"]
    return "\n".join(out)


def _re_engagement(work: WorkPlan) -> str:
    """``re-engage within 24h (community-prescriber; +0h -> care-coordinator, +24h -> supervisor)``."""
    rungs = ", ".join(f"+{show_duration(r.at - work.due)} -> {r.to}" for r in work.ladder)
    return f"re-engage within {show_duration(work.due)} ({work.owner}{'; ' + rungs if rungs else ''})"


def _transition_heading(t: TransitionPlan) -> str:
    guard = f" [{describe(t.guard)}]" if t.guard is not None else ""
    return f"t{t.index}: {', '.join(t.sources)} -> {t.target} {t.trigger()}{guard}"


def _stage_heading(stage: StagePlan) -> str:
    parts = [f"stage {stage.id}: {stage.name}"]
    if stage.level:
        parts.append(f"ASAM {stage.level}")
    if stage.min_stay is not None or stage.max_stay is not None:
        low = show_duration(stage.min_stay) if stage.min_stay is not None else "0h"
        high = show_duration(stage.max_stay) if stage.max_stay is not None else "open"
        parts.append(f"stay {low}..{high}")
    if stage.terminal:
        parts.append("terminal")
    return ", ".join(parts)


def _medication_lines(changes: Iterable[MedicationChangePlan], required: Sequence[str]) -> list[str]:
    """A move's planned switches (documented as intentional) and the medications the receiving list must hold."""
    out = []
    for c in changes:
        what = ", ".join(p for p in (f"stop {c.stop}" if c.stop else "", f"start {c.start}" if c.start else "") if p)
        out.append(f"  planned change: {what} ({c.reason})")
    if required:
        out.append(f"  requires on the receiving list: {', '.join(required)}")
    return out


def _notes(w: WorkPlan) -> str:
    notes = [f"{k}={v}" for k, v in w.match.items()]
    if w.lasts == "episode":
        notes.append("lasts the episode")
    if w.every is not None:
        notes.append(f"every {show_duration(w.every)}")
    if w.consent_purpose:
        notes.append(f"consent: {w.consent_purpose}")
    if w.skip_if is not None:
        notes.append(f"unless {describe(w.skip_if)}")
    if w.critical_to:
        notes.append(f"critical -> {', '.join(w.critical_to)}")
    if w.counts_from():
        notes.append(f"due from {w.counts_from()}")
    if w.only_if is not None:
        notes.append(f"only if {describe(w.only_if)}")
    return "; ".join(notes)


def _work_table(work: Iterable[WorkPlan]) -> list[str]:
    rows: list[Sequence[str]] = []
    for w in sorted(work, key=lambda w: (w.due, w.key)):
        rows.append((show_duration(w.due), w.kind, w.title, w.owner or "-", w.done_on, _notes(w)))
        for rung in w.ladder:
            rows.append((show_duration(rung.at), "", f"  +{show_duration(rung.at - w.due)} -> {rung.to}", "", "", ""))
    return _table(_HEADER, rows) if rows else ["  (no work)"]


def _check_in_table(series: Sequence[CheckInSeriesPlan]) -> list[str]:
    tracks = any(s.track for s in series)  # parallel tracks: say which series runs in which
    rows = []
    for s in series:
        ladder = ", ".join(f"+{show_duration(r.at - s.window)} -> {r.to}" for r in s.ladder)
        span = show_duration(s.span) if s.span is not None else "until left"
        rows.append(
            (
                *((s.track or "-",) if tracks else ()),
                show_duration(s.starts),
                show_duration(s.every),
                show_duration(s.window),
                span,
                s.owner,
                s.done_on,
                ladder,
            )
        )
    header = ("starts", "every", "window", "for", "owner", "done on", "missed window")
    return _table((("track",) if tracks else ()) + header, rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
