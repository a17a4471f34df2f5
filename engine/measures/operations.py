"""How the program runs: handoff loops per receiving program, escalations and their acknowledgement, critical
medication discrepancies and how they ended, and stays against each stage's expected duration. Definitions in
:data:`DEFINITIONS`, next to the code that counts them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from engine.episode.history import HandoffTrack
from engine.language.spans import add
from engine.measures.cohort import Tally, View
from engine.measures.report import Definition, Period, Unit

__all__ = ["DEFINITIONS", "ENDINGS", "escalations", "handoffs", "open_in", "stays"]

_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)
_LOOPS = "Closed-loop referral as the standards model it (HL7 BSeR / IHE 360X, Gravity SDOH): shared/domain.md"
_HANDOFFS = "Handoffs to the program opened in the period"
_ESCALATED = "Escalations raised in the period"
_STAYS = "Stays in the stage that ended (by a move) in the period, in stages with an expected duration"
_PROGRAM = "Computed per receiving program (the subject)"
#: How a critical discrepancy ended: the subject of ``discrepancies.critical`` -> the finding statuses it groups.
ENDINGS: dict[str, tuple[str, ...]] = {
    "resolved": ("resolved",),
    "intentional": ("intentional-documented",),
    "still open": ("unintentional",),
}


def _defn(id: str, family: str, title: str, unit: Unit, numerator: str, denominator: str, **rest: str) -> Definition:
    return Definition(
        id=id,
        family=family,
        title=title,
        unit=unit,
        numerator=numerator,
        denominator=denominator,
        exclusions=rest.get("exclusions", "None"),
        source=rest.get("source", "Carepath operations (issue #13); no national measure"),
        adaptation=rest.get("adaptation", _PROGRAM),
    )


DEFINITIONS: tuple[Definition, ...] = (
    _defn(
        "handoffs.loop-closed",
        "Handoff loops",
        "Handoff loops closed (every step asked met, or the outcome returned)",
        "rate",
        "Handoffs whose receiver met every step the pathway asked of it (accepted, scheduled, visit kept, outcome "
        "returned: those its transition declares), returned the outcome, or reached status completed",
        _HANDOFFS,
        source=_LOOPS,
        adaptation=_PROGRAM + "; a loop still open at the horizon counts as not closed",
    ),
    _defn(
        "handoffs.accepted-hours",
        "Handoff loops",
        "Median time from opening to acceptance",
        "median-hours",
        "Hours from a handoff's opening to its accepted step",
        _HANDOFFS + " that were accepted",
        source=_LOOPS,
    ),
    _defn(
        "handoffs.first-visit-days",
        "Handoff loops",
        "Median time from opening to the first kept visit",
        "median-days",
        "Days from a handoff's opening to its visit-kept step",
        _HANDOFFS + " whose first visit was kept",
        source=_LOOPS,
    ),
    _defn(
        "escalations.per-100",
        "Escalations",
        "Escalations per 100 episodes, by rung",
        "per-100-episodes",
        _ESCALATED + " at the rung (the subject: rung 1 is the first alert)",
        "Episodes open at some time in the period",
        adaptation="Per rung of the ladders, whatever work item escalated",
    ),
    _defn(
        "escalations.acknowledged",
        "Escalations",
        "Escalations acknowledged",
        "rate",
        "Escalations someone acknowledged",
        _ESCALATED,
        adaptation="Acknowledged at any time up to the horizon",
    ),
    _defn(
        "escalations.ack-median-hours",
        "Escalations",
        "Median time to acknowledgement",
        "median-hours",
        "Hours from an escalation to its first acknowledgement",
        _ESCALATED + " and acknowledged",
        adaptation="Unacknowledged escalations are left out (see escalations.acknowledged)",
    ),
    _defn(
        "escalations.ack-p90-hours",
        "Escalations",
        "90th percentile of the time to acknowledgement",
        "p90-hours",
        "Hours from an escalation to its first acknowledgement (nearest-rank 90th percentile)",
        _ESCALATED + " and acknowledged",
        adaptation="Unacknowledged escalations are left out (see escalations.acknowledged)",
    ),
    _defn(
        "discrepancies.critical",
        "Escalations",
        "Critical medication discrepancies, by how they ended",
        "rate",
        "Critical discrepancies that ended so (the subject): resolved by a later comparison, documented as "
        "intentional, or still open (unintentional)",
        "Critical discrepancies found at stage visits entered in the period",
        source="Medication reconciliation (shared/domain.md): an omitted MOUD is the most severe discrepancy",
        adaptation="As each finding stands at the horizon",
    ),
    _defn(
        "stays.median-days",
        "Stays",
        "Median length of stay",
        "median-days",
        "Days from entering the stage to leaving it",
        _STAYS,
        source="Expected stays the pathway declares (expected_duration), after the phase timeframes of "
        "shared/domain.md",
        adaptation="Per pathway and stage (the subject); stays still running are left out",
    ),
    _defn(
        "stays.shorter-than-min",
        "Stays",
        "Stays shorter than the stage's expected minimum",
        "rate",
        "Stays that ended before expected_duration.min",
        _STAYS + " and a min",
        source="The pathway's expected_duration",
        adaptation="Per pathway and stage; each stay against its own version's plan",
    ),
    _defn(
        "stays.longer-than-max",
        "Stays",
        "Stays longer than the stage's expected maximum",
        "rate",
        "Stays that ended after expected_duration.max",
        _STAYS + " and a max",
        source="The pathway's expected_duration",
        adaptation="Per pathway and stage; each stay against its own version's plan; stays still running past max "
        "are the escalations' business",
    ),
)


class _Rungs(dict[int, str]):
    """``rung 1`` for rung index 0 (people count rungs from one), made once per index."""

    def __missing__(self, rung: int) -> str:
        self[rung] = f"rung {rung + 1}"
        return self[rung]


_RUNGS = _Rungs()


def _tally(out: dict[tuple[str, str], Tally], measure: str, subject: str) -> Tally:
    found = out.get((measure, subject))
    if found is None:
        found = out[(measure, subject)] = Tally(measure, subject)
    return found


def _all_steps_met(v: View, h: HandoffTrack) -> bool:
    """The receiver did all the pathway asked of it. A handoff whose steps were all met is closed from the
    sender's side even when the person then moved on (the rules then end it ``cancelled``: no more is followed)."""
    transitions = v.plan.transitions
    if not 0 <= h.transition < len(transitions):
        return False
    asked = {w.done_on.removeprefix("handoff.") for w in transitions[h.transition].work if w.kind == "handoff-step"}
    return bool(asked) and asked <= h.steps.keys()


