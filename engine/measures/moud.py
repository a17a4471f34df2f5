"""MOUD continuity: across each transition, and over 180 days (after HEDIS POD). Definitions in :data:`DEFINITIONS`.

What counts as MOUD evidence: a medication list (either side of a transition) with a line naming one of the plan's
critical medications of class MOUD (its name or an alias, any case, as whole words: "Suboxone 8 mg film"), and the
events the pathway's ``measures:`` names as ``moud_fills`` and ``moud_events``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from engine.measures.cohort import Tally, View
from engine.measures.report import Definition, Period

__all__ = ["DEFINITIONS", "MAX_GAP", "TRANSITION_WINDOW", "TREATMENT_DAYS", "continuity"]

#: MOUD must show on the receiving side within this long of the move.
TRANSITION_WINDOW = timedelta(days=7)
#: How long pharmacotherapy must last (HEDIS POD).
TREATMENT_DAYS = timedelta(days=180)
#: The longest break between two pieces of MOUD evidence that still counts as continuous: each piece read as a
#: 30-day supply (a monthly prescription or visit), plus POD's allowance (a gap of 8 or more days breaks it).
MAX_GAP = timedelta(days=37)

DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        id="moud.transitions",
        family="MOUD continuity",
        title="MOUD on the receiving side within 7 days of a transition where the sending list holds MOUD",
        unit="rate",
        numerator="Transitions followed within 7 days of the move by MOUD on a receiving list, an MOUD fill or "
        "another MOUD event",
        denominator="Moves into a stage visit whose sending medication list (recorded in that visit, as "
        "reconciliation compares them) holds an MOUD, 7 days past (or the episode ended)",
        exclusions="Transitions with no sending list, or none holding an MOUD",
        source="Domain reference (shared/domain.md): MOUD dropped at a transition raises overdose risk; issue #13: "
        "no gap longer than 7 days across a transition",
        adaptation="Evidence is what Carepath records (lists at transitions, the pathway's MOUD events), not "
        "pharmacy claims",
    ),
    Definition(
        id="moud.180d",
        family="MOUD continuity",
        title="Pharmacotherapy for OUD continued 180 days",
        unit="rate",
        numerator="Episodes with MOUD evidence on or after day 180 from the first, and no break longer than 37 "
        "days between consecutive evidence before it",
        denominator="Episodes with MOUD evidence whose pathway names MOUD fills or events, judged once 180 days "
        "have passed or a break longer than 37 days shows (before the horizon or the episode's end)",
        exclusions="Pathways naming no MOUD fill or event (lists at transitions alone are too sparse); episodes "
        "that ended, or reach the horizon, before day 180 with no break yet (followed too short to tell)",
        source="HEDIS POD (pharmacotherapy for opioid use disorder: 180 days without a gap of 8 or more days)",
        adaptation="No days' supply is recorded, so each piece of evidence stands for a 30-day supply and POD's "
        "7-day allowance is added: a break is more than 37 days without evidence; the first evidence in the "
        "episode is the start (no 31-day negative history: Carepath sees no care before the episode)",
    ),
)


def continuity(views: Iterable[View], period: Period) -> list[Tally]:
    moves, lasting = Tally("moud.transitions"), Tally("moud.180d")
    for v in views:
        for stay in v.history.stays[1:]:  # the first stay is the enrollment, not a transition
            if stay.visit not in v.moud_sent:
                continue
            at = stay.entered_at
            if at not in period or not v.judged(at + TRANSITION_WINDOW):
                continue
            closes = at + TRANSITION_WINDOW
            moves.add(v.id, any(at <= e <= closes for e in v.moud_received))
        if v.moud and (v.plan.measures.moud_fills or v.plan.measures.moud_events) and v.moud[0] in period:
            met = _continued(v)
            if met is not None:
                lasting.add(v.id, met)
    return [moves, lasting]


def _continued(v: View) -> bool | None:
    """True: evidence reached day 180 without a break; False: a break came first; None: not yet known."""
    start = v.moud[0]
    last = start
    for at in v.moud[1:]:
        if at - last > MAX_GAP:
            return False
        if at - start >= TREATMENT_DAYS:
            return True
        last = at
    horizon = v.end or v.as_of
    return False if horizon - last > MAX_GAP else None
