"""MOUD continuity: across each transition where the sending list holds an MOUD, and over 180 days (after HEDIS
POD, a break being more than 37 days without evidence), on hand-built cohorts with answers worked out here.

The test pathway (tests/data/valid/measures.yaml) declares buprenorphine (alias Suboxone) and methadone as MOUD and
clonidine as critical but not MOUD; prescription.filled is its fill event, moud.confirmed its other MOUD event.
"""

from __future__ import annotations

from measures_data import AS_OF, FOURTH, PLANS, ev, history, meds, path

from engine.episode.history import EpisodeHistory, Stay
from engine.measures import compute_measures
from engine.measures.moud import MAX_GAP

STAYS = path(("jail-wm", 0), ("residential", 5), ("outpatient", 20))  # stage visits 1, 2 (day 5), 3 (day 20)


def test_moud_shows_on_the_receiving_side_within_7_days_of_each_transition() -> None:
    cohort = [
        # visit 2: "Suboxone 8 mg film" sent (an alias, any case), buprenorphine received the next day: met;
        # visit 3: buprenorphine sent, only clonidine received, the first fill 8 days later: not met
        history(
            1,
            STAYS,
            [ev("prescription.filled", 28)],
            lists=[
                meds(2, "sending", 5, "Suboxone 8 mg film"),
                meds(2, "receiving", 6, "buprenorphine 8 mg SL"),
                meds(3, "sending", 20, "Buprenorphine"),
                meds(3, "receiving", 20, "clonidine 0.1 mg"),
            ],
        ),
        # METHADONE sent at visit 2; the prescriber confirms MOUD 6 days after the move: met
        history(2, STAYS, [ev("moud.confirmed", 11)], lists=[meds(2, "sending", 5, "METHADONE 60 mg")]),
        # a sending list with no MOUD: not a transition this measure counts
        history(3, STAYS, lists=[meds(2, "sending", 5, "clonidine"), meds(2, "receiving", 5, "clonidine")]),
    ]
    report = compute_measures(cohort, PLANS, as_of=AS_OF, min_cell=1)
    r = report.result("moud.transitions")
    assert (r.numerator, r.denominator) == (2, 3)


def test_pharmacotherapy_continued_180_days_without_a_break_longer_than_37_days() -> None:
    assert MAX_GAP.days == 37

    def fills(n: int, *days: float, stays: tuple[Stay, ...] = STAYS, status: str = "active") -> EpisodeHistory:
        return history(n, stays, [ev("prescription.filled", d) for d in days], status=status)

    cohort = [
        history(1, STAYS, [ev("moud.confirmed", 0), *(ev("prescription.filled", d) for d in range(30, 181, 30))]),
        fills(2, 0, 30, 70),  # a 40-day break
        fills(3, 0, 37, 74, 111, 148, 185),  # breaks of exactly 37 days are allowed
        # ended on day 40 with its last evidence 10 days before: followed too short to tell (left out)
        fills(4, 0, 30, stays=path(("jail-wm", 0), ("done", 40)), status="completed"),
        fills(5, 0, 30),  # still open on day 200, nothing since day 30: discontinued
        # the first evidence is a receiving list holding an MOUD (day 5), then fills to day 185
        history(
            6,
            STAYS,
            [ev("prescription.filled", d) for d in (35, 70, 105, 140, 175, 185)],
            lists=[meds(2, "receiving", 5, "buprenorphine")],
        ),
    ]
    report = compute_measures(cohort, PLANS, as_of=AS_OF, min_cell=1)
    r = report.result("moud.180d")
    assert (r.numerator, r.denominator) == (3, 5)  # 1, 3, 6 of 1, 2, 3, 5, 6


def test_180_days_is_not_measured_on_medication_lists_alone() -> None:
    """A pathway naming no MOUD fill or event has only lists at transitions: too sparse to judge a break."""
    fourth = {(FOURTH.pathway_id, FOURTH.version): FOURTH}
    stays = path(("inpatient", 0), ("iop", 6))
    lists = [meds(2, "sending", 6, "Buprenorphine"), *(meds(2, "receiving", d, "buprenorphine") for d in (6, 100, 190))]
    report = compute_measures([history(1, stays, lists=lists, plan=FOURTH)], fourth, as_of=AS_OF, min_cell=1)
    moves = report.result("moud.transitions")
    assert (moves.numerator, moves.denominator) == (1, 1)  # the lists are read (class "moud" in any case)
    assert report.result("moud.180d").denominator == 0