def handoffs(views: Iterable[View], period: Period) -> list[Tally]:
    out: dict[tuple[str, str], Tally] = {}

    def tally(measure: str, program: str) -> Tally:
        return _tally(out, measure, program)

    for v in views:
        for h in v.history.handoffs:
            if h.opened_at not in period:
                continue
            closed = "outcome-returned" in h.steps or h.status == "completed" or _all_steps_met(v, h)
            for measure in ("handoffs.accepted-hours", "handoffs.first-visit-days"):
                tally(measure, h.program)  # every program has every row, with a value or none
            tally("handoffs.loop-closed", h.program).add(v.id, closed)
            if "accepted" in h.steps:
                hours = (h.steps["accepted"] - h.opened_at) / _HOUR
                tally("handoffs.accepted-hours", h.program).add(v.id, value=hours)
            if "visit-kept" in h.steps:
                days = (h.steps["visit-kept"] - h.opened_at) / _DAY
                tally("handoffs.first-visit-days", h.program).add(v.id, value=days)
    return [out[key] for key in sorted(out)]


def escalations(views: Iterable[View], period: Period) -> list[Tally]:
    per_rung: dict[tuple[str, str], Tally] = {}
    acked, median = Tally("escalations.acknowledged"), Tally("escalations.ack-median-hours")
    found: dict[str, Tally] = {name: Tally("discrepancies.critical", name) for name in ENDINGS}
    for v in views:
        for r in v.history.escalations:
            if r.raised_at not in period:
                continue
            _tally(per_rung, "escalations.per-100", _RUNGS[r.rung]).add(v.id, True)
            acked.add(v.id, r.acknowledged_at is not None)
            if r.acknowledged_at is not None:
                median.add(v.id, value=(r.acknowledged_at - r.raised_at) / _HOUR)
        entered = {s.visit: s.entered_at for s in v.history.stays}
        for f in v.history.findings:
            if f.critical and entered.get(f.visit, v.history.enrolled_at) in period:
                for name, statuses in ENDINGS.items():
                    found[name].add(v.id, f.status in statuses)
    p90 = Tally("escalations.ack-p90-hours", "", list(median.episodes), list(median.met), list(median.values))
    rungs = sorted(per_rung.values(), key=lambda t: int(t.subject.split()[1]))
    return [*rungs, acked, median, p90, *found.values()]


def open_in(v: View, period: Period) -> bool:
    """Whether the episode was open at some time in the period: the denominator of a count per 100 episodes."""
    began, ended = v.history.enrolled_at.date(), (v.end.date() if v.end else None)
    return (period.end is None or began <= period.end) and (
        period.start is None or ended is None or ended >= period.start
    )


def stays(views: Iterable[View], period: Period) -> list[Tally]:
    out: dict[tuple[str, str], Tally] = {}
    for v in views:
        for s in v.history.stays:
            stage = v.plan.stages.get(s.stage)
            if s.left_at is None or s.left_at not in period or stage is None:
                continue
            if stage.min_stay is None and stage.max_stay is None:
                continue
            subject = f"{v.plan.pathway_id}/{s.stage}"
            left = s.left_at
            _tally(out, "stays.median-days", subject).add(v.id, value=(left - s.entered_at) / _DAY)
            if stage.min_stay is not None:
                _tally(out, "stays.shorter-than-min", subject).add(v.id, left < add(s.entered_at, stage.min_stay))
            if stage.max_stay is not None:
                _tally(out, "stays.longer-than-max", subject).add(v.id, left > add(s.entered_at, stage.max_stay))
    return [out[key] for key in sorted(out)]
